"""One ``.acf`` access-security file for both protocols.

CA: pcaspy hands the file to the CA server's own EPICS asLib, and each PV's ``asg`` (or
``DEFAULT``) decides per client. PVA: the same file is parsed with p4p's ACF engine
(``p4p.asLib``) and checked on every PVA put against the client's account and peer
address. An unknown access level in a rule grants nothing; an unknown ASG falls back to
DEFAULT, as in an IOC.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import acfcalc

log = logging.getLogger(__name__)

_INP = re.compile(r"\bINP[A-L]\s*\(")


class AccessError(Exception):
    """An access-security file that cannot be used (the message names the line)."""


@dataclass(frozen=True)
class Verdict:
    """What one protocol would allow a client on a PV."""

    protocol: str
    read: bool
    write: bool
    why: str


class _Probe:
    """Stands in for p4p's gateway channel: the ACF engine reports permissions to it."""

    name = "probe"
    put = False

    def access(self, put: bool = False, **_: bool) -> None:
        self.put = bool(put)


def read_acf(path: Path) -> str:
    """The text of an access security file (AccessError: one line naming it)."""
    try:
        return path.read_text()
    except OSError as e:
        raise AccessError(f"access security file {path}: {e.strerror or e}") from None


_MACRO = re.compile(r"\$(?:\(([^)=]+)(?:=([^)]*))?\)|\{([^}=]+)(?:=([^}]*))?\})")


