"""proxy tokens: their own table, secrets kept as sha256 digests

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 22:30:00.000000

Tokens made before this revision were stored as internal secrets (``__proxy-<key>``,
Fernet-encrypted). The server moves them into this table at start (it holds the key to
decrypt them), so none is lost.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proxy_tokens",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )


def downgrade() -> None:
    op.drop_table("proxy_tokens")
