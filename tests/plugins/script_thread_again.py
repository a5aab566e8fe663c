"""A pcaspy script serving a PV that script_thread serves too: its createPV clashes."""
from pcaspy import SimpleServer

prefix = "THR:"
pvdb = {"COUNT": {"type": "int"}}


def main() -> None:
    SimpleServer().createPV(prefix, pvdb)  # raises: the clash is what pvconsole reports
    raise SystemExit("not reached")


if __name__ == "__main__":
    main()
