"""The engine host's focus: which PV changes a console is sent (pure, no servers)."""

from __future__ import annotations

from pvconsole.enginehost import Focus
from pvconsole.mirror import PVState

BASE = PVState("A", "p", "float", "NTScalar double", 0.0, "0.0", 0, 0, 0.0, "on", False, 0, 0, 0)


class FakeEntry:
    """An engine entry as the focus reads it: a name, flags and a state built on demand."""

    built = 0

    def __init__(self, name: str, value: float = 0.0, **kw) -> None:
        self.name = name
        self.now = BASE._replace(name=name, value=value, text=str(value), **kw)

    def flags(self) -> tuple:
        return self.now.flags

    def state(self) -> PVState:
        FakeEntry.built += 1
        return self.now


def st(name: str, value: float = 0.0, **kw) -> FakeEntry:
    return FakeEntry(name, value, **kw)


def names(states: list[PVState]) -> list[tuple[str, float]]:
    return [(s.name, s.value) for s in states]


def test_without_focus_everything_goes() -> None:
    focus = Focus()
    assert names(focus.select([st("A", 1), st("B", 2)])) == [("A", 1), ("B", 2)]


def test_states_off_screen_are_not_built() -> None:
    focus = Focus()
    focus.select([st("B")])
    focus.set(["A"])
    before = FakeEntry.built
    focus.select([st("B", 1), st("B", 2)])
    assert FakeEntry.built == before


def test_value_changes_off_screen_wait_until_shown() -> None:
    focus = Focus()
    focus.select([st("A"), st("B")])  # the console has both
    focus.set(["A"])
    assert names(focus.select([st("A", 1), st("B", 1)])) == [("A", 1)]
    assert names(focus.select([st("B", 2)])) == []
    focus.set(["B"])
    assert names(focus.select([])) == [("B", 2)]  # the newest held state, once
    assert names(focus.select([])) == []


def test_alarm_exposure_and_client_changes_go_on_screen_or_not() -> None:
    focus = Focus()
    focus.select([st("B")])
    focus.set([])
    assert names(focus.select([st("B", 1, severity=2)])) == [("B", 1)]
    assert names(focus.select([st("B", 2, severity=2)])) == []  # value only: held
    assert names(focus.select([st("B", 3, exposure="off", severity=2)])) == [("B", 3)]
    assert names(focus.select([st("B", 4, exposure="off", severity=2, pva_clients=1)])) == [("B", 4)]


def test_lifting_the_focus_sends_what_was_held() -> None:
    focus = Focus()
    focus.select([st("A"), st("B")])
    focus.set(["A"])
    focus.select([st("B", 5)])
    focus.set(None)
    assert sorted(names(focus.select([st("A", 6)]))) == [("A", 6), ("B", 5)]


def test_flags_sent_without_focus_are_remembered() -> None:
    """An alarm sent while everything went must not be taken as already known later."""
    focus = Focus()
    focus.select([st("B", severity=0)])
    focus.set(["A"])
    focus.select([st("B", severity=0)])
    focus.set(None)
    focus.select([st("B", 1, severity=2)])  # the console now shows MAJOR
    focus.set(["A"])
    assert names(focus.select([st("B", 2, severity=0)])) == [("B", 2)]  # back to none: sent
