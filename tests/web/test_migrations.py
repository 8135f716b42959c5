"""Alembic migrations: they build exactly the models' schema, go down and up, and /readyz knows."""
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from dss_server import create_app
from dss_server import db as database
from dss_server.models import Base

from conftest import make_config


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
