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
    # Inputs and outputs are kept a batch to a row (the batch a client sent, the outputs
    # one group commit wrote): a map of 10,000 inputs is tens of rows, not 20,000.
    op.create_table(
        "call_input_batches",
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("first_idx", sa.Integer(), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "first_idx"),
    )
    op.create_table(
        "call_output_batches",
        sa.Column("call_id", sa.String(length=32), nullable=False),
        sa.Column("first_seq", sa.Integer(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("call_id", "first_seq"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inputs_complete", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("owner", sa.String(length=32), server_default="", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("owner")
        batch_op.drop_column("inputs_complete")
    op.drop_table("call_output_batches")
    op.drop_table("call_input_batches")
