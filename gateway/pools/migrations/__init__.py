"""Alembic migrations of the pool tables (run by :func:`gateway.pools.schema.ensure_schema`).

New revision: ``alembic -c /dev/null -x ... revision`` is awkward without an ini file; write the
revision by hand in ``versions/`` with ``down_revision`` set to the current head.
"""
