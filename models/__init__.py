"""The one source of truth: tables by noun, engines and sessions, and the actions that change state."""

from models.applications import (
    Application,
    ApplicationDocument,
    ApplicationStageChange,
    ApplicationType,
    HandoffTicket,
    Stage,
    SurveyAnswer,
    Task,
    TaskKind,
    TaskNote,
)
from models.base import UTCDateTime, utcnow
from models.broadcasts import BroadcastReview, ReviewStep
from models.conversations import Conversation, MessageLog, OneTimeCode
from models.db import is_sqlite, make_engine, session_scope
from models.inbound import InboundReceipt, InboundState
from models.knowledge import ArticleState, KnowledgeArticle, KnowledgeRevision, KnowledgeVersion
from models.outbox import Broadcast, BroadcastStatus, EarlyReceipt, OutboxEvent, OutboxMessage, OutboxStatus
from models.people import (
    Beneficiary,
    BeneficiaryKind,
    BeneficiaryStatus,
    Channel,
    Contact,
    FamilyMember,
    Language,
    SchemeMembership,
)
from models.scheduler import OccasionSetting, SchedulerJobRun, SchedulerLease
from models.staff import AuditLog, Role, SignInAttempt, StaffSession, StaffToken, StaffUser
from models.staff_telegram import StaffLinkCode

__all__ = [
    "ArticleState", "KnowledgeArticle", "KnowledgeRevision", "KnowledgeVersion",
    "Application", "ApplicationDocument", "ApplicationStageChange", "ApplicationType", "AuditLog",
    "Beneficiary", "BeneficiaryKind", "BeneficiaryStatus", "Broadcast", "BroadcastReview", "BroadcastStatus", "Channel",
    "Contact", "Conversation", "EarlyReceipt", "FamilyMember", "HandoffTicket", "InboundReceipt", "InboundState", "Language", "MessageLog", "OneTimeCode",
    "OccasionSetting", "OutboxEvent", "OutboxMessage", "OutboxStatus", "ReviewStep", "Role", "SchemeMembership",
    "SignInAttempt", "StaffLinkCode", "Stage", "StaffSession", "StaffToken", "StaffUser",
    "SchedulerJobRun", "SchedulerLease", "SurveyAnswer", "Task", "TaskKind", "TaskNote", "UTCDateTime", "is_sqlite", "make_engine", "session_scope", "utcnow",
]
