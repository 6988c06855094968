"""RADIUS accounting sessions: nea_accounting (NAS, Acct-Session-Id, octets, packets,
duration, terminate cause, the posture session they belong to).

Revision ID: 0002_evidence_accounting
Revises: 0001_evidence_initial
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_evidence_accounting"
down_revision = "0001_evidence_initial"
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nea_accounting",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("nas", sa.String(length=255), nullable=False),
        sa.Column("acct_session_id", sa.String(length=255), nullable=False),
        sa.Column("nas_address", sa.String(length=64), nullable=True),
        sa.Column("session_id", _Id, nullable=True),
        sa.Column("connection_id", sa.BigInteger(), nullable=True),
        sa.Column("user_name", sa.String(length=255), nullable=True),
        sa.Column("calling_station_id", sa.String(length=255), nullable=True),
        sa.Column("framed_ip", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.Column("input_octets", sa.BigInteger(), nullable=True),
        sa.Column("output_octets", sa.BigInteger(), nullable=True),
        sa.Column("input_packets", sa.BigInteger(), nullable=True),
        sa.Column("output_packets", sa.BigInteger(), nullable=True),
        sa.Column("duration", sa.BigInteger(), nullable=True),
        sa.Column("terminate_cause", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["nea_sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_accounting", schema=None) as batch_op:
        batch_op.create_index("ix_nea_accounting_key", ["nas", "acct_session_id"], unique=False)
        batch_op.create_index("ix_nea_accounting_session", ["session_id"], unique=False)
        batch_op.create_index("ix_nea_accounting_started", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nea_accounting", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_accounting_started")
        batch_op.drop_index("ix_nea_accounting_session")
        batch_op.drop_index("ix_nea_accounting_key")

    op.drop_table("nea_accounting")
