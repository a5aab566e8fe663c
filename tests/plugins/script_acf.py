"""A pcaspy script with an access security file of its own (beside it, with a macro),
as pcaspy's access_control example: LOCK is read-only, FREE writable."""
from pcaspy import Driver, SimpleServer

prefix = "ACF:"
pvdb = {"LOCK": {"value": 1.0, "asg": "LOCKED"}, "FREE": {"value": 2.0}}

if __name__ == "__main__":
    server = SimpleServer()
    server.initAccessSecurityFile("script_acf.as", G="LOCKED")
    server.createPV(prefix, pvdb)
    driver = Driver()
    while True:
        server.process(0.1)
