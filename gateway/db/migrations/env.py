"""Alembic environment for the evidence tables; the caller hands in an open connection."""

from __future__ import annotations

from alembic import context

from gateway.db.models import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
    # the database may hold other nea-gateway tables (the pools): only ours are compared
    include_name=lambda name, type_, parent: (
        type_ != "table"
        or (str(name).startswith("nea_") and not str(name).endswith("alembic_version"))
    ),
)
with context.begin_transaction():
    context.run_migrations()
