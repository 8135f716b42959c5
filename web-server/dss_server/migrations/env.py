"""Alembic environment: the connection is handed in by dss_server.db.migrate."""
from alembic import context

from dss_server.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
