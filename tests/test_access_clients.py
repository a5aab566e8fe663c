"""Who is connected, who wrote what, who may write: real clients on loopback."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from p4p.client.thread import RemoteError

from conftest import ROOT, free_port, plugin_path, pva_context, wait_for
from pvconsole import clients

ALLTYPES = plugin_path("alltypes")
USER = getpass.getuser()


def test_pva_report_source_still_has_the_shape_we_parse(engine_factory, pva):
    """p4p._gw.Server_report is internal to p4p: fail loudly if an upgrade changes it."""
    engine = engine_factory(ALLTYPES)
    pva(engine).get("T:INT")
    rows = clients.pva_report(engine.pva_server, 1.0)
    assert rows and all(len(r) == 8 for r in rows)
    assert any(r[1] == "T:INT" and r[4] == USER and r[5].startswith("127.0.0.1:") for r in rows)


def test_connections_name_ca_and_pva_clients(engine_factory, pva, ca):
    engine = engine_factory(ALLTYPES)
    ctx = pva(engine)
    sub = ctx.monitor("T:FLOAT", lambda v: None)
    client = ca(engine)
    client.monitor("T:INT")
    client.get("T:STRING")
    try:
        found = wait_for(lambda: [c for c in engine.clients() if c.protocol == "ca" and "T:INT" in c.channels]
                         and [c for c in engine.clients() if c.protocol == "pva" and "T:FLOAT" in c.channels])
        everyone = engine.clients()
        ca_client = next(c for c in everyone if c.protocol == "ca")
        assert ca_client.user == USER
        assert ca_client.host == socket.gethostname()
        assert ca_client.peer.startswith("127.0.0.1:") and ca_client.peer != "127.0.0.1:?"
        assert {"T:INT", "T:STRING"} <= set(ca_client.channels)
        assert ca_client.monitors >= 1
        pva_client = next(c for c in everyone if c.protocol == "pva")
        assert pva_client.user == USER and pva_client.peer.startswith("127.0.0.1:")
        counts = engine.client_counts(everyone)
        assert counts["T:INT"][0] == 1 and counts["T:FLOAT"][1] == 1
        assert found
    finally:
        sub.close()


def test_puts_from_both_protocols_are_logged_with_identity(engine_factory, pva, ca):
    engine = engine_factory(ALLTYPES)
    pva(engine).put("T:INT", 21, wait=True)
    assert ca(engine).put("T:INT", 22)["ok"]
    recs = wait_for(lambda: engine.putlog.tail(2) if len(engine.putlog.tail(5)) >= 2 else None)
    by_proto = {r.protocol: r for r in recs}
    assert by_proto["pva"].client.startswith(f"{USER}@127.0.0.1:")
    assert (by_proto["pva"].old, by_proto["pva"].requested, by_proto["pva"].result) == (7, 21, "accepted")
    assert by_proto["ca"].client == f"{USER}@{socket.gethostname()}"
    assert (by_proto["ca"].old, by_proto["ca"].requested) == (21, 22)
    lines = (engine.config.state_dir / "putlog.jsonl").read_text().splitlines()
    assert [json.loads(x)["requested"] for x in lines[-2:]] == [21, 22]


ACF = """
UAG(ops) { somebody_else }
ASG(DEFAULT) {
    RULE(1, READ)
    RULE(1, WRITE) { UAG(ops) }
}
"""


def test_acf_refuses_puts_on_both_protocols(engine_factory, pva, ca, tmp_path):
    acf = tmp_path / "rules.acf"
    acf.write_text(ACF)
    engine = engine_factory(ALLTYPES, acf=acf)
    ctx = pva(engine)
    with pytest.raises(RemoteError, match="write access denied"):
        ctx.put("T:INT", 5, wait=True)
    assert ctx.get("T:INT").value == 7
    rec = engine.putlog.tail(1)[0]
    assert (rec.protocol, rec.result) == ("pva", "refused: access")
    reply = ca(engine).put("T:INT", 6, timeout=2)
    assert not reply.get("ok"), reply
    assert ctx.get("T:INT").value == 7


def test_a_scripts_own_access_security_file_governs_without_acf(engine_factory, pva, ca,
                                                                tmp_path, caplog):
    """Alone, a script's initAccessSecurityFile protects its PVs; ignored, they were
    writable by anybody. Without --acf it governs both protocols (found beside the script,
    macros substituted); with --acf the operator's file wins, and the log says so."""
    script = plugin_path("script_acf")
    engine = engine_factory(script)
    ctx = pva(engine)
    with pytest.raises(RemoteError, match="write access denied"):
        ctx.put("ACF:LOCK", 5.0, wait=True)
    assert not ca(engine).put("ACF:LOCK", 6.0, timeout=2).get("ok")
    assert ctx.get("ACF:LOCK").value == 1.0
    ctx.put("ACF:FREE", 3.0, wait=True)
    assert ca(engine).put("ACF:FREE", 4.0, timeout=2).get("ok")
    assert "script_acf.as (G=LOCKED) governs both protocols" in caplog.text
    engine.stop()
    acf = tmp_path / "rules.acf"
    acf.write_text("ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(1, WRITE)\n}\n")
    engine = engine_factory(script, acf=acf, state_dir=tmp_path / "second")
    pva(engine).put("ACF:LOCK", 5.0, wait=True)  # the operator's file: writable
    assert f"is not applied: --acf {acf} governs every plugin" in caplog.text


