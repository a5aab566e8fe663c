"""A pcaspy script serving a PV that script_thread serves too: its createPV clashes."""
from pcaspy import Driver, SimpleServer

prefix = "THR:"
pvdb = {"COUNT": {"type": "int"}}

if __name__ == "__main__":
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = Driver()
    while True:
        server.process(0.1)
