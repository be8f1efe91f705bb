"""The provider when no credentials are set: nothing leaves the machine.

Each message becomes a `MessageLog` row (direction "out") and a line in
`<data_dir>/outbox-sink.log` (phone numbers masked), so `make run` shows what would have
gone out. The dispatcher does not write its own log row for this provider
(`writes_message_log`).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from models.conversations import MessageLog
from models.db import session_scope
from models.phone import mask_phone
from outreach.providers.base import OutgoingMessage, SendResult


class LogSinkProvider:
    name = "logsink"
    writes_message_log = True

    def __init__(self, channel: str, engine: Engine | None, data_dir: Path) -> None:
        self.channel = channel
        self.engine = engine
        self.path = Path(data_dir) / "outbox-sink.log"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._prefix = f"sink-{channel}-{int(time.time())}"

    def _write(self, message: OutgoingMessage, provider_id: str) -> None:
        now = datetime.now(UTC)
        address = mask_phone(message.address) if self.channel == "sms" else message.address
        line = {"at": now.isoformat(timespec="seconds"), "channel": self.channel, "to": address,
                "outbox_id": message.outbox_id, "body": message.body}
        if message.extra.get("buttons"):
            line["buttons"] = [[b.get("text") for b in row] for row in message.extra["buttons"]]
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        if self.engine is not None:
            with session_scope(self.engine) as session:
                session.add(MessageLog(channel=self.channel, address=message.address, direction="out",
                                       text=message.body, beneficiary_id=message.beneficiary_id,
                                       outbox_id=message.outbox_id, provider_message_id=provider_id,
                                       created_at=now))

    async def send(self, message: OutgoingMessage) -> SendResult:
        provider_id = f"{self._prefix}-{next(self._seq)}"
        await asyncio.to_thread(self._write, message, provider_id)
        return SendResult(provider_id)
