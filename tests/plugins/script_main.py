"""A classic pcaspy script: everything under __main__, argparse included."""
import argparse

from pcaspy import Driver, SimpleServer


class EchoDriver(Driver):
    def write(self, reason, value):
        self.setParam(reason, value)
        self.setParam("LAST", reason)
        self.updatePVs()
        return True


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", default="MAIN:")
    args = parser.parse_args()
    server = SimpleServer()
    server.createPV(args.prefix, {"A": {"type": "int"}, "LAST": {"type": "string"}})
    driver = EchoDriver()
    while True:
        server.process(0.1)