@pytest.mark.parametrize("text, macros, out", [
    ("ASG($(G)) {", {"G": "LOCKED"}, "ASG(LOCKED) {"),
    ("ASG(${G}) {", {"G": "LOCKED"}, "ASG(LOCKED) {"),
    ("ASG($(G=RO)) {", {}, "ASG(RO) {"),
    ("ASG($(G=RO)) {", {"G": "X"}, "ASG(X) {"),
    ("HAG(h) { $(HOST) }", {}, "HAG(h) { $(HOST) }"),
])
def test_acf_macros_are_expanded_as_aslib_does(text, macros, out):
    from pvconsole.access import expand_macros
    assert expand_macros(text, macros) == out


def test_acf_grants_listed_users(engine_factory, pva, tmp_path):
    acf = tmp_path / "rules.acf"
    acf.write_text(ACF.replace("somebody_else", f"somebody_else, {USER}"))
    engine = engine_factory(ALLTYPES, acf=acf)
    pva(engine).put("T:INT", 5, wait=True)
    assert pva(engine).get("T:INT").value == 5


def test_unparsable_acf_is_a_startup_error_naming_the_line(tmp_path):
    from conftest import loopback_config
    from pvconsole.engine import Engine, StartupError
    acf = tmp_path / "bad.acf"
    acf.write_text("ASG(DEFAULT) {\n    RULE(1, WRITE\n}\n")
    with pytest.raises(StartupError, match=r"bad.acf: Syntax error on line 3"):
        Engine(loopback_config(tmp_path / "s", [ALLTYPES], acf=acf)).start()


def test_unknown_access_level_grants_nothing(engine_factory, pva, tmp_path):
    acf = tmp_path / "rules.acf"
    acf.write_text("ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(1, SUPERUSER)\n}\n")
    engine = engine_factory(ALLTYPES, acf=acf)
    with pytest.raises(RemoteError, match="write access denied"):
        pva(engine).put("T:INT", 5, wait=True)


@pytest.mark.parametrize("rules, restricted", [
    ("RULE(1, READ)", False),
    ("RULE(1, WRITE)", False),
    ("RULE(1, READ) { UAG(ops) }", True),
    ("RULE(1, WRITE) { HAG(consoles) }", True),
    ("RULE(1, READ) { CALC(\"A>0\") }", True),
    ("RULE(1, NONE)", True),
])
def test_an_asg_restricts_read_unless_a_rule_grants_it_to_everybody(tmp_path, rules, restricted):
    from pvconsole.access import AccessRules
    acf = tmp_path / "rules.acf"
    acf.write_text("UAG(ops) {alice}\nHAG(consoles) {localhost}\nASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n"
                   f"ASG(G) {{\n    {rules}\n}}\n")
    access = AccessRules(acf)
    assert access.read_restricted("G") is restricted
    assert access.read_restricted("DEFAULT") is False
    assert access.read_restricted("UNKNOWN") is False  # DEFAULT's rules
    assert AccessRules(None).read_restricted("G") is False