def expand_macros(text: str, macros: dict[str, str]) -> str:
    """EPICS macro references in an ACF, ``$(NAME)``, ``${NAME}``, ``$(NAME=default)``,
    replaced as asLib's ``asInitFile`` with a substitution string would (pure); one
    without a value or default is left as it is."""
    def sub(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        default = m.group(2) if m.group(1) else m.group(4)
        if name in macros:
            return macros[name]
        return default if default is not None else m.group(0)
    return _MACRO.sub(sub, text)


#: The severity from which asLib takes a rule's input as bad (INVALID).
INVALID = 3
#: The access level asLib gives every client of pcaspy's CA server: a rule of level 0
#: (``RULE(0, WRITE)``) does not apply to them, as to an IOC's ASL1 fields.
CLIENT_LEVEL = 1


def _rules_engine() -> type:
    """p4p's ACF engine (parser, UAG/HAG groups, INP subscriptions) deciding as the CA
    server's asLib decides: rules below the client's level skipped, ``CALC`` in EPICS's
    calc language (:mod:`pvconsole.acfcalc`, applied when it gives 1 and every input it
    reads is connected). p4p's own took any rule level, and its CALC was Python."""
    from p4p.asLib import PUT, Engine
    from p4p.client.thread import Disconnected

    class Rules(Engine):
        def __init__(self, acf: str, ctxt: Any = None) -> None:
            self._trees: dict[str, Any] = {}  # CALC text -> tree (None: unusable)
            self._live: set[tuple[str, str]] = set()  # (ASG, input) with a value
            quiet = logging.getLogger("p4p.asLib")
            level, quiet.level = quiet.level, logging.CRITICAL  # (its Python compile of
            try:  # each CALC logs a traceback for EPICS syntax such as A=1)
                super().__init__(acf, ctxt=ctxt)
            finally:
                quiet.level = level

        def tree(self, text: str) -> Any:
            if text not in self._trees:
                try:
                    self._trees[text] = acfcalc.parse(text)
                except acfcalc.CalcError as e:
                    log.error("access security: CALC(%r) not understood (%s): its rule "
                              "grants nothing over PVA", text, e)
                    self._trees[text] = None
            return self._trees[text]

        def _var_update(self, grps: Any, value: Any) -> None:
            # asLib takes an input that is disconnected or INVALID (a pcaspy PV never
            # written is UDF INVALID) as bad: rules whose CALC reads it do not apply
            bad = isinstance(value, Disconnected) or getattr(value, "severity", 0) >= INVALID
            with self._lock:
                for key in grps:
                    if bad:
                        self._live.discard(key)
                    else:
                        self._live.add(key)
            super()._var_update(grps, value)

        def applies(self, group: str, conds: Any, inputs: dict, uags: set, hags: set) -> bool:
            for cond in conds:
                if cond[0] == "UAG":
                    ok = bool(cond[1] & uags)
                elif cond[0] == "HAG":
                    ok = bool(cond[1] & hags)
                elif cond[0] == "CALC":
                    tree = self.tree(cond[1])
                    used = acfcalc.inputs_used(tree) if tree is not None else set()
                    # (asLib computes a CALC when an input it reads changes: one that
                    # reads none, CALC("1"), is never computed and never applies)
                    ok = bool(used) and all((group, var) in self._live for var in used) \
                        and acfcalc.grants(tree, inputs)
                else:
                    ok = False
                if not ok:
                    return False
            return True

        def create(self, channel: Any, group: str, user: str, host: str, level: int,
                   roles: Any = ()) -> None:
            perm = 0
            with self._lock:
                uags = set(self._uag.get(user, set()))
                for role in roles:
                    uags |= self._uag.get("role/" + role, set())
                hags = self._hag_addr.get(host, set())
                known = group in self._asg
                rules, inputs = self._asg[group] if known else self._asg_DEFAULT
                for mask, rule_level, _trap, conds in rules:
                    if level > rule_level:
                        continue
                    if self.applies(group if known else "DEFAULT", conds, inputs, uags, hags):
                        perm |= mask
                self._anodes[channel] = (group, user, host, level)
            channel.access(put=bool(perm & PUT))

    return Rules


def parse_acf(text: str, path: Path, ctxt: Any = None) -> Any:
    """The rules engine for ``text`` (:func:`_rules_engine`); AccessError (one line naming
    the file and, where the parser says, the line) for anything it cannot parse."""
    from p4p.asLib import ACFError
    try:
        return _rules_engine()(text, ctxt)
    except ACFError as e:
        raise AccessError(f"access security file {path}: {e}") from None
    except Exception:  # p4p's parser fails this way at an unexpected end of the file
        log.debug("ACF parse", exc_info=True)
        raise AccessError(f"access security file {path}: syntax error at the end of the file "
                          "(a '}' or ')' missing?)") from None


class AccessRules:
    """Parsed rules; ``None`` path means everybody may write (no access security)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._engine = None
        self._text = ""
        self._inputs: Any = None  # the p4p client context that reads INP PVs
        self._env_before: dict[str, str | None] = {}  # what start_ca changed
        if path is None:
            return
        self._text = read_acf(path)
        self._engine = parse_acf(self._text, path)

    def connect_inputs(self, conf: dict[str, str]) -> None:
        """Read the rules' ``INP`` PVs (``CALC`` conditions) over PVA with a client of
        this configuration. Without it p4p's engine takes every input as 0, so a PVA put
        that CA's asLib (which reads them over CA) refuses would be allowed."""
        if self._engine is None or not _INP.search(self._text):
            return
        from p4p.client.thread import Context
        self._inputs = Context("pva", conf=conf, useenv=True)  # NT values unwrapped: the engine takes floats
        self._engine = parse_acf(self._text, self.path, self._inputs)  # type: ignore[arg-type]

    def close(self) -> None:
        """Stop reading inputs; the environment as it was before :meth:`start_ca`."""
        if self._inputs is not None:
            self._inputs.close()
            self._inputs = None
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env_before = {}

    @property
    def active(self) -> bool:
        return self._engine is not None

    def can_write(self, asg: str, user: str, host: str) -> bool:
        """PVA check: ``host`` is the client's IP address (as a PVA peer gives it)."""
        if self._engine is None:
            return True
        probe = _Probe()
        self._engine.create(probe, asg or "DEFAULT", user, host, CLIENT_LEVEL)
        return probe.put

    def read_restricted(self, asg: str) -> bool:
        """Whether the rules may refuse some client READ on ``asg`` (no rule grants READ
        or WRITE to everybody). PVA cannot apply that: p4p's server serves gets and
        monitors without asking (only puts reach pvconsole), so such PVs stay off PVA
        unless the operator turns them on."""
        if self._engine is None:
            return False
        from p4p.asLib import READ
        try:  # p4p's parsed rules: {asg: ([(mask, level, trap, conditions)], inputs)}
            rules, _ = self._engine._asg.get(asg or "DEFAULT") or self._engine._asg_DEFAULT
            return not any(mask & READ and not conditions and level >= CLIENT_LEVEL
                           for mask, level, _, conditions in rules)
        except (AttributeError, TypeError, ValueError):  # another p4p: as before, not restricted
            log.debug("ACF rules of %s not readable", asg, exc_info=True)
            return False

    def explain(self, asg: str, user: str, host: str) -> list[Verdict]:
        """What CA and PVA would allow ``user`` on ``host`` (name or address) for ``asg``."""
        addr = _resolve(host)
        group = asg or "DEFAULT"
        if self._engine is None:
            return [Verdict(p, True, True, "no access security file") for p in ("ca", "pva")]
        write = self.can_write(group, user, addr)
        known = group in (getattr(self._engine, "_asg", None) or {group: None})
        named = group if known else f"{group} (not in the file: DEFAULT's rules apply)"
        why = f"ASG {named}, user {user!r}, host {host}" + (f" ({addr})" if addr != host else "")
        # CA's asLib matches HAGs by the host name the client announces; p4p's engine
        # resolves HAG members to addresses. With a resolvable host both agree.
        return [Verdict("ca", True, write, why), Verdict("pva", True, write, why)]

    def start_ca(self, own: list[str]) -> None:
        """Hand the file to the CA server's asLib (before any PV is created); the rules'
        ``INP`` PVs are read once :func:`start_inputs` runs.

        ``own``: this CA server's ``host:port``. asLib reads the rules' ``INP`` PVs with a
        CA client in this process (an IOC reads them from its database): they are looked
        for here first, then where ``EPICS_CA_ADDR_LIST`` points.
        """
        if self.path is None:
            return
        if _INP.search(self._text):
            before = os.environ.get("EPICS_CA_ADDR_LIST")
            self._env_before = {"EPICS_CA_ADDR_LIST": before}
            os.environ["EPICS_CA_ADDR_LIST"] = " ".join([*own, before or ""]).strip()
        from pcaspy import cas
        status = cas.asInitFile(str(self.path), "")
        if status:
            raise AccessError(f"access security file {self.path}: the CA server's asLib refused it (its reason is in the log)")


def start_inputs() -> None:
    """Start asLib's CA client of the ``INP`` PVs, for the rules loaded last (call once
    the plugins have loaded: a script's own ``initAccessSecurityFile`` replaces the
    rules while it loads). asLib's client connects the inputs of the file loaded when it
    starts; rules loaded after it never saw theirs, and their CALC rules granted nothing
    on CA. Once per process: a second start/stop pair of it hangs."""
    global _ca_started
    if not _ca_started:
        from pcaspy import cas
        cas.asCaStart()
        _ca_started = True


_ca_started = False


def _resolve(host: str) -> str:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return host
