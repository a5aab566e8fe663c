"""An unmodified pcaspy IOC script with no __main__ guard and a forever loop."""
from pcaspy import Driver, SimpleServer

prefix = "SCR:"
pvdb = {"RAND": {"prec": 3, "value": 0.5}, "CMD": {"type": "string"}}


class myDriver(Driver):
    def __init__(self):
        super(myDriver, self).__init__()


server = SimpleServer()
server.createPV(prefix, pvdb)
driver = myDriver()

while True:
    server.process(0.1)
