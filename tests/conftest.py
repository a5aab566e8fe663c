"""Shared fixtures: real servers on loopback with free ports, real clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from pvconsole.loopback import free_port as _free_port

HERE = Path(__file__).parent
ROOT = HERE.parent
PLUGINS = HERE / "plugins"


def free_port() -> int:
    """A loopback port free on TCP and UDP (CA uses the same number for both)."""
    return _free_port(udp=True)


def wait_for(fn: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll ``fn`` until it returns something truthy; fail with its last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 - keep polling, report at the end
            last = e
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


def loopback_config(state_dir: Path, plugins: list[str], **kw: Any):
    from pvconsole.loopback import loopback_config as make
    return make(plugins, state_dir, **kw)


def plugin_path(name: str) -> str:
    return str(PLUGINS / f"{name}.py") if not name.endswith(".py") else str(PLUGINS / name)


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """Start an in-process engine on fresh loopback ports; stopped after the test."""
    from pvconsole.engine import Engine
    started: list[Engine] = []

    def make(*plugins: str, state_dir: Path | None = None, **kw: Any) -> Engine:
        cfg = loopback_config(state_dir or tmp_path / "state", list(plugins), **kw)
        engine = Engine(cfg)
        engine.start()
        started.append(engine)
        return engine

    yield make
    for engine in started:
        engine.stop()


def pva_context(conf: dict[str, str]):
    from p4p.client.thread import Context
    return Context("pva", conf=conf, useenv=False, unwrap={})


@pytest.fixture
def pva(request: pytest.FixtureRequest) -> Iterator[Callable[[Any], Any]]:
    """``pva(engine)`` -> a p4p client Context talking straight to that engine."""
    contexts = []

    def make(engine: Any):
        ctx = pva_context(engine.pva_client_conf())
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()


class CAClient:
    """pyepics in a subprocess (its CA context is per process and reads env at import)."""

    def __init__(self, ca_port: int) -> None:
        env = dict(os.environ, EPICS_CA_ADDR_LIST=f"127.0.0.1:{ca_port}", EPICS_CA_AUTO_ADDR_LIST="NO",
                   EPICS_CA_SERVER_PORT=str(ca_port))
        self.proc = subprocess.Popen([sys.executable, str(HERE / "ca_client_proc.py")], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        assert json.loads(self.proc.stdout.readline()).get("ready")

    def call(self, **cmd: Any) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return reply

    def get(self, pv: str, **kw: Any) -> dict:
        reply = self.call(op="get", pv=pv, **kw)
        assert "error" not in reply, reply
        return reply

    def put(self, pv: str, value: Any, **kw: Any) -> dict:
        return self.call(op="put", pv=pv, value=value, **kw)

    def monitor(self, pv: str) -> None:
        assert self.call(op="monitor", pv=pv).get("ok")

    def events(self) -> list[dict]:
        return self.call(op="events")["events"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def ca() -> Iterator[Callable[[Any], CAClient]]:
    """``ca(engine)`` -> a pyepics client process for that engine's CA server."""
    clients: list[CAClient] = []

    def make(engine: Any) -> CAClient:
        client = CAClient(engine.config.ca_port)
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.close()
