"""Alembic migrations: they build exactly the models' schema, go down and up, and /readyz knows."""
import os
import subprocess
import time

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from dss_server import create_app
from dss_server import db as database
from dss_server.models import Base
from helpers import PYTHON
from web_support import make_config


def test_migrated_postgresql_schema_equals_the_models(migrated_db):
    engine = database.make_engine(migrated_db)
    with engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    assert database.migrations_at_head(engine)
    engine.dispose()


def test_downgrade_to_nothing_and_up_again(make_database):
    engine = database.make_engine(make_database("dss_migrate"))
    database.migrate(engine)
    with engine.begin() as connection:
        command.downgrade(database._alembic_config(connection), "base")
    assert not database.migrations_at_head(engine)
    database.migrate(engine)
    assert database.migrations_at_head(engine)
    engine.dispose()


def test_readyz_is_503_until_migrated(make_database, tmp_path):
    url = make_database("dss_unmigrated")
    app = create_app(make_config(url, tmp_path))
    client = app.test_client()
    assert client.get("/healthz").data == b"ok"
    response = client.get("/readyz")
    assert response.status_code == 503 and b"python -m dss_server migrate" in response.data
    database.migrate(app.extensions["dss_engine"])
    assert (client.get("/readyz").status_code, client.get("/readyz").data) == (200, b"ok")


def test_concurrent_migrate_commands_all_succeed(make_database, tmp_path):
    """Web replicas starting together each run `migrate`: they queue on an advisory lock.

    The test holds that lock until all four wait on it, then lets them go at the same moment.
    """
    url = make_database("dss_migrate_race")
    env = {**os.environ, "DATABASE_URL": url, "ITK_SNAP_SERVER_NOAUTH": "1"}
    engine = database.make_engine(url)
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": database.MIGRATION_LOCK_KEY})
        processes = [subprocess.Popen([PYTHON, "-m", "dss_server", "migrate"], cwd=tmp_path,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True) for _ in range(4)]
        deadline = time.monotonic() + 180
        while _advisory_waiters(engine) < 4:
            assert time.monotonic() < deadline, "the migrate commands never queued on the lock"
            assert all(process.poll() is None for process in processes), "one ended early"
            time.sleep(0.1)
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": database.MIGRATION_LOCK_KEY})
        holder.commit()
    outputs = [process.communicate(timeout=180)[0] for process in processes]
    assert [process.returncode for process in processes] == [0] * 4, outputs
    assert database.migrations_at_head(engine)
    engine.dispose()


def _advisory_waiters(engine) -> int:
    with engine.connect() as connection:
        return connection.scalar(text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"))
