"""Alembic migrations, run programmatically (see dss_server.db.migrate)."""
