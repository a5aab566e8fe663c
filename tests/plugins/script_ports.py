"""An unmodified pcaspy script with two drivers on pcaspy ports of their own (pcaspy
keeps drivers per port): pvconsole refuses it with a message that says what to change."""
from pcaspy import Driver, SimpleServer

pvdb = {"POS": {"port": "motor"}, "PRESS": {"port": "gauge"}}


class Motor(Driver):
    port = "motor"


class Gauge(Driver):
    port = "gauge"


if __name__ == "__main__":
    server = SimpleServer()
    server.createPV("SP:", pvdb)
    motor, gauge = Motor(), Gauge()
    while True:
        server.process(0.1)
