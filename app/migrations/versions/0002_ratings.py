"""Human ratings: candidate outputs, rating tasks, per-annotator assignments, ratings and sign-in sessions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rating_outputs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("method", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("record_id", sa.String(length=255), nullable=True),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("instruction", sa.Text(), nullable=False),
        sa.Column("source_image", sa.String(length=255), nullable=False),
        sa.Column("output_image", sa.String(length=255), nullable=False),
        sa.Column("origin", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_outputs")),
        sa.UniqueConstraint("method", "prompt_key", name="uq_rating_outputs_method_prompt"),
    )
    op.create_index(op.f("ix_rating_outputs_method"), "rating_outputs", ["method"], unique=False)
    op.create_index(op.f("ix_rating_outputs_prompt_key"), "rating_outputs", ["prompt_key"], unique=False)
    op.create_table(
        "rating_sessions",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_rating_sessions")),
    )
    op.create_index(op.f("ix_rating_sessions_annotator"), "rating_sessions", ["annotator"], unique=False)
    op.create_table(
        "rating_tasks",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=80), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("prompt_key", sa.String(length=64), nullable=False),
        sa.Column("output_a_id", sa.String(length=32), nullable=False),
        sa.Column("output_b_id", sa.String(length=32), nullable=True),
        sa.Column("is_gold", sa.Boolean(), nullable=False),
        sa.Column("gold_json", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["output_a_id"], ["rating_outputs.id"],
                                name=op.f("fk_rating_tasks_output_a_id_rating_outputs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["output_b_id"], ["rating_outputs.id"],
                                name=op.f("fk_rating_tasks_output_b_id_rating_outputs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_tasks")),
        sa.UniqueConstraint("key", name=op.f("uq_rating_tasks_key")),
    )
    op.create_index(op.f("ix_rating_tasks_mode"), "rating_tasks", ["mode"], unique=False)
    op.create_index(op.f("ix_rating_tasks_output_a_id"), "rating_tasks", ["output_a_id"], unique=False)
    op.create_index(op.f("ix_rating_tasks_output_b_id"), "rating_tasks", ["output_b_id"], unique=False)
    op.create_table(
        "rating_assignments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.Column("overlap", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("shown_at", sa.DateTime(), nullable=True),
        sa.Column("acted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["rating_tasks.id"],
                                name=op.f("fk_rating_assignments_task_id_rating_tasks"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rating_assignments")),
        sa.UniqueConstraint("annotator", "task_id", name="uq_rating_assignments_annotator_task"),
    )
    op.create_index(op.f("ix_rating_assignments_annotator"), "rating_assignments", ["annotator"], unique=False)
    op.create_index(op.f("ix_rating_assignments_task_id"), "rating_assignments", ["task_id"], unique=False)
    op.create_table(
        "ratings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("assignment_id", sa.String(length=32), nullable=False),
        sa.Column("annotator", sa.String(length=128), nullable=False),
        sa.Column("task_id", sa.String(length=32), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("ins_align", sa.Integer(), nullable=True),
        sa.Column("consistency", sa.Integer(), nullable=True),
        sa.Column("plausibility", sa.Integer(), nullable=True),
        sa.Column("choice", sa.String(length=16), nullable=True),
        sa.Column("swapped", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("too_fast", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("undone_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["assignment_id"], ["rating_assignments.id"],
                                name=op.f("fk_ratings_assignment_id_rating_assignments"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["task_id"], ["rating_tasks.id"], name=op.f("fk_ratings_task_id_rating_tasks"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ratings")),
    )
    op.create_index(op.f("ix_ratings_annotator"), "ratings", ["annotator"], unique=False)
    op.create_index(op.f("ix_ratings_assignment_id"), "ratings", ["assignment_id"], unique=False)
    op.create_index(op.f("ix_ratings_task_id"), "ratings", ["task_id"], unique=False)


def downgrade() -> None:
    for table, columns in (
        ("ratings", ("task_id", "assignment_id", "annotator")),
        ("rating_assignments", ("task_id", "annotator")),
        ("rating_tasks", ("output_b_id", "output_a_id", "mode")),
        ("rating_sessions", ("annotator",)),
        ("rating_outputs", ("prompt_key", "method")),
    ):
        for column in columns:
            op.drop_index(op.f(f"ix_{table}_{column}"), table_name=table)
        op.drop_table(table)
