"""The ratings store's tables (migration 0002 creates exactly these, in the history store's database) and the plain
results it hands to the Rate tab (no method names in what an annotator sees)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.database import MAX_USER_ID_CHARS, Base, UTCDateTime

KIND_METHOD, KIND_REFERENCE, KIND_IDENTITY = "method", "reference", "identity"  # rating_outputs.kind


class RatingOutputRow(Base):
    __tablename__ = "rating_outputs"
    __table_args__ = (UniqueConstraint("method", "prompt_key", name="uq_rating_outputs_method_prompt"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    method: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # method | reference | identity
    prompt_key: Mapped[str] = mapped_column(String(64), index=True)
    record_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    instruction: Mapped[str] = mapped_column(Text)
    source_image: Mapped[str] = mapped_column(String(255))
    output_image: Mapped[str] = mapped_column(String(255))
    origin: Mapped[str] = mapped_column(Text)  # where it came from (admin-only): "step:<id>" or a file path
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RatingTaskRow(Base):
    __tablename__ = "rating_tasks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key: Mapped[str] = mapped_column(String(80), unique=True)  # task_key(): mode, prompt, methods
    mode: Mapped[str] = mapped_column(String(16), index=True)
    prompt_key: Mapped[str] = mapped_column(String(64))
    output_a_id: Mapped[str] = mapped_column(String(32), ForeignKey("rating_outputs.id", ondelete="CASCADE"),
                                             index=True)
    output_b_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("rating_outputs.id", ondelete="CASCADE"), index=True, nullable=True)
    is_gold: Mapped[bool] = mapped_column(Boolean)
    gold_json: Mapped[str | None] = mapped_column(Text, nullable=True)  # the expected answer
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RatingAssignmentRow(Base):
    __tablename__ = "rating_assignments"
    __table_args__ = (UniqueConstraint("annotator", "task_id", name="uq_rating_assignments_annotator_task"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(MAX_USER_ID_CHARS), index=True)
    task_id: Mapped[str] = mapped_column(String(32), ForeignKey("rating_tasks.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    swapped: Mapped[bool] = mapped_column(Boolean)  # pairwise: output b is shown on the left
    overlap: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))  # pending | done | skipped | flagged
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # the flag's reason
    shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    acted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RatingRow(Base):
    __tablename__ = "ratings"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    assignment_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("rating_assignments.id", ondelete="CASCADE"), index=True)
    annotator: Mapped[str] = mapped_column(String(MAX_USER_ID_CHARS), index=True)
    task_id: Mapped[str] = mapped_column(String(32), ForeignKey("rating_tasks.id", ondelete="CASCADE"), index=True)
    mode: Mapped[str] = mapped_column(String(16))
    ins_align: Mapped[int | None] = mapped_column(Integer, nullable=True)
    consistency: Mapped[int | None] = mapped_column(Integer, nullable=True)
    plausibility: Mapped[int | None] = mapped_column(Integer, nullable=True)
    choice: Mapped[str | None] = mapped_column(String(16), nullable=True)  # a | b | tie | both_bad
    swapped: Mapped[bool] = mapped_column(Boolean)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    too_fast: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RatingSessionRow(Base):
    __tablename__ = "rating_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    annotator: Mapped[str] = mapped_column(String(MAX_USER_ID_CHARS), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ----------------------------------------------------------------------------------------------------------------
# Plain results
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class Progress:
    total: int = 0
    done: int = 0  # rated
    flagged: int = 0
    skipped: int = 0

    @property
    def answered(self) -> int:
        return self.done + self.flagged

    @property
    def pending(self) -> int:
        return self.total - self.answered - self.skipped


@dataclass
class Item:
    """One item as an annotator sees it: no method names, sides already in screen order."""

    assignment_id: str
    mode: str
    instruction: str
    source_image: str  # absolute paths
    images: list[str]  # absolute: [output]; pairwise: [left, right]
    position: int  # 1-based position in the annotator's queue
    status: str  # pending | skipped (a skipped item shown again)
    progress: Progress = field(default_factory=Progress)


@dataclass
class Answer:
    """What an action did (for the UI's message and the tests)."""

    assignment_id: str
    status: str
    seconds: float | None = None
    too_fast: bool = False


@dataclass
class ImportReport:
    added: int = 0
    existing: int = 0
    skipped: list[str] = field(default_factory=list)  # why some records were not imported
