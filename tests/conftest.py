"""Real parts for every test: SeaweedFS S3, SQLite and PostgreSQL, a live FTP gateway.

`stack` is parametrised over both databases, so each test that uses it runs
twice. PostgreSQL gets a fresh database per test run (dropped at the end)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import psycopg
import pytest

from billing.core.schema import upgrade
from cli.devstack.mp_emulator import MercadoPagoEmulator
from cli.devstack.seaweed import SeaweedServer
from tests.support.stack import (
    PG_ADMIN,
    Stack,
    fiscal,
    stack_on_own_s3,
    stack_with,
)


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    server = SeaweedServer(tmp_path_factory.mktemp("seaweed")).start()
    for key, value in server.env().items():
        os.environ[key] = value
    yield server
    server.stop()


@contextmanager
def _pg_database(prefix: str) -> Iterator[str]:
    """A new migrated PostgreSQL database (its SQLAlchemy URL), dropped on exit."""
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url.replace("postgresql://", "postgresql+psycopg://")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    with _pg_database("c2d_test") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def own_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database for one test, for commands that act on every record in it
    (a billing pass): the shared one holds other tests' subscriptions, whose
    emulators are gone, and the pass would rightly call them unreachable."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'own.db'}"
        upgrade(url)
        yield url
        return
    with _pg_database("c2d_own") as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'cam2drive.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the demo CSD and the local PAC's certificate are made, once per run."""
    return tmp_path_factory.mktemp("certs")


@pytest.fixture
def mp_emulator() -> Iterator[MercadoPagoEmulator]:
    """The Mercado Pago emulator, its clock on the first day of the billing tests."""
    with MercadoPagoEmulator(timeout_seconds=1, today=date(2026, 11, 22)) as emu:
        yield emu


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")


@pytest.fixture
def stack(db_url: str, seaweed: SeaweedServer) -> Iterator[Stack]:
    with stack_with(db_url, seaweed) as s:
        yield s


@pytest.fixture
def istack(db_url: str, seaweed: SeaweedServer, certs: Path) -> Iterator[Stack]:
    """A stack that issues invoices (the demo CSD and the local test PAC)."""
    with stack_with(db_url, seaweed, **fiscal(certs)) as s:
        yield s


@pytest.fixture
def ostack(db_url: str, seaweed: SeaweedServer, tmp_path: Path) -> Iterator[Stack]:
    """A stack on a SeaweedFS of its own (`ostack.seaweed`), for a test that stops and
    starts S3 (after `seaweed`, which puts the dev credentials in the environment)."""
    with stack_on_own_s3(db_url, tmp_path, "own") as (stack, _):
        yield stack


def pytest_configure(config: pytest.Config) -> None:
    Path("var").mkdir(exist_ok=True)


REAL_PARTS = {
    "seaweed",
    "pg_url",
    "sqlite_url",
    "db_url",
    "own_db_url",
    "stack",
    "mp_emulator",
    "certs",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs no server `unit`, so `make test-fast` runs them in seconds."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        spawns = item.get_closest_marker("process") is not None
        if not spawns and not names & REAL_PARTS and not any(n.endswith("stack") for n in names):
            item.add_marker(pytest.mark.unit)
