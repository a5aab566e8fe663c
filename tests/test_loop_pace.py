"""How long the CA loop waits (pure: a clock and a post counter)."""

from pvconsole.engine import LoopPace


def test_idle_busy_and_batching() -> None:
    pace = LoopPace(idle=0.005, busy=0.001, batch_rate=3000, window=1.0)
    assert pace.next(0.0, 0, False) == 0.005            # nothing posted: idle wait
    assert pace.next(0.1, 5, False) == 0.001            # posts: short waits (CA latency)
    assert pace.next(0.5, 5, False) == 0.001            # still within a second of a post
    assert pace.next(1.2, 5, False) == 0.005            # a quiet second: idle again
    assert pace.next(1.3, 5, True) == 0.001             # a driver job (PVA put) ran
    assert pace.next(2.3, 2000, False) == 0.001         # 2,000 posts/s: short waits
    assert pace.next(3.4, 9000, False) == 0.005         # 6,400 posts/s: batch the sends
    assert pace.next(3.5, 9500, False) == 0.005
    assert pace.next(4.5, 10500, False) == 0.001        # back under the rate


def test_busy_wait_is_never_longer_than_idle() -> None:
    assert LoopPace(idle=0.0005, busy=0.001).next(0.0, 1, True) == 0.0005
