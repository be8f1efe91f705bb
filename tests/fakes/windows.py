"""What a provider checks of our sends: how much went in each sliding window (tests and benchmarks)."""

from __future__ import annotations

import bisect
from datetime import datetime


def window_violations(times: list[datetime] | list[float], limit: float, window: float = 1.0,
                      costs: list[float] | None = None) -> int:
    """How many sliding windows of `window` seconds hold more than `limit * window` cost."""
    ts = [t.timestamp() if isinstance(t, datetime) else float(t) for t in times]
    cs = costs or [1.0] * len(ts)
    pairs = sorted(zip(ts, cs, strict=True))
    bad = 0
    start = 0
    total = 0.0
    for end in range(len(pairs)):
        total += pairs[end][1]
        while pairs[end][0] - pairs[start][0] >= window - 1e-9:
            total -= pairs[start][1]
            start += 1
        if total > limit * window + 1e-9:
            bad += 1
    return bad


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """The most sends any half-open window of `window` seconds held."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, t + window) - i for i, t in enumerate(ordered)), default=0)
