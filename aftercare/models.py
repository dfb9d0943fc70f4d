"""The schema: clinics, on-call staff, patients, enrollments, the message outbox, inbound replies,
escalations and the append-only audit log. Every timestamp is stored in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no offset, so we add it back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; Aftercare stores only timezone-aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    # Named constraints let Alembic drop and alter them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime()}


class EnrollmentStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    SCHEDULED = "scheduled"
    CLAIMED = "claimed"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class MessageKind(StrEnum):
    REMINDER = "reminder"  # a protocol step; obeys quiet hours, held while an escalation is open
    PAGE = "page"  # to an on-call clinician; ignores quiet hours


class Channel(StrEnum):
    SMS = "sms"
    EMAIL = "email"


class EscalationLevel(StrEnum):
    URGENT = "urgent"
    EMERGENCY = "emergency"


class EscalationStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Clinic(Base):
    __tablename__ = "clinics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(32))
    sms_from: Mapped[str | None] = mapped_column(String(64))
    email_from: Mapped[str | None] = mapped_column(String(254))
    quiet_start: Mapped[str] = mapped_column(String(5), default="21:00")
    quiet_end: Mapped[str] = mapped_column(String(5), default="08:00")
    # How long staff may take to read a review item, counted from the end of quiet hours if it came in them.
    review_minutes: Mapped[int] = mapped_column(Integer, default=120, server_default="120")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    oncall: Mapped[list[OnCallStaff]] = relationship(back_populates="clinic", order_by="OnCallStaff.position")


class OnCallStaff(Base):
    __tablename__ = "oncall_staff"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(254))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    clinic: Mapped[Clinic] = relationship(back_populates="oncall")


class Patient(Base):
    __tablename__ = "patients"
    # A patient is a person at a clinic: a family phone carries several (Sari and her daughter Putri), told apart
    # by first name. Enrolling the same name on the same phone again is the same patient.
    __table_args__ = (UniqueConstraint("clinic_id", "phone", "name_key", name="uq_patient_clinic_phone_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    first_name: Mapped[str] = mapped_column(String(100))
    name_key: Mapped[str] = mapped_column(String(100), default=lambda ctx: Patient.key_for(
        ctx.get_current_parameters()["first_name"]))  # key_for(first_name): how names are compared
    phone: Mapped[str] = mapped_column(String(32), index=True)
    email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(8), default="en")
    sms_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    email_consent: Mapped[bool] = mapped_column(Boolean, default=True)
    sms_opted_out_at: Mapped[datetime | None]
    sms_opt_out_source: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Erased on request (`patient forget`): personal data removed, the row and the audit skeleton kept.
    forgotten_at: Mapped[datetime | None]

    clinic: Mapped[Clinic] = relationship(lazy="joined")

    @staticmethod
    def key_for(first_name: str) -> str:
        """How first names are compared ("putri", " PUTRI " and "Putri" are one person): casefolded, spaces
        collapsed."""
        return " ".join(first_name.split()).casefold()[:100]

    @validates("first_name")
    def _keep_name_key(self, _key: str, first_name: str) -> str:
        self.name_key = self.key_for(first_name)
        return first_name

    @property
    def sms_allowed(self) -> bool:
        return self.sms_consent and self.sms_opted_out_at is None

    @property
    def email_allowed(self) -> bool:
        return bool(self.email) and self.email_consent


class Enrollment(Base):
    __tablename__ = "enrollments"
    __table_args__ = (UniqueConstraint("patient_id", "treatment", "treated_at", name="uq_enrollment_session"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    treatment: Mapped[str] = mapped_column(String(64))
    protocol_version: Mapped[int] = mapped_column(Integer)
    treated_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=EnrollmentStatus.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(lazy="joined")


class ScheduledMessage(Base):
    """The durable outbox: one row per message we intend to send, reminders and pages alike."""

    __tablename__ = "scheduled_messages"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step", "channel", name="uq_message_step_channel"),
        # The dispatcher only ever looks at due rows: partial indexes keep a tick independent of the backlog.
        Index(
            "ix_messages_due",
            "due_at",
            postgresql_where=text("status = 'scheduled'"),
            sqlite_where=text("status = 'scheduled'"),
        ),
        # Pages are claimed first; their own small index finds them without walking due reminders.
        Index(
            "ix_messages_due_pages",
            "due_at",
            postgresql_where=text("status = 'scheduled' AND kind = 'page'"),
            sqlite_where=text("status = 'scheduled' AND kind = 'page'"),
        ),
        Index(
            "ix_messages_lease",
            "claimed_until",
            postgresql_where=text("status = 'claimed'"),
            sqlite_where=text("status = 'claimed'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default=MessageKind.REMINDER)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"), index=True)
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("oncall_staff.id"))
    recipient: Mapped[str | None] = mapped_column(String(254))  # pages only; reminders go to the patient as now known
    step: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(8))
    template: Mapped[str | None] = mapped_column(String(120))
    body: Mapped[str | None] = mapped_column(Text)
    is_checkin: Mapped[bool] = mapped_column(Boolean, default=False)
    # A safety-critical step (warning signs, first-night check-ins): quiet hours do not hold it back.
    is_safety: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # The escalation level a one-word YES to this message's red-flag question opens; null: no such question.
    red_flag: Mapped[str | None] = mapped_column(String(16))
    planned_at: Mapped[datetime]
    due_at: Mapped[datetime]
    fresh_until: Mapped[datetime | None]  # past this, the message is no longer worth sending
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.SCHEDULED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_until: Mapped[datetime | None]
    # Each claim gets a fresh token: a delivery task holding an older claim (a redelivered task) sends nothing.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    error_code: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(String(500))
    skip_reason: Mapped[str | None] = mapped_column(String(64))
    fallback_of_id: Mapped[int | None] = mapped_column(ForeignKey("scheduled_messages.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    skipped_at: Mapped[datetime | None]
    review_item_id: Mapped[int | None] = mapped_column(ForeignKey("review_items.id"))  # a page about an unread reply
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    enrollment: Mapped[Enrollment | None] = relationship(lazy="raise")


class InboundMessage(Base):
    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), unique=True)
    from_phone: Mapped[str] = mapped_column(String(32), index=True)
    to_phone: Mapped[str | None] = mapped_column(String(32))
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    handling: Mapped[str | None] = mapped_column(String(32))
    level: Mapped[str | None] = mapped_column(String(16))
    signs: Mapped[list[str] | None] = mapped_column(JSON)
    answer: Mapped[str | None] = mapped_column(Text)
    escalation_id: Mapped[int | None] = mapped_column(ForeignKey("escalations.id"))
    num_media: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # Twilio's NumMedia (MMS photos)
    language: Mapped[str | None] = mapped_column(String(8))  # the language the reply was written in, if clear


class Escalation(Base):
    __tablename__ = "escalations"
    __table_args__ = (
        Index("ix_escalations_next_page", "next_page_at", postgresql_where=text("status = 'open'"),
              sqlite_where=text("status = 'open'")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    # Null when the sender is on file nowhere (a relative's phone): sender_phone is then the way back.
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    sender_phone: Mapped[str | None] = mapped_column(String(32))
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"), index=True)
    # Every active treatment the sender may be reporting on (two sessions in one day), and every patient it may
    # be about when a shared phone cannot be attributed (then patient_id is null): the clinician sees them all.
    enrollment_ids: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    patient_ids: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")
    level: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=EscalationStatus.OPEN)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    signs: Mapped[list[str]] = mapped_column(JSON, default=list)
    explanation: Mapped[str | None] = mapped_column(Text)
    page_round: Mapped[int] = mapped_column(Integer, default=0)
    next_page_at: Mapped[datetime | None]
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(200))
    resolution_note: Mapped[str | None] = mapped_column(Text)

    patient: Mapped[Patient | None] = relationship(lazy="joined")

    @property
    def first_name(self) -> str:
        return self.patient.first_name if self.patient else "unknown sender"

    @property
    def callback_phone(self) -> str | None:
        """The number to call back: the patient's, or the unknown sender's."""
        return self.patient.phone if self.patient else self.sender_phone


class ReviewStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    ESCALATED = "escalated"


class ReviewItem(Base):
    """A reply a person must read: triage could not place it, it asks what the protocol cannot answer, it is
    only a photo, or it came from a number on file nowhere. Paged to on-call if unread past `due_at`."""

    __tablename__ = "review_items"
    __table_args__ = (
        Index("ix_review_items_due", "due_at", postgresql_where=text("status = 'open' AND paged_at IS NULL"),
              sqlite_where=text("status = 'open' AND paged_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    patient_ids: Mapped[list[int]] = mapped_column(JSON, default=list, server_default="[]")  # a shared phone's
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))  # unplaced, question, photo, unknown_sender, unclear_answer
    level: Mapped[str | None] = mapped_column(String(16))  # the triage level, for ordering
    status: Mapped[str] = mapped_column(String(16), default=ReviewStatus.OPEN)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    paged_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(200))
    note: Mapped[str | None] = mapped_column(Text)

    inbound: Mapped[InboundMessage] = relationship(lazy="joined")
    patient: Mapped[Patient | None] = relationship(lazy="joined")
    clinic: Mapped[Clinic] = relationship(lazy="joined")


class PendingStatus(Base):
    """A Twilio status callback for a SID not (yet) stored: the callback can beat the send's own commit. It is
    applied when a message with that SID is recorded."""

    __tablename__ = "pending_statuses"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_sid: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(32))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffAccount(Base):
    """A clinic's staff member who signs in on the web (review inbox). Sees only their own clinic."""

    __tablename__ = "staff_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased; signs in with it
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2; null until a password is set
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Raised by signing out: every session cookie issued before carries the old value and no longer opens.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]

    clinic: Mapped[Clinic] = relationship(lazy="joined")


