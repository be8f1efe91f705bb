"""The scheduler's own small tables: who leads (SQLite lease), when each job last ran, and an
office's changes to festival occasions.

PostgreSQL leadership uses a session-level advisory lock instead of the lease row; the
job-run table is used on both databases, so that a restart catches a missed run up once.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column
from sqlmodel import Field, SQLModel

from models.base import JSONType, UTCDateTime, utcnow


class SchedulerLease(SQLModel, table=True):
    """One row per lease name: the process holding it runs the jobs until `expires_at`.

    The holder renews well before expiry; a process that dies stops renewing, and the next
    one takes the lease once it has expired.
    """

    __tablename__ = "scheduler_lease"

    name: str = Field(primary_key=True, max_length=64)
    owner: str = Field(max_length=128)
    acquired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    renewed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class SchedulerJobRun(SQLModel, table=True):
    """The last run of each coarse job: used to catch a missed run up once after downtime,
    and shown to staff ("daily sweep last finished at ...")."""

    __tablename__ = "scheduler_job_run"

    job: str = Field(primary_key=True, max_length=64)
    last_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_result: str = Field(default="", max_length=500)
    last_owner: str = Field(default="", max_length=128)


class OccasionSetting(SQLModel, table=True):
    """An office's change to a festival occasion (outreach/occasions.yaml holds the defaults):
    switched off or on, sent at another time, or to other kinds of people. Read by the
    scheduler whenever it plans or sends a greeting; every change is audited."""

    __tablename__ = "occasion_setting"

    occasion: str = Field(primary_key=True, max_length=32)
    enabled: bool = True
    send_time: str | None = Field(default=None, max_length=5)  # "HH:MM" office time; None: the file's
    audience: list[str] | None = Field(default=None, sa_column=Column(JSONType, nullable=True))  # None: the file's
    updated_by: str = Field(default="", max_length=64)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
