"""Scripted conversations (tests/journeys/) through the real Telegram polling path and signed SMS
webhooks, with the figures people feel: how many ended right, what SMS cost, how many tickets.

`journeys`: scripts run; `completed`: got to their end (every button pressed was on screen);
`wrong_outcomes`: outcome checks that failed, summed over journeys; `sms_segments_per_journey`:
outbound SMS segments (TwiML replies and what the outbox holds for the journey's phones) per SMS
journey; `tickets_per_journey`: handoff tickets opened per journey.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def run() -> dict[str, Any]:
    from tests.journeys.harness import run as run_journey
    from tests.journeys.journeys import JOURNEYS
    from tests.journeys.roll import seed

    async def main() -> list[Any]:
        outcomes = []
        for name, journey in sorted(JOURNEYS.items()):
            with tempfile.TemporaryDirectory() as d:
                outcomes.append(await run_journey(name, journey, Path(d), seed))
        return outcomes

    outcomes = asyncio.run(main())
    sms = [o for o in outcomes if o.name.startswith("sms_")]
    return {
        "journeys": len(outcomes),
        "completed": sum(o.completed for o in outcomes),
        "wrong_outcomes": sum(len(o.failures) for o in outcomes),
        "sms_segments_per_journey": round(sum(o.sms_segments for o in sms) / max(1, len(sms)), 2),
        "tickets_per_journey": round(sum(o.tickets for o in outcomes) / max(1, len(outcomes)), 2),
        "sms_journeys": len(sms),
        "not_completed": {o.name: o.error[:300] for o in outcomes if not o.completed},
        "wrong": {o.name: o.failures for o in outcomes if o.failures},
    }


if __name__ == "__main__":
    print(json.dumps(run(), ensure_ascii=False))
