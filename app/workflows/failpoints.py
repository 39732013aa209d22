"""Faults injected at the activities' edges, for the fault matrix (docs/fault-matrix.md).

Off unless FAILPOINTS_FILE names a file (Settings.failpoints_file): then every activity run
reads the rules in it (re-read when the file changes, so a test arms and releases them while the
app runs). A rule names an order, an activity, where (`start`: before the activity's work,
`end`: after it, before its result goes back) and what:

- `raise`: the activity fails with FailpointError, `times` times (null: every time);
- `hang`: the activity sleeps far past its deadline (ACTIVITY_TIMEOUT_SECONDS), `times` times;
- `pause`: the activity waits until the rule is taken out of the file. Outside the activity's
  deadline: a test pauses orders inside an activity, then kills a process or starts a store
  outage, then releases them.

    {"rules": [{"order_id": "o-1", "activity": "commit_inventory", "at": "end",
                "action": "raise", "times": 1}]}

Every firing is logged and appended, as one JSON line, to `<file>.hits` beside the rules: the
test reads there that an order is inside an activity, and `times` counts there, so a count
survives a restart of the app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

Moment = Literal["start", "end"]
Action = Literal["raise", "hang", "pause"]
# A hang outlasts any activity deadline (it is cancelled by it); a pause is released by the test.
HANG_SECONDS = 3600.0
PAUSE_POLL_SECONDS = 0.1


class FailpointError(RuntimeError):
    """The error a `raise` failpoint fails the activity with: not an infrastructure error, so the
    SDK's quick retries apply and, once they are used up, the workflow takes it as a failed step."""


class Rule(BaseModel):
    order_id: str
    activity: str
    at: Moment = "start"
    action: Action
    # How many times it fires (raise, hang); None: every time. A pause holds until removed.
    times: int | None = Field(default=1, ge=1)

    def matches(self, order_id: str, activity: str, at: Moment) -> bool:
        return (self.order_id, self.activity, self.at) == (order_id, activity, at)


class Rules(BaseModel):
    rules: list[Rule] = Field(default_factory=list)


class Hit(BaseModel):
    """One firing, as `<file>.hits` records it."""

    order_id: str
    activity: str
    at: Moment
    action: Action
    pid: int


def hits_path(rules_file: Path) -> Path:
    return rules_file.with_name(rules_file.name + ".hits")


def read_hits(rules_file: Path) -> list[Hit]:
    """The firings so far (the test's view, and the count behind `times`)."""
    path = hits_path(rules_file)
    if not path.exists():
        return []
    return [Hit.model_validate_json(line) for line in path.read_text().splitlines() if line]


def write_rules(rules_file: Path, rules: list[Rule]) -> None:
    """Replace the rules at once (a reader never sees half a file)."""
    staged = rules_file.with_name(rules_file.name + ".new")
    staged.write_text(Rules(rules=rules).model_dump_json())
    staged.replace(rules_file)


class Failpoints:
    """The rules of one file, or none (`Failpoints(None)`: every check returns at once)."""

    def __init__(self, rules_file: Path | None) -> None:
        self._file = rules_file
        self._seen: tuple[int, int, int] | None = None
        self._rules: list[Rule] = []

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def _current(self) -> list[Rule]:
        assert self._file is not None
        try:
            stat = self._file.stat()
        except FileNotFoundError:
            return []
        # write_rules replaces the file: a new inode even when the time and size look the same.
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if version != self._seen:
            self._rules = Rules.model_validate_json(self._file.read_bytes()).rules
            self._seen = version
        return self._rules

    def _matching(self, order_id: str, activity: str, at: Moment) -> Iterator[Rule]:
        return (rule for rule in self._current() if rule.matches(order_id, activity, at))

    def _fired(self, rule: Rule) -> int:
        assert self._file is not None
        return sum(
            1
            for hit in read_hits(self._file)
            if (hit.order_id, hit.activity, hit.at, hit.action)
            == (rule.order_id, rule.activity, rule.at, rule.action)
        )

    def _record(self, rule: Rule) -> None:
        assert self._file is not None
        log.warning(
            "order %s: failpoint %s at the %s of %s",
            rule.order_id,
            rule.action,
            rule.at,
            rule.activity,
        )
        hit = Hit(**rule.model_dump(exclude={"times"}), pid=os.getpid())
        # One short write in append mode: lines from concurrent activities do not interleave.
        with hits_path(self._file).open("a") as hits:
            hits.write(hit.model_dump_json() + "\n")

    async def pause(self, order_id: str, activity: str, at: Moment) -> None:
        """Wait here while a pause rule for this point is in the file (outside the deadline)."""
        if self._file is None:
            return
        rule = next(
            (r for r in self._matching(order_id, activity, at) if r.action == "pause"), None
        )
        if rule is None:
            return
        self._record(rule)
        # Polled: the release is a change to a file another process makes.
        while True:
            if rule not in self._current():
                break
            await asyncio.sleep(PAUSE_POLL_SECONDS)
        log.warning("order %s: failpoint pause at the %s of %s released", order_id, at, activity)

    async def fail(self, order_id: str, activity: str, at: Moment) -> None:
        """Raise or hang here if a rule for this point says so and has fired fewer than `times`."""
        if self._file is None:
            return
        for rule in self._matching(order_id, activity, at):
            if rule.action == "pause" or (
                rule.times is not None and self._fired(rule) >= rule.times
            ):
                continue
            self._record(rule)
            if rule.action == "raise":
                raise FailpointError(f"failpoint: {activity} of order {order_id} raised at {at}")
            await asyncio.sleep(HANG_SECONDS)


NO_FAILPOINTS = Failpoints(None)