def test_pvs_whose_asg_refuses_read_are_off_pva_unless_turned_on(engine_factory, pva, ca,
                                                                  tmp_path, caplog):
    """CA refuses their gets to clients the rules do not name; PVA cannot (p4p's server
    serves gets and monitors without asking), so they are not served on PVA, the log says
    why, and an operator's choice to serve them anyway holds."""
    plugin = tmp_path / "vault.py"
    plugin.write_text('prefix = "VAULT:"\npvdb = {"SECRET": {"asg": "NOREAD", "value": 42},\n'
                      '        "OPEN": {"value": 1}}\n')
    acf = tmp_path / "rules.acf"
    acf.write_text("UAG(ops) {nobody_here}\nASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n"
                   "ASG(NOREAD) {\n    RULE(1, READ) { UAG(ops) }\n}\n")
    engine = engine_factory(str(plugin), acf=acf)
    ctx = pva(engine)
    assert ctx.get("VAULT:OPEN").value == 1
    with pytest.raises(TimeoutError):
        ctx.get("VAULT:SECRET", timeout=1.0)
    assert "ASG NOREAD refuses READ to some clients: its 1 PV(s) are not served on PVA" in caplog.text
    assert ca(engine).call(op="get", pv="VAULT:SECRET", timeout=2).get("value") is None
    engine.set_exposure("VAULT:SECRET", "on")
    assert wait_for(lambda: ctx.get("VAULT:SECRET", timeout=1.0).value == 42, timeout=10)


LEVEL_PLUGIN = """
from pcaspy import Driver
prefix = "TANK:"
pvdb = {"LEVEL": {"type": "float"}, "FILL": {"type": "float", "asg": "fill"}}
class TankDriver(Driver):
    pass
"""


def _tank(tmp_path):
    """A plugin and an ACF whose FILL is writable only while LEVEL < 3 (INPA + CALC)."""
    plugin = tmp_path / "tank.py"
    plugin.write_text(LEVEL_PLUGIN)
    acf = tmp_path / "rules.acf"
    acf.write_text('ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n'
                   'ASG(fill) {\n    INPA(TANK:LEVEL)\n    RULE(1, READ)\n'
                   '    RULE(1, WRITE) {\n        CALC("A<3")\n    }\n}\n')
    return plugin, acf


def test_calc_rules_read_their_inputs_for_pva_puts(engine_factory, pva, tmp_path):
    """ASG with INPA + CALC (pcaspy's access_control example): PVA puts follow the input,
    as CA's asLib does (p4p's engine alone takes every input as 0)."""
    plugin, acf = _tank(tmp_path)
    engine = engine_factory(str(plugin), acf=acf)
    ctx = pva(engine)
    ctx.put("TANK:LEVEL", 5.0, wait=True)

    def refused() -> bool:
        try:
            ctx.put("TANK:FILL", 1.0, wait=True)
        except RemoteError as e:
            return "write access denied" in str(e)
        return False

    wait_for(refused, timeout=10)
    ctx.put("TANK:LEVEL", 1.0, wait=True)
    wait_for(lambda: not refused(), timeout=10)
    assert ctx.get("TANK:FILL").value == 1.0


def test_calc_rules_read_their_inputs_for_ca_puts(tmp_path):
    """The CA server's asLib reads INP PVs with a CA client of its own process: it must
    find this server's PVs. A headless process: asLib's client starts once per process."""
    from conftest import CAClient
    plugin, acf = _tank(tmp_path)
    ca_port = free_port()
    proc, _ = _headless(tmp_path, "--plugin", str(plugin), "--acf", str(acf), ca_port=ca_port)
    ca = CAClient(ca_port)
    try:
        assert ca.put("TANK:LEVEL", 5.0, wait=True).get("ok")
        wait_for(lambda: "denied" in ca.put("TANK:FILL", 2.0, wait=True).get("error", ""), timeout=10)
        assert ca.put("TANK:LEVEL", 1.0, wait=True).get("ok")
        wait_for(lambda: ca.put("TANK:FILL", 3.0, wait=True).get("ok"), timeout=10)
    finally:
        ca.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _headless(tmp_path, *extra, ca_port=None):
    pva_port = free_port()
    args = [sys.executable, "-m", "pvconsole", "--headless", "--state-dir", str(tmp_path / "state"),
            "--ca-intf", "127.0.0.1", "--ca-port", str(ca_port or free_port()), "--ca-beacon-addr", "127.0.0.1",
            "--ca-beacon-port", str(free_port()), "--pva-intf", "127.0.0.1", "--pva-port", str(pva_port),
            "--pva-broadcast-port", str(free_port()), "--control-prefix", "CTL:", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "pvconsole: serving" in line:
            break
    else:
        raise AssertionError("console did not start")
    env = {"EPICS_PVA_NAME_SERVERS": f"127.0.0.1:{pva_port}", "EPICS_PVA_ADDR_LIST": "",
           "EPICS_PVA_AUTO_ADDR_LIST": "NO"}
    return proc, env


def test_kill_9_right_after_puts_loses_no_put_log_line(tmp_path):
    proc, env = _headless(tmp_path, "--plugin", ALLTYPES)
    try:
        ctx = pva_context(env)
        for i in range(50):
            ctx.put("T:INT", 1000 + i, wait=True)
        ctx.close()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=5)
    finally:
        proc.kill()
    lines = (tmp_path / "state" / "putlog.jsonl").read_text().splitlines()
    assert [json.loads(x)["requested"] for x in lines] == [1000 + i for i in range(50)]


