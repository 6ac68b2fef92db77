"""deployments: versions and schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 03:20:17.893909
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("app_id", sa.String(length=32), nullable=False),
        sa.Column("function", sa.String(length=200), nullable=False),
        sa.Column("last_run_at", sa.Float(), nullable=True),
        sa.Column("next_run_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["app_id"],
            ["apps.id"],
        ),
        sa.PrimaryKeyConstraint("app_id", "function"),
    )
    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))

    with op.batch_alter_table("functions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("version", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("functions", schema=None) as batch_op:
        batch_op.drop_column("version")

    with op.batch_alter_table("apps", schema=None) as batch_op:
        batch_op.drop_column("version")

    op.drop_table("schedules")
