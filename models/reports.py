"""What someone reported about a person (a death, a move, a new contact), waiting for staff.

A report is kept on its verification task (`Task.details`) as one of these models, so the
console shows it and `models.actions.confirm_report` applies it exactly as it was reported.
Phone numbers are kept in E.164 here (the database); audit rows get masked forms only.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class ReportKind(StrEnum):
    DEATH = "death"
    MOVE = "move"
    CONTACT = "contact"


class Reporter(BaseModel):
    """Who reported it, and how to reach them with the outcome."""

    model_config = ConfigDict(frozen=True)

    relationship: str = "self"  # self, spouse, child, sibling, carer, other, staff
    channel: str = ""  # telegram, sms, console; "" when staff wrote it down
    address_masked: str = ""  # for display
    contact_id: int | None = None
    beneficiary_id: int | None = None  # the reporter's own record, when linked


class DeathReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal[ReportKind.DEATH] = ReportKind.DEATH
    died_on: date
    evidence: str = ""  # what the reporter said they have: a certificate, a hospital record...


class MoveReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal[ReportKind.MOVE] = ReportKind.MOVE
    moved_on: date | None = None
    away: bool = True  # left the office's area (status becomes moved), or a new address within it
    district: str = Field(default="", max_length=64)
    street: str = Field(default="", max_length=64)
    community: str = Field(default="", max_length=64)


class ContactReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal[ReportKind.CONTACT] = ReportKind.CONTACT
    new_phone: str  # E.164
    replaces_contact_id: int | None = None  # the address it replaces, if any


Report = Annotated[DeathReport | MoveReport | ContactReport, Field(discriminator="kind")]
REPORT: TypeAdapter[DeathReport | MoveReport | ContactReport] = TypeAdapter(Report)

VERIFY_TASK = {ReportKind.DEATH: "verify_death", ReportKind.MOVE: "verify_move", ReportKind.CONTACT: "verify_contact"}
VERIFY_TASKS = frozenset(VERIFY_TASK.values())


class TaskDetails(BaseModel):
    """`Task.details` of a verification task."""

    report: Report
    reporter: Reporter


def task_details(details: dict[str, object]) -> TaskDetails:
    return TaskDetails.model_validate(details)