def test_a_torn_last_line_does_not_stop_the_next_start(engine_factory, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    (state / "putlog.jsonl").write_text('{"time": "t", "pv": "T:INT", "protocol": "pva", "client": "c", '
                                        '"old": 1, "requested": 2, "result": "accepted", "reason": "", '
                                        '"duration_ms": 0.1, "seq": 1}\n{"time": "t", "pv": "T:IN')
    engine = engine_factory(ALLTYPES, state_dir=state)
    assert [r.requested for r in engine.putlog.tail(5)] == [2]


def ctl(env, *args):
    return subprocess.run([sys.executable, "-m", "pvconsole", "ctl", "--prefix", "CTL:", *args],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=30)


def test_ctl_expose_from_another_process(tmp_path):
    proc, env = _headless(tmp_path, "--plugin", ALLTYPES)
    try:
        ctx = pva_context(env)
        assert ctx.get("T:INT", timeout=5).value == 7
        out = ctl(env, "expose", "T:I*", "off")
        assert out.returncode == 0 and "off: 2 PV(s) changed" in out.stdout, out
        with pytest.raises(TimeoutError):
            pva_context(env).get("T:INT", timeout=1)
        assert ctl(env, "expose", "T:INT", "on").returncode == 0
        assert pva_context(env).get("T:INT", timeout=5).value == 7
        status = ctl(env, "status")
        assert status.returncode == 0 and "PVS" in status.stdout
        ctx.put("T:STRING", "via pva", wait=True)
        log = wait_for(lambda: "via pva" in ctl(env, "putlog", "--tail", "5").stdout, timeout=10)
        assert log
        answer = ctl(env, "acf-test", "CTL:EXPOSE", "mallory", "10.9.9.9")
        assert "PVA read yes  write no" in answer.stdout, answer
        typo = ctl(env, "expose", "T:NTI", "off")
        assert typo.returncode == 1 and typo.stderr.strip() == (
            "pvconsole ctl: CTL:EXPOSE: refused: driver: no PV matches 'T:NTI'"), typo
        ctx.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


def test_ctl_expose_refused_when_the_acf_says_so(tmp_path):
    acf = tmp_path / "rules.acf"
    acf.write_text("ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\nASG(PVCONSOLE_CTL) {\n    RULE(1, READ)\n}\n")
    proc, env = _headless(tmp_path, "--plugin", ALLTYPES, "--acf", str(acf))
    try:
        out = ctl(env, "expose", "T:INT", "off")
        assert out.returncode == 1 and "write access denied" in out.stderr, out
        assert pva_context(env).get("T:INT", timeout=5).value == 7
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


def test_parse_cas_show_reads_user_host_channels_monitors_fd():
    text = (ROOT / "tests" / "data" / "cas_show_level3.txt").read_text()
    [c] = clients.parse_cas_show(text)
    assert (c.user, c.host, c.channels, c.monitors, c.fd) == ("alice", "opi1", ["S:X", "S:N"], 2, 15)


def test_clients_pv_is_made_only_for_someone_who_looks_and_is_fresh_when_read(engine_factory, pva, ca):
    engine = engine_factory(ALLTYPES, control_prefix="CTL:")
    reports = []
    real = engine._clients_report
    engine._clients_report = lambda cost: reports.append(1) or real(cost)  # counts the costly reports
    client = ca(engine)
    client.monitor("T:INT")
    ctx = pva(engine)
    sub = ctx.monitor("T:FLOAT", lambda v: None)
    try:
        wait_for(lambda: engine.entry("T:FLOAT").pva_clients and engine.entry("T:INT").ca_monitored)
        time.sleep(2.5)  # > CLIENTS_EVERY: the control thread ran, nobody watches CLIENTS
        assert reports == []
        text = ctx.get("CTL:CLIENTS").value  # first PVA channel: refreshed before the get
        seen = {c["protocol"]: c["channels"] for c in json.loads(text)}
        assert "T:FLOAT" in seen["pva"] and "T:INT" in seen["ca"]
        assert reports
        driver = engine.drivers["pvconsole"]
        engine._clients_cache = (float("-inf"), None)  # the shared report has aged out
        before = len(reports)
        text = engine.run_on_driver_thread(lambda: driver.read("CLIENTS"))  # a CA get's path
        assert len(reports) == before + 1 and "T:INT" in text
    finally:
        sub.close()


def test_a_costly_client_report_is_shared_longer(engine_factory, monkeypatch):
    """A report that holds the servers for 50 ms (10,000 CA channels) is made at most
    every 2.5 s, however often the console and the control PVs ask."""
    from pvconsole import engine as engine_mod
    assert engine_mod.clients_max_age(0.001) == engine_mod.CLIENTS_MAX_AGE
    assert engine_mod.clients_max_age(0.05) == pytest.approx(0.05 / engine_mod.CLIENTS_DUTY)
    engine = engine_factory(ALLTYPES)
    made = []

    def slow_report(cost):
        made.append(time.monotonic())
        time.sleep(0.05)
        cost.append(0.05)  # what making it cost (here: all of it)
        return []

    monkeypatch.setattr(engine, "_clients_report", slow_report)
    engine._clients_cache = (0.0, None)
    for _ in range(5):
        engine.clients()
        time.sleep(0.3)  # past CLIENTS_MAX_AGE (1 s) after four asks
    assert len(made) == 1 and engine.clients_max_age >= 2.5


def test_a_refused_expose_says_so_over_ca_too(engine_factory, pva, ca, caplog):
    """A CA put reports success whatever the driver answers: EXPOSE:RESULT tells. A typo
    is a refusal: one line in the log and the put log, no traceback."""
    engine = engine_factory(ALLTYPES, control_prefix="CTL:")
    shown = {s.name: s for s in engine.snapshot()}  # as the console's table shows them
    for name in ("CTL:EXPOSE", "CTL:EXPOSE:RESULT", "CTL:ACF:TEST", "CTL:CLIENTS"):
        assert (shown[name].value, shown[name].severity) == ("", 0), name
    for name in ("CTL:EXPOSE", "CTL:EXPOSE:RESULT", "CTL:ACF:TEST"):  # empty, not in alarm
        got = pva(engine).get(name)
        assert (got.value, got.alarm.severity) == ("", 0), name
    client = ca(engine)
    assert client.put("CTL:EXPOSE", "NOPE:* off", wait=True).get("ok")
    assert client.get("CTL:EXPOSE:RESULT", as_string=True)["value"] == "refused: no PV matches 'NOPE:*'"
    with pytest.raises(Exception, match="CTL:EXPOSE: refused: driver: no PV matches 'NOPE:\\*'"):
        pva(engine).put("CTL:EXPOSE", "NOPE:* off", wait=True)
    with pytest.raises(Exception, match="no PV named NOPE"):
        pva(engine).put("CTL:ACF:TEST", "NOPE alice opi1", wait=True)
    refusals = [r for r in caplog.records if "put refused" in r.getMessage()]
    assert len(refusals) == 3 and not any(r.exc_info for r in caplog.records), caplog.text
    assert [p.result for p in engine.putlog.tail(3)] == ["refused: driver"] * 3
    assert client.put("CTL:EXPOSE", "T:INT off", wait=True).get("ok")
    assert client.get("CTL:EXPOSE:RESULT", as_string=True)["value"] == "off: 1 PV(s) changed"


def test_explaining_an_asg_the_file_lacks_names_default(tmp_path):
    """A PV's ASG that the file does not define falls back to DEFAULT, as in an IOC."""
    from pvconsole.access import AccessRules
    acf = tmp_path / "rules.acf"
    acf.write_text("UAG(ops) { alice }\nASG(DEFAULT) {\n    RULE(1, READ)\n"
                   "    RULE(1, WRITE) { UAG(ops) }\n}\n")
    rules = AccessRules(acf)
    ca, pva = rules.explain("NOSUCH", "alice", "127.0.0.1")
    assert pva.write and "NOSUCH (not in the file: DEFAULT's rules apply)" in pva.why
    assert not rules.explain("NOSUCH", "bob", "127.0.0.1")[1].write
    assert "not in the file" not in rules.explain("DEFAULT", "alice", "127.0.0.1")[1].why


def test_a_busy_driver_thread_does_not_make_the_client_report_look_dear(engine_factory, ca):
    """The report's cost sets how long it is shared; it counted the wait for the driver
    thread: a 3 s write() there kept a client that had gone on screen for 150 s."""
    from pvconsole.engine import CLIENTS_MAX_AGE
    engine = engine_factory(ALLTYPES)
    ca(engine).monitor("T:INT")
    busy = threading.Thread(target=engine.run_on_driver_thread, args=(lambda: time.sleep(1.0),))
    busy.start()
    time.sleep(0.2)  # the driver thread sleeps: the CA report waits for it
    try:
        assert any("T:INT" in c.channels for c in engine.clients())
    finally:
        busy.join()
    assert engine.clients_max_age == CLIENTS_MAX_AGE


@contextlib.contextmanager
def _both_clients(tmp_path, *args):
    """A headless pvconsole with ``args`` (asLib's input client starts once per process),
    and a CA and a PVA client of it."""
    from conftest import CAClient
    from p4p.client.thread import Context
    ca_port = free_port()
    proc, env = _headless(tmp_path, *args, ca_port=ca_port)
    ca = CAClient(ca_port)
    ctx = Context("pva", conf=env, useenv=False)
    try:
        yield ca, ctx
    finally:
        ctx.close()
        ca.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def _pva_put(ctx, pv: str, value: float) -> bool:
    """Whether a PVA put was allowed (a refusal must be the ACF's)."""
    try:
        ctx.put(pv, value, wait=True, timeout=5)
    except RemoteError as e:
        assert "write access denied" in str(e)
        return False
    return True


def _ca_put(ca, pv: str, value: float) -> bool:
    """Whether a CA put was allowed (a refusal must be the ACF's)."""
    reply = ca.put(pv, value, wait=True)
    assert reply.get("ok") or "denied" in reply.get("error", ""), reply
    return bool(reply.get("ok"))


def _script_with_own_acf(tmp_path, acf_text: str, pvdb: str, prefix: str, start: str = "") -> str:
    """A pcaspy script that loads its own access security file, as pcaspy's example."""
    acf = tmp_path / "own.acf"
    acf.write_text(acf_text)
    script = tmp_path / "own_acf.py"
    script.write_text(
        "from pcaspy import Driver, SimpleServer\n"
        f"pvdb = {pvdb}\n"
        "class D(Driver):\n    pass\n"
        "if __name__ == '__main__':\n"
        "    server = SimpleServer()\n"
        f"    server.initAccessSecurityFile({str(acf)!r})\n"
        f"    server.createPV({prefix!r}, pvdb)\n"
        "    driver = D()\n"
        f"{start}"
        "    while True:\n        server.process(0.1)\n")
    return str(script)


def test_calc_in_epics_syntax_and_rule_levels_decide_alike_on_both_protocols(tmp_path):
    """``CALC("A#1")`` is EPICS's "A not equal 1" (p4p's engine read it as Python: ``A``,
    the rest a comment, so PVA granted what CA refused), and a ``RULE(0, WRITE)`` does not
    apply to pcaspy's clients (level 1): PVA granted it."""
    plugin = tmp_path / "tank.py"
    plugin.write_text(LEVEL_PLUGIN.replace(
        '"FILL": {"type": "float", "asg": "fill"}',
        '"FILL": {"type": "float", "asg": "fill"}, "LOW": {"type": "float", "asg": "low"}'))
    acf = tmp_path / "rules.acf"
    acf.write_text('ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n'
                   'ASG(fill) {\n    INPA(TANK:LEVEL)\n    RULE(1, READ)\n'
                   '    RULE(1, WRITE) {\n        CALC("A#1")\n    }\n}\n'
                   'ASG(low) {\n    RULE(1, READ)\n    RULE(0, WRITE)\n}\n')
    with _both_clients(tmp_path, "--plugin", str(plugin), "--acf", str(acf)) as (ca, ctx):
        assert _ca_put(ca, "TANK:LEVEL", 1.0)
        wait_for(lambda: not _ca_put(ca, "TANK:FILL", 2.0) and not _pva_put(ctx, "TANK:FILL", 2.0),
                 timeout=10)
        assert _ca_put(ca, "TANK:LEVEL", 0.0)
        wait_for(lambda: _ca_put(ca, "TANK:FILL", 3.0) and _pva_put(ctx, "TANK:FILL", 4.0), timeout=10)
        assert not _ca_put(ca, "TANK:LOW", 1.0)
        assert not _pva_put(ctx, "TANK:LOW", 1.0)


def test_a_scripts_own_acf_with_inputs_governs_ca_puts(tmp_path):
    """A script's ``initAccessSecurityFile`` with INPA + CALC: CA writes follow the input.
    asLib's CA client of the inputs was started before the script's file replaced the
    rules, and never read this file's: CA refused the write whatever LOCK held."""
    script = _script_with_own_acf(
        tmp_path, 'ASG(DEFAULT) {\n    RULE(1, WRITE)\n}\n'
                  'ASG(LOCK) {\n    INPA("OWN:LOCK")\n    RULE(1, READ)\n'
                  '    RULE(1, WRITE) {\n        CALC("A=0")\n    }\n}\n',
        "{'LOCK': {'type': 'int'}, 'GATED': {'asg': 'LOCK'}}", "OWN:")
    with _both_clients(tmp_path, "--plugin", script) as (ca, ctx):
        # LOCK is UDF, INVALID: asLib takes it as a bad input, and so does PVA
        assert not _ca_put(ca, "OWN:GATED", 1.0)
        wait_for(lambda: not _pva_put(ctx, "OWN:GATED", 5.0), timeout=10)
        assert _ca_put(ca, "OWN:LOCK", 0)
        wait_for(lambda: _ca_put(ca, "OWN:GATED", 2.0), timeout=10)
        wait_for(lambda: _pva_put(ctx, "OWN:GATED", 5.0), timeout=10)
        assert _ca_put(ca, "OWN:LOCK", 1)
        wait_for(lambda: not _ca_put(ca, "OWN:GATED", 3.0), timeout=10)
        wait_for(lambda: not _pva_put(ctx, "OWN:GATED", 5.0), timeout=10)


def test_a_calc_that_reads_no_input_never_applies(tmp_path):
    """asLib computes a rule's CALC when an input it reads changes: CALC("1") is never
    computed, and CA never granted its rule (checked with a CA client); PVA did."""
    from pvconsole.access import AccessRules
    acf = tmp_path / "calc1.acf"
    acf.write_text('ASG(DEFAULT) {\n    RULE(1, READ)\n    RULE(1, WRITE) { CALC("1") }\n}\n')
    assert not AccessRules(acf).can_write("DEFAULT", "op", "127.0.0.1")


def test_a_scripts_own_acf_without_default_leaves_pvs_without_an_asg_open(tmp_path):
    """pcaspy's access_control example: its file has no ASG(DEFAULT), and alone pcaspy
    leaves PVs without an asg out of access security. They were put in DEFAULT, which
    that file leaves empty: unreadable and unwritable on CA, off PVA, and the example's
    rule, which reads LEVEL, never granted FILL either."""
    script = _script_with_own_acf(
        tmp_path, 'ASG(fill) {\n    INPA("AC:LEVEL")\n    RULE(1, READ)\n'
                  '    RULE(1, WRITE) {\n        CALC("A<3")\n    }\n}\n',
        "{'LEVEL': {'value': 0.0}, 'FILL': {'asg': 'fill'}}", "AC:",
        start="    driver.setParam('LEVEL', 0.0)\n    driver.updatePVs()\n")
    with _both_clients(tmp_path, "--plugin", script) as (ca, ctx):
        assert _ca_put(ca, "AC:LEVEL", 1.0)
        assert ctx.get("AC:LEVEL", timeout=5) == 1.0  # served on PVA
        assert _pva_put(ctx, "AC:LEVEL", 2.0)
        wait_for(lambda: _ca_put(ca, "AC:FILL", 5.0), timeout=10)
        assert _ca_put(ca, "AC:LEVEL", 5.0)
        wait_for(lambda: not _ca_put(ca, "AC:FILL", 6.0), timeout=10)
