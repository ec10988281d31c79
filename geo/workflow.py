"""The hazard closed loop (闭环处置) as rules: which status changes are allowed, and their times.

发现 → 立案 → 派遣 → 处置 → 核查 → 结案, one step at a time, with three exceptions:

- **on-the-spot rectification** (当场整改, ``on_spot`` true): an open hazard may go straight
  to 结案 (no 核查 needed: it was fixed in front of the grid worker);
- **failed verification** (核查不通过): 核查 → 处置, the handling starts again;
- **reopening** (重新打开): 结案 → any earlier step, only when the record says so
  (``"reopen": true``), never by accident of a stale client.

Moving to a step sets that step's time (``filed_at`` for 立案 ...) to the event's time when it
has none, and clears the times of later steps (a reopened hazard is open again). Used by the
feed (``geo.live``) and by the status route of the app; both keep every change as history.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from layers.hazard import CLOSED_STATUS, SPEC as HAZARD, STATUSES

STEP_TIMES: dict[str, str] = dict(zip(STATUSES, HAZARD.time_order, strict=True))
"""The time field each status step sets: 发现 → discovered_at, 立案 → filed_at, ..., 结案 → closed_at."""
VERIFY, HANDLE = STATUSES[4], STATUSES[3]


def refusal(old: str | None, new: str | None, on_spot: bool = False, reopen: bool = False) -> str | None:
    """Why the move ``old`` → ``new`` is not allowed (a sentence), or None when it is."""
    if old is None or new is None or old == new or old not in STATUSES or new not in STATUSES:
        return None
    i, j = STATUSES.index(old), STATUSES.index(new)
    if old == CLOSED_STATUS:
        if reopen:
            return None
        return (f"{old} → {new}: a closed hazard moves back only when reopened "
                '(send "reopen": true) — 结案后须重新打开')
    if j == i + 1 or (old == VERIFY and new == HANDLE):
        return None
    if new == CLOSED_STATUS and on_spot:
        return None
    if new == CLOSED_STATUS:
        return (f"{old} → {new}: closing needs 核查 first unless rectified on the spot "
                "(on_spot true) — 未经核查不得结案")
    if reopen:
        return f"{old} → {new}: only a closed (结案) hazard can be reopened"
    return f"{old} → {new}: the closed loop goes one step at a time ({' → '.join(STATUSES)})"


def step_times(before: dict[str, Any], given: dict[str, Any], status: str, now: datetime) -> dict[str, Any]:
    """The step times after moving to ``status``: the record's own times win; the step's time
    is set to ``now`` when empty; the later steps' times are cleared."""
    steps = list(STEP_TIMES)
    at = steps.index(status)
    times = {STEP_TIMES[s]: given.get(STEP_TIMES[s], before.get(STEP_TIMES[s])) for s in steps}
    own = STEP_TIMES[status]
    times[own] = times[own] or now
    for later in steps[at + 1:]:
        if STEP_TIMES[later] not in given:
            times[STEP_TIMES[later]] = None
    return times
