"""Column types and helpers shared by every table.

Times are stored in UTC. SQLite keeps no zone, so `UTCDateTime` stores naive UTC and
hands back aware UTC datetimes on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; pass an aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def bind_processor(self, dialect: Any) -> Any:
        """As SQLAlchemy binds it, remembering the last value: the rows written together (a
        broadcast's thousands) share a few timestamps, so each is converted once."""
        convert = super().bind_processor(dialect)
        last: list[tuple[Any, Any]] = [(object(), None)]  # one tuple, replaced whole: safe across threads

        def process(value: Any) -> Any:
            seen, out = last[0]
            if value is seen:
                return out
            out = convert(value) if convert is not None else value
            last[0] = (value, out)
            return out

        return process

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


# JSON on SQLite, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")


class RedactedText(TypeDecorator[str]):
    """Text stored with phone and ID numbers masked (`models.privacy.redact`), whoever writes it."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        from models.privacy import redact

        return redact(value) if value else value


class RedactedJSON(TypeDecorator[Any]):
    """JSON (JSONB on PostgreSQL) stored with every string in it masked (audit details)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        from models.privacy import redact_value

        return redact_value(value)


def utcnow() -> datetime:
    return datetime.now(UTC)
