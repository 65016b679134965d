"""Alembic is the schema: migrations match the models on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

from billing.core.db import make_engine
from billing.core.schema import current_revision, head_revision, upgrade


def test_migrations_match_models(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(ctx, SQLModel.metadata)
    assert diff == []
    assert current_revision(engine) == head_revision()
    upgrade(db_url)  # re-running is a no-op
    assert current_revision(engine) == head_revision()
    engine.dispose()
