"""Pool tables: pools, identities, addresses, leases, attribute_pools, attributes.

Revision ID: 0001_pools_initial
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_pools_initial"
down_revision = None
branch_labels = None
depends_on = None

_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "pools",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("first_addr", sa.LargeBinary(16), nullable=True),
        sa.Column("last_addr", sa.LargeBinary(16), nullable=True),
        sa.Column("family", sa.Integer, nullable=False),
        sa.Column("timeout", sa.BigInteger, nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identities",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("data", sa.String(1024), nullable=False, unique=True),
    )
    op.create_table(
        "addresses",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("pool", _Id, sa.ForeignKey("pools.id", ondelete="CASCADE"), nullable=False),
        sa.Column("address", sa.LargeBinary(16), nullable=False),
        sa.Column("identity", _Id, sa.ForeignKey("identities.id"), nullable=True),
        sa.Column("acquired", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("pool", "address", name="uq_addresses_pool_address"),
    )
    op.create_index("ix_addresses_pool_identity", "addresses", ["pool", "identity"])
    op.create_index("ix_addresses_pool_released", "addresses", ["pool", "released"])
    op.create_table(
        "leases",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column(
            "address", _Id, sa.ForeignKey("addresses.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("identity", _Id, sa.ForeignKey("identities.id"), nullable=False),
        sa.Column("acquired", sa.BigInteger, nullable=False),
        sa.Column("released", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_leases_address", "leases", ["address"])
    op.create_table(
        "attribute_pools",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
    )
    op.create_table(
        "attributes",
        sa.Column("id", _Id, primary_key=True, autoincrement=True),
        sa.Column("identity", _Id, sa.ForeignKey("identities.id"), nullable=True),
        sa.Column(
            "pool", _Id, sa.ForeignKey("attribute_pools.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("type", sa.Integer, nullable=False),
        sa.Column("value", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_attributes_pool_identity", "attributes", ["pool", "identity"])


def downgrade() -> None:
    for index, table in (
        ("ix_attributes_pool_identity", "attributes"),
        ("ix_leases_address", "leases"),
        ("ix_addresses_pool_released", "addresses"),
        ("ix_addresses_pool_identity", "addresses"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("attributes", "attribute_pools", "leases", "addresses", "identities", "pools"):
        op.drop_table(table)
