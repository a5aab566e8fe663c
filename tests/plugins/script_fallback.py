"""A plugin whose __main__ part needs command-line arguments: pvconsole serves its
module-level prefix and pvdb instead."""
import argparse

from pcaspy import Driver, SimpleServer

prefix = "FB:"
pvdb = {"X": {"value": 2.0}}


class FbDriver(Driver):
    pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("device")  # required: argparse exits
    parser.parse_args()
    server = SimpleServer()
    server.createPV(prefix, pvdb)
    driver = FbDriver()
    while True:
        server.process(0.1)
