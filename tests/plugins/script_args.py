"""An unmodified pcaspy script whose prefix is a required command-line option."""
import argparse

from pcaspy import Driver, SimpleServer

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("-P", "--prefix", required=True)
    parser.add_argument("--gain", type=float, default=1.0)
    args = parser.parse_args()
    server = SimpleServer()
    server.createPV(args.prefix, {"GAIN": {"prec": 2, "value": args.gain}})
    driver = Driver()
    while True:
        server.process(0.1)
