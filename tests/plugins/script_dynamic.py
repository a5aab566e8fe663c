"""A pcaspy script whose server makes PVs on demand (pvExistTest/pvAttach) and asks for
an access security file of its own."""
from pcaspy import Driver, SimpleServer
import pcaspy.cas as cas

prefix = "DYN:"
pvdb = {"STATIC": {"value": 3.0}}


class DynServer(SimpleServer):
    def pvExistTest(self, context, addr, fullname):
        return cas.pverExistsHere if fullname.startswith("DYN:SPEC") else SimpleServer.pvExistTest(
            self, context, addr, fullname)


if __name__ == "__main__":
    server = DynServer()
    server.initAccessSecurityFile("rules.as", P=prefix)
    server.createPV(prefix, pvdb)
    driver = Driver()
    while True:
        server.process(0.1)