class MediaFile(Base):
    """A photo a patient sent (MMS, Twilio's MediaUrlN), fetched and stored under the media folder."""

    __tablename__ = "media_files"
    __table_args__ = (UniqueConstraint("inbound_id", "position", name="uq_media_inbound_position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)  # N of MediaUrlN
    provider_url: Mapped[str] = mapped_column(String(500))  # Twilio's MediaUrlN (no secret in it)
    content_type: Mapped[str | None] = mapped_column(String(100))
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(String(500))  # relative to the media folder; null until stored
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending, stored, refused, failed
    error: Mapped[str | None] = mapped_column(String(200))  # why refused or failed (no personal data)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    stored_at: Mapped[datetime | None]


class ApiKey(Base):
    """A booking system's key for one clinic: shown once at creation, stored hashed."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"), index=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)  # the key's public part, to find its row
    key_hash: Mapped[str] = mapped_column(String(255))
    label: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    clinic: Mapped[Clinic] = relationship(lazy="joined")


class IdempotencyRecord(Base):
    """An API request made with an Idempotency-Key: the same key and body get the same answer again."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("clinic_id", "key", name="uq_idempotency_clinic_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinics.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # sha256 of the method, path and canonical body
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    enrollment_id: Mapped[int | None] = mapped_column(ForeignKey("enrollments.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Heartbeat(Base):
    """The last time a periodic process did its work (the beat's dispatcher tick): /healthz reads it."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)  # e.g. "tick"
    at: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class AuditEntry(Base):
    """Append-only: rows are inserted, never updated or deleted (enforced below, and by database triggers from
    migration 0005)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (Index("ix_audit_subject", "subject_type", "subject_id"),)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _audit_is_append_only(mapper: Any, connection: Any, target: AuditEntry) -> None:
    raise RuntimeError("the audit log is append-only")
