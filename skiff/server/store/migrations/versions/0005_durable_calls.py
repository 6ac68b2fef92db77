"""durable calls: the inputs and outputs of spawned and mapped calls

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_inputs",
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("args", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "idx"),
    )
    op.create_table(
        "call_outputs",
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "seq"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs_complete", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("owner", sa.String(length=32), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("owner")
        batch_op.drop_column("inputs_complete")
    op.drop_table("call_outputs")
    op.drop_table("call_inputs")
