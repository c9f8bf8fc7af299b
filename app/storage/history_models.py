"""The history store's tables (migrations 0001 and 0003 create exactly these) and the plain results it hands to
the UI (no ORM objects escape the store)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.storage.database import MAX_USER_ID_CHARS, Base, NotFound, UTCDateTime

MAX_TITLE_CHARS = 200


class ChainRow(Base):
    __tablename__ = "chains"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(MAX_USER_ID_CHARS), index=True)
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS))
    source_image: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("0"))
    # why the source image is outside the world of the (synth-only) model that started the chain; NULL: in it
    domain_note: Mapped[str | None] = mapped_column(Text, nullable=True)


class StepRow(Base):
    __tablename__ = "steps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    chain_id: Mapped[str] = mapped_column(String(32), ForeignKey("chains.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(
        String(32), ForeignKey("steps.id", ondelete="CASCADE"), index=True, nullable=True
    )
    position: Mapped[int] = mapped_column(Integer)  # depth in the tree; 1 for a first step
    instruction: Mapped[str] = mapped_column(Text)
    input_image: Mapped[str] = mapped_column(String(255))
    output_image: Mapped[str] = mapped_column(String(255))
    seed: Mapped[int] = mapped_column(BigInteger)
    settings_json: Mapped[str] = mapped_column(Text)
    preset: Mapped[str] = mapped_column(String(64))
    checkpoint_hash: Mapped[str] = mapped_column(String(64))
    timings_json: Mapped[str] = mapped_column(Text)
    details_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ----------------------------------------------------------------------------------------------------------------
# Plain results handed to the UI (no ORM objects escape the store)
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class StepInfo:
    id: str
    chain_id: str
    parent_id: str | None
    position: int
    instruction: str
    input_image: str
    output_image: str
    seed: int
    settings: dict[str, Any]
    preset: str
    checkpoint_hash: str
    timings: dict[str, Any]
    details: dict[str, Any] | None  # None when loaded by get_chain(..., details=False); get_step has them
    created_at: datetime


@dataclass
class ChainInfo:
    id: str
    user_id: str
    title: str
    source_image: str
    created_at: datetime
    updated_at: datetime
    is_demo: bool
    num_steps: int
    last_output: str | None
    last_instruction: str | None
    domain_note: str | None = None  # set: the source is outside the model's world (the detector's reason)

    @property
    def out_of_domain(self) -> bool:
        return self.domain_note is not None


@dataclass
class ChainTree:
    chain: ChainInfo
    steps: list[StepInfo]  # ordered by (position, created_at)

    def step(self, step_id: str) -> StepInfo:
        for s in self.steps:
            if s.id == step_id:
                return s
        raise NotFound(f"step {step_id} is not in chain {self.chain.id}")

    def children(self, step_id: str | None) -> list[StepInfo]:
        """Steps applied to ``step_id``'s output; ``None`` -> the first steps (applied to the source image)."""
        return [s for s in self.steps if s.parent_id == step_id]

    def path_to(self, step_id: str) -> list[StepInfo]:
        """The steps from a first step down to ``step_id`` (inclusive), in order."""
        by_id = {s.id: s for s in self.steps}
        if step_id not in by_id:
            raise NotFound(f"step {step_id} is not in chain {self.chain.id}")
        path: list[StepInfo] = []
        current: str | None = step_id
        while current is not None:
            step = by_id[current]
            path.append(step)
            current = step.parent_id
            if len(path) > len(by_id):  # defensive: a cycle would mean a corrupt database
                raise ValueError(f"chain {self.chain.id} has a cycle in its steps")
        return path[::-1]

    def leaves(self) -> list[StepInfo]:
        """Steps nobody has edited further (the tips of every branch)."""
        parents = {s.parent_id for s in self.steps}
        return [s for s in self.steps if s.id not in parents]
