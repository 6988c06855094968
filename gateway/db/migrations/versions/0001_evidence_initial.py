"""Evidence tables: products, packages, versions, software, inventories, identities, devices,
groups, policies, enforcements, sessions, per-policy results, remediations.

Revision ID: 0001_evidence_initial
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_evidence_initial"
down_revision = None
branch_labels = None
depends_on = None

# SQLite only auto-increments an INTEGER PRIMARY KEY.
_Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "nea_groups",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("parent_id", _Id, nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("criteria", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_id"],
            ["nea_groups.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "nea_identities",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "nea_packages",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "nea_policies",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("argument", sa.Text(), nullable=False),
        sa.Column("rec_fail", sa.String(length=16), nullable=True),
        sa.Column("rec_noresult", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("remediation_uri", sa.String(length=1024), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "nea_products",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("vendor_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "nea_software",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("identifier", sa.String(length=1024), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identifier"),
    )
    op.create_table(
        "nea_devices",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("product_id", _Id, nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["nea_products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("value"),
    )
    op.create_table(
        "nea_enforcements",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("policy_id", _Id, nullable=False),
        sa.Column("group_id", _Id, nullable=False),
        sa.Column("max_age", sa.BigInteger(), nullable=True),
        sa.Column("rec_fail", sa.String(length=16), nullable=True),
        sa.Column("rec_noresult", sa.String(length=16), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["nea_groups.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["nea_policies.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("policy_id", "group_id", name="uq_nea_enforcements"),
    )
    op.create_table(
        "nea_versions",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("package_id", _Id, nullable=False),
        sa.Column("product_id", _Id, nullable=False),
        sa.Column("release", sa.String(length=255), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["package_id"],
            ["nea_packages.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["nea_products.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("package_id", "product_id", "release", name="uq_nea_versions"),
    )
    op.create_table(
        "nea_inventories",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("device_id", _Id, nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["nea_devices.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_inventories", schema=None) as batch_op:
        batch_op.create_index(
            "ix_nea_inventories_device", ["device_id", "kind", "id"], unique=False
        )

    op.create_table(
        "nea_inventory_items",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("inventory_id", _Id, nullable=False),
        sa.Column("version_id", _Id, nullable=True),
        sa.Column("software_id", _Id, nullable=True),
        sa.ForeignKeyConstraint(["inventory_id"], ["nea_inventories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["software_id"],
            ["nea_software.id"],
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["nea_versions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_inventory_items", schema=None) as batch_op:
        batch_op.create_index("ix_nea_inventory_items_inventory", ["inventory_id"], unique=False)

    op.create_table(
        "nea_sessions",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("connection_id", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("retry", sa.Boolean(), nullable=False),
        sa.Column("identity_id", _Id, nullable=True),
        sa.Column("device_id", _Id, nullable=True),
        sa.Column("product_id", _Id, nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("facts", sa.Text(), nullable=False),
        sa.Column("packages_inventory_id", _Id, nullable=True),
        sa.Column("swima_inventory_id", _Id, nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.Column("recommendation", sa.String(length=16), nullable=True),
        sa.Column("access", sa.String(length=16), nullable=True),
        sa.Column("evaluation", sa.String(length=24), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("validators", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["nea_devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["nea_identities.id"],
        ),
        sa.ForeignKeyConstraint(
            ["packages_inventory_id"],
            ["nea_inventories.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["nea_products.id"],
        ),
        sa.ForeignKeyConstraint(
            ["swima_inventory_id"],
            ["nea_inventories.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_sessions", schema=None) as batch_op:
        batch_op.create_index("ix_nea_sessions_device", ["device_id", "id"], unique=False)
        batch_op.create_index("ix_nea_sessions_identity", ["identity_id"], unique=False)
        batch_op.create_index("ix_nea_sessions_started", ["started_at"], unique=False)

    op.create_table(
        "nea_remediations",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("session_id", _Id, nullable=False),
        sa.Column("policy_id", _Id, nullable=True),
        sa.Column("validator", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.String(length=1024), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["nea_policies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["nea_sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_remediations", schema=None) as batch_op:
        batch_op.create_index("ix_nea_remediations_session", ["session_id"], unique=False)

    op.create_table(
        "nea_results",
        sa.Column("id", _Id, autoincrement=True, nullable=False),
        sa.Column("session_id", _Id, nullable=False),
        sa.Column("device_id", _Id, nullable=True),
        sa.Column("policy_id", _Id, nullable=False),
        sa.Column("group_id", _Id, nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("recommendation", sa.String(length=16), nullable=False),
        sa.Column("evaluation", sa.String(length=24), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("remediation", sa.Text(), nullable=False),
        sa.Column("validator", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["nea_devices.id"],
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["nea_groups.id"],
        ),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["nea_policies.id"],
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["nea_sessions.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("nea_results", schema=None) as batch_op:
        batch_op.create_index(
            "ix_nea_results_device_policy", ["device_id", "policy_id", "outcome"], unique=False
        )
        batch_op.create_index("ix_nea_results_policy", ["policy_id", "outcome"], unique=False)
        batch_op.create_index("ix_nea_results_session", ["session_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("nea_results", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_results_session")
        batch_op.drop_index("ix_nea_results_policy")
        batch_op.drop_index("ix_nea_results_device_policy")

    op.drop_table("nea_results")
    with op.batch_alter_table("nea_remediations", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_remediations_session")

    op.drop_table("nea_remediations")
    with op.batch_alter_table("nea_sessions", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_sessions_started")
        batch_op.drop_index("ix_nea_sessions_identity")
        batch_op.drop_index("ix_nea_sessions_device")

    op.drop_table("nea_sessions")
    with op.batch_alter_table("nea_inventory_items", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_inventory_items_inventory")

    op.drop_table("nea_inventory_items")
    with op.batch_alter_table("nea_inventories", schema=None) as batch_op:
        batch_op.drop_index("ix_nea_inventories_device")

    op.drop_table("nea_inventories")
    op.drop_table("nea_versions")
    op.drop_table("nea_enforcements")
    op.drop_table("nea_devices")
    op.drop_table("nea_software")
    op.drop_table("nea_products")
    op.drop_table("nea_policies")
    op.drop_table("nea_packages")
    op.drop_table("nea_identities")
    op.drop_table("nea_groups")
