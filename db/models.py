"""SQLAlchemy models of the registration schema: organisations -> batches -> jobs -> steps.

Alembic migrations (db/migrations) are the only thing that creates these tables; a test checks
that the migrated schema and these models agree. Every CHECK list comes from a Python enum.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, get_args

from pydantic.fields import FieldInfo
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator, TypeEngine

from regbatch.audit import Operation
from regbatch.batch_rules import BREAKER_MIN_FINISHED, BREAKER_THRESHOLD
from regbatch.db.types import JSONType, UTCDateTime, utcnow
from regbatch.restaurant import (
    LeadStage,
    LeadType,
    RegistrationStatus,
    RestaurantRecord,
    record_default,
)
from regbatch.statuses import BatchStatus, ExecutionMode, JobStatus, RequestedAction, StepStatus

MAX_STEP_NUMBER = 999  # the twelve built-in steps, then plugins' extra steps

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


def one_of(column: str, enum: type[StrEnum], name: str | None = None) -> CheckConstraint:
    """CHECK (column IN (...)) built from the enum, so the two cannot drift."""
    values = ", ".join(f"'{member.value}'" for member in enum)
    return CheckConstraint(f"{column} IN ({values})", name=name or f"{column}_valid")


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid, primary_key=True, default=uuid.uuid4)


def _org_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)


def _created() -> Mapped[datetime]:
    return mapped_column(default=utcnow)


def _updated() -> Mapped[datetime]:
    return mapped_column(default=utcnow, onupdate=utcnow)


# Vocabulary columns (statuses, modes, restaurant types, ...) hold their enum's values.
VOCABULARY_LENGTH = 20


class Vocabulary(TypeDecorator[StrEnum]):
    """A column of one enum's values: strings in the database, the enum's members in Python
    (statuses are BatchStatus, JobStatus, StepStatus from the row to the read models)."""

    impl = String
    cache_ok = True

    def __init__(self, enum: type[StrEnum], length: int = VOCABULARY_LENGTH) -> None:
        super().__init__(length)
        self.enum = enum

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else str(value)  # the CHECK constraint judges the value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum(value)


def _record_column(name: str, **extra: Any) -> Any:
    """The `restaurants` column of record field `name`: its type and size, nullability and
    default, all read from regbatch.restaurant.RestaurantRecord (the fields' one declaration)."""
    field = RestaurantRecord.model_fields[name]
    kind, nullable = _unwrap_optional(field.annotation)
    return mapped_column(
        _column_type(kind, _constraint(field, "max_length")),
        nullable=nullable,
        default=record_default(name),
        **extra,
    )


def _record_checks() -> list[CheckConstraint]:
    """The record's vocabularies and ranges as CHECK constraints (an enum: its values)."""
    checks = []
    for name, field in RestaurantRecord.model_fields.items():
        kind, _ = _unwrap_optional(field.annotation)
        low, high = _constraint(field, "ge"), _constraint(field, "le")
        if isinstance(kind, type) and issubclass(kind, StrEnum):
            checks.append(one_of(name, kind))
        elif low is not None and high is not None:
            checks.append(CheckConstraint(f"{name} BETWEEN {low} AND {high}", name=f"{name}_range"))
    return checks


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of `X` or `X | None`."""
    args = get_args(annotation)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else annotation), True
    return annotation, False


def _constraint(field: FieldInfo, name: str) -> Any:
    """The field's constraint `name` (max_length, ge, le), or None."""
    return next((getattr(m, name) for m in field.metadata if hasattr(m, name)), None)


def _column_type(kind: Any, max_length: int | None) -> TypeEngine[Any]:
    if isinstance(kind, type) and issubclass(kind, StrEnum):
        return String(VOCABULARY_LENGTH)
    if kind is str:
        return String(max_length) if max_length else Text()
    if kind is int:
        return Integer()
    return JSONType  # a JSON object: a dict or a model such as the menu


class Organisation(Base):
    __tablename__ = "organisations"

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created()
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Restaurant(Base):
    """A restaurant: the record's fields (regbatch.restaurant.RestaurantRecord) as columns."""

    __tablename__ = "restaurants"
    __table_args__ = (
        *_record_checks(),
        Index("ix_restaurants_org_city_stage", "organisation_id", "city", "lead_stage"),
        Index("uq_restaurants_org_external_id", "organisation_id", "external_id", unique=True),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    name: Mapped[str] = _record_column("name")
    external_id: Mapped[str | None] = _record_column("external_id")
    contact_name: Mapped[str | None] = _record_column("contact_name")
    email: Mapped[str | None] = _record_column("email")
    phone: Mapped[str | None] = _record_column("phone")
    address: Mapped[str | None] = _record_column("address")
    city: Mapped[str | None] = _record_column("city")
    country: Mapped[str] = _record_column("country")
    opening_hours: Mapped[dict[str, Any] | None] = _record_column("opening_hours")
    cuisine: Mapped[str | None] = _record_column("cuisine")
    restaurant_type: Mapped[str] = _record_column("restaurant_type")
    theme: Mapped[str] = _record_column("theme")
    primary_color: Mapped[str | None] = _record_column("primary_color")
    secondary_color: Mapped[str | None] = _record_column("secondary_color")
    logo_url: Mapped[str | None] = _record_column("logo_url")
    subdomain: Mapped[str | None] = _record_column("subdomain")
    lead_type: Mapped[str] = _record_column("lead_type")
    lead_stage: Mapped[str] = _record_column("lead_stage")
    icp_score: Mapped[int] = _record_column("icp_score")
    registration_status: Mapped[str] = _record_column("registration_status", index=True)
    menu: Mapped[dict[str, Any] | None] = _record_column("menu")
    account_password_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class Batch(Base):
    __tablename__ = "registration_batch_jobs"
    __table_args__ = (
        one_of("status", BatchStatus),
        one_of("execution_mode", ExecutionMode),
        one_of("requested_action", RequestedAction),
        CheckConstraint("concurrency >= 1", name="concurrency_positive"),
        CheckConstraint(
            "total_restaurants >= 0 AND completed_restaurants >= 0 AND failed_restaurants >= 0 "
            "AND cancelled_restaurants >= 0 "
            "AND completed_restaurants + failed_restaurants + cancelled_restaurants "
            "<= total_restaurants",
            name="counters_consistent",
        ),
        CheckConstraint(
            "breaker_threshold >= 0 AND breaker_threshold <= 1", name="breaker_threshold_range"
        ),
        CheckConstraint("breaker_min_finished >= 1", name="breaker_min_finished_positive"),
        CheckConstraint(
            "breaker_window_failed >= 0 AND breaker_window_finished >= breaker_window_failed",
            name="breaker_window_consistent",
        ),
        Index("ix_registration_batch_jobs_created_at", "created_at"),
        Index("ix_registration_batch_jobs_org_created", "organisation_id", "created_at", "id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    name: Mapped[str] = mapped_column(String(200))
    execution_mode: Mapped[ExecutionMode] = mapped_column(
        Vocabulary(ExecutionMode), default=ExecutionMode.SEQUENTIAL
    )
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[BatchStatus] = mapped_column(
        Vocabulary(BatchStatus), default=BatchStatus.DRAFT, index=True
    )
    total_restaurants: Mapped[int] = mapped_column(Integer, default=0)
    completed_restaurants: Mapped[int] = mapped_column(Integer, default=0)
    failed_restaurants: Mapped[int] = mapped_column(Integer, default=0)
    cancelled_restaurants: Mapped[int] = mapped_column(Integer, default=0)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str | None] = mapped_column(String(200))
    retry_of_batch_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("registration_batch_jobs.id", ondelete="SET NULL"), index=True
    )
    breaker_threshold: Mapped[Decimal] = mapped_column(
        Numeric(4, 3), default=Decimal(str(BREAKER_THRESHOLD))
    )
    breaker_min_finished: Mapped[int] = mapped_column(Integer, default=BREAKER_MIN_FINISHED)
    breaker_window_start: Mapped[datetime | None]
    breaker_window_finished: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    breaker_window_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The breaker's window: the jobs finished since `breaker_window_start` (completed, skipped or
    failed; not cancelled), and those of them that failed. Moved with the counters, one job at a
    time (db.batches.move_counters), so the breaker reads them instead of counting the jobs."""
    requested_action: Mapped[RequestedAction | None] = mapped_column(
        Vocabulary(RequestedAction, length=10)
    )
    pause_reason: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    lease_token: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """The fencing token: grows at every start and takeover; every runner write states it."""
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    step_graph: Mapped[dict[str, Any] | None]
    """The step graph the batch was created with (regbatch.handlers.graph_record); None: the
    twelve built-in steps alone."""
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]

    jobs: Mapped[list[Job]] = relationship(
        back_populates="batch",
        lazy="raise",
        order_by="Job.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Job(Base):
    __tablename__ = "registration_jobs"
    __table_args__ = (
        UniqueConstraint("batch_id", "restaurant_id", name="uq_registration_jobs_batch_restaurant"),
        one_of("status", JobStatus),
        CheckConstraint(
            f"current_step IS NULL OR current_step BETWEEN 1 AND {MAX_STEP_NUMBER}",
            name="current_step_range",
        ),
        Index("ix_registration_jobs_batch_status", "batch_id", "status"),
        Index("ix_registration_jobs_batch_position", "batch_id", "position"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registration_batch_jobs.id", ondelete="CASCADE")
    )
    restaurant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("restaurants.id", ondelete="RESTRICT"), index=True
    )
    position: Mapped[int] = mapped_column(Integer)
    status: Mapped[JobStatus] = mapped_column(Vocabulary(JobStatus), default=JobStatus.PENDING)
    execution_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    current_step: Mapped[int | None] = mapped_column(Integer)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None]
    retry_of_job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("registration_jobs.id", ondelete="SET NULL")
    )
    idempotency_root: Mapped[uuid.UUID] = mapped_column(Uuid)
    """The job id used in Idempotency-Key headers: the job's own, or its origin's in a retry."""
    flow_run_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    dispatch_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]

    batch: Mapped[Batch] = relationship(back_populates="jobs", lazy="raise")
    steps: Mapped[list[JobStep]] = relationship(
        back_populates="job",
        lazy="raise",
        order_by="JobStep.step_number",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )
    restaurant: Mapped[Restaurant] = relationship(lazy="raise")


class JobStep(Base):
    __tablename__ = "registration_job_steps"
    __table_args__ = (
        UniqueConstraint("job_id", "step_number", name="uq_registration_job_steps_job_step"),
        one_of("status", StepStatus),
        CheckConstraint(f"step_number BETWEEN 1 AND {MAX_STEP_NUMBER}", name="step_number_range"),
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint(
            f"blocked_by_step IS NULL OR blocked_by_step BETWEEN 1 AND {MAX_STEP_NUMBER}",
            name="blocked_by_step_range",
        ),
        Index("ix_registration_job_steps_status", "status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    job_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registration_jobs.id", ondelete="CASCADE")
    )
    step_number: Mapped[int] = mapped_column(Integer)
    step_key: Mapped[str] = mapped_column(String(40))
    status: Mapped[StepStatus] = mapped_column(Vocabulary(StepStatus), default=StepStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(BigInteger)
    result_data: Mapped[dict[str, Any] | None]
    error_message: Mapped[str | None] = mapped_column(Text)
    error_details: Mapped[dict[str, Any] | None]
    skip_reason: Mapped[str | None] = mapped_column(Text)
    blocked_by_step: Mapped[int | None] = mapped_column(Integer)
    carried_over: Mapped[bool] = mapped_column(default=False)
    handler: Mapped[str | None] = mapped_column(String(200))
    """The plugin function (`module:function`) that runs the step; None: the built-in step."""
    updated_at: Mapped[datetime] = _updated()

    job: Mapped[Job] = relationship(back_populates="steps", lazy="raise")


class OperationLog(Base):
    __tablename__ = "batch_operation_logs"
    __table_args__ = (
        one_of("operation", Operation),
        Index("ix_batch_operation_logs_batch_created", "batch_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    batch_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("registration_batch_jobs.id", ondelete="CASCADE")
    )
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("registration_jobs.id", ondelete="CASCADE")
    )
    operation: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = _created()


class RateLimitSlot(Base):
    """A platform rate limit shared by every process: who holds its turn and when the next is free.

    Account creation is the one such limit (one at a time, `spacing` apart): waiters take turns
    in `regbatch.account_queue`; a holder that died is replaced once `held_until` has passed.
    """

    __tablename__ = "rate_limit_slots"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(200))
    held_until: Mapped[datetime | None]
    next_free_at: Mapped[datetime]
    updated_at: Mapped[datetime] = _updated()


class BatchTemplate(Base):
    """A saved restaurant selection (filters) and the options of the batches made from it."""

    __tablename__ = "batch_templates"
    __table_args__ = (
        UniqueConstraint("organisation_id", "name", name="uq_batch_templates_org_name"),
        one_of("lead_stage", LeadStage),
        one_of("lead_type", LeadType),
        one_of("registration_status", RegistrationStatus),
        one_of("execution_mode", ExecutionMode),
        CheckConstraint("min_icp_score BETWEEN 0 AND 10", name="min_icp_score_range"),
        CheckConstraint("max_restaurants BETWEEN 1 AND 1000", name="max_restaurants_range"),
        CheckConstraint("concurrency >= 1", name="concurrency_positive"),
        CheckConstraint(
            "breaker_threshold >= 0 AND breaker_threshold <= 1", name="breaker_threshold_range"
        ),
        CheckConstraint("breaker_min_finished >= 1", name="breaker_min_finished_positive"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    name: Mapped[str] = mapped_column(String(120))
    city: Mapped[str | None] = mapped_column(String(120))
    lead_stage: Mapped[str | None] = mapped_column(String(20))
    lead_type: Mapped[str | None] = mapped_column(String(20))
    min_icp_score: Mapped[int | None] = mapped_column(Integer)
    registration_status: Mapped[str | None] = mapped_column(String(20))
    # "limit" is an SQL keyword; the column says what it limits.
    max_restaurants: Mapped[int] = mapped_column(Integer)
    execution_mode: Mapped[str] = mapped_column(String(20), default=ExecutionMode.SEQUENTIAL)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    breaker_threshold: Mapped[Decimal] = mapped_column(
        Numeric(4, 3), default=Decimal(str(BREAKER_THRESHOLD))
    )
    breaker_min_finished: Mapped[int] = mapped_column(Integer, default=BREAKER_MIN_FINISHED)
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()


class WebhookSubscription(Base):
    """Where an organisation wants batch outcomes POSTed, and the secret that signs them."""

    __tablename__ = "webhook_subscriptions"
    __table_args__ = (
        CheckConstraint("url LIKE 'http://%' OR url LIKE 'https://%'", name="url_http"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = _org_fk()
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSONType, default=list)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    """The signing secret, Fernet-encrypted like owners' passwords; shown once, at creation."""
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = _created()


class IdempotencyKey(Base):
    """A REST request's Idempotency-Key: which request first used it and, once answered, the answer.

    Scoped to the caller's organisation. The request is kept as its route and a SHA-256 of its
    query and body (never the body itself); the answer is kept only when it is a 2xx or 4xx.
    A row without `completed_at` is a request still being processed.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("organisation_id", "key", name="uq_idempotency_keys_org_key"),
        CheckConstraint(
            "status_code IS NULL OR status_code BETWEEN 200 AND 499", name="status_code_stored"
        ),
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    organisation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("organisations.id", ondelete="CASCADE")
    )
    key: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    """The JSON answer exactly as it was sent, replayed byte for byte."""
    response_location: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None]
