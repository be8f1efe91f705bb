"""The fake Telegram in a process of its own (`python -m tests.scale.fake_process TOKEN`), so that
the arrival times it records are not delayed by the test process's own work.

It prints its base URL on the first line; on `dump` (stdin) it prints one JSON line: every
sendMessage it took, as [chat_id, text, arrival time (time.time())]; `quit` ends it.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import Any

from tests.fakes.fake_telegram import FakeTelegram


class _Arrivals(list):  # type: ignore[type-arg]
    def append(self, message: Any) -> None:
        super().append([str(message["chat"]["id"]), message.get("text") or "", time.time()])


async def main(token: str) -> None:
    tg = FakeTelegram(token)
    tg.sent = _Arrivals()
    await tg.start()
    print(tg.base_url, flush=True)
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def commands() -> None:
        for line in sys.stdin:
            if line.strip() == "dump":
                snapshot = list(tg.sent)
                print(json.dumps(snapshot, ensure_ascii=False), flush=True)
            elif line.strip() == "quit":
                break
        loop.call_soon_threadsafe(done.set)

    threading.Thread(target=commands, daemon=True).start()
    await done.wait()
    await tg.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
