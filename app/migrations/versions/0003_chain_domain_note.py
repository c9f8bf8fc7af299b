"""Chains remember why their source image is outside the world of the model that edited it.

``chains.domain_note``: NULL when the source is in the model's domain (or the model is not synth-only);
otherwise the detector's reason, and the chain is labelled "out of domain" in the Edit tab and History.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("chains", sa.Column("domain_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chains") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("domain_note")
