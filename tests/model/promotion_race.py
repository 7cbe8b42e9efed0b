"""One side of a forced promotion race, run as its own process by tests/model/test_gate_registry.py.

    python -m tests.model.promotion_race BARRIER_DIR ME OTHER -- spamfilter promote --report …
    python -m tests.model.promotion_race BARRIER_DIR ME OTHER -- promote VERSION EXPECTED_CHAMPION

Runs the real `spamfilter` command line (or `tracking.promote` itself, with the settings from the
environment) in this process with two wrappers around the registry module's
own steps, so that two racers meet inside the critical section (after the compare, before the set):

- entering the promotion lock, the racer marks `ME.at-lock` in BARRIER_DIR;
- inside it, just before moving the alias (`_switch_champion`: the champion has been read and compared),
  it marks `ME.inside` and waits for OTHER: first until OTHER has reached the lock too, then until OTHER
  is inside as well, or GRACE_S seconds pass without it (OTHER is being held at the lock).

With the lock, OTHER cannot get inside while ME is, so ME goes on after the grace period and OTHER then
finds the champion moved. Without a lock both get inside having read the same champion, and both move it.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GRACE_S = 3.0  # how long ME waits for OTHER inside; OTHER needs milliseconds to get there when nothing holds it
ARRIVAL_TIMEOUT_S = 120.0  # OTHER's start-up (imports) on a busy machine


def wait_for(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def main(argv: list[str]) -> int:
    barrier, me, other = Path(argv[0]), argv[1], argv[2]
    command = argv[argv.index("--") + 1 :]
    from spamfilter import cli
    from spamfilter.registry import tracking

    original_lock: Callable[..., contextlib.AbstractContextManager[None]] = tracking._promotion_lock
    original_switch: Callable[..., Any] = tracking._switch_champion

    @contextlib.contextmanager
    def lock(*args: Any, **kwargs: Any) -> Iterator[None]:
        (barrier / f"{me}.at-lock").touch()
        with original_lock(*args, **kwargs):
            yield

    def switch(*args: Any, **kwargs: Any) -> Any:
        (barrier / f"{me}.inside").touch()
        if not wait_for(barrier / f"{other}.at-lock", ARRIVAL_TIMEOUT_S):
            raise RuntimeError(f"{other} never reached the promotion lock")
        wait_for(barrier / f"{other}.inside", GRACE_S)
        return original_switch(*args, **kwargs)

    tracking._promotion_lock = lock  # type: ignore[assignment]
    tracking._switch_champion = switch
    if command[0] == "spamfilter":
        return cli.main(command[1:])
    assert command[0] == "promote" and len(command) == 3, command
    from spamfilter.config import Settings
    from spamfilter.errors import SpamfilterError

    try:
        tracking.promote(Settings(), command[1], command[2], actor=me, reason="race", gate={})
    except SpamfilterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
