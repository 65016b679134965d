"""Append-only rows written in bulk when their transaction commits.

A billing pass on the 5th records a ledger row and an audit event for every
subscription. As ORM objects each costs more to build than to store (SQLModel
fills defaults and instruments every attribute, ~0.15 ms), and a batched ORM
insert on PostgreSQL sends one huge statement psycopg must parse in Python.
Staged rows are plain dicts, inserted with one executemany per table (in the
order they were added) when the session commits, and dropped if it rolls back:
the same transaction as the change they describe, at a fraction of the cost.
Only for rows nothing reads back before the commit (the ledger and audit log
of a pass). Sessions that do not opt in keep writing ORM objects.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, event, insert
from sqlmodel import Session

_KEY = "cam2drive.staged"


def enable(session: Session) -> None:
    """Stage this session's `add` rows until it commits (idempotent)."""
    if _KEY in session.info:
        return
    session.info[_KEY] = []
    event.listen(session, "before_commit", _write)
    event.listen(session, "after_rollback", _drop)


def add(session: Session, table: Table, row: dict[str, Any]) -> bool:
    """Stage `row` for `table`; False if the session does not stage (write it yourself)."""
    staged = session.info.get(_KEY)
    if staged is None:
        return False
    staged.append((table, row))
    return True


def _write(session: Session) -> None:
    staged: list[tuple[Table, dict[str, Any]]] = session.info[_KEY]
    if not staged:
        return
    session.info[_KEY] = []
    tables: dict[Table, list[dict[str, Any]]] = {}
    for table, row in staged:  # one executemany per table, rows in the order staged
        tables.setdefault(table, []).append(row)
    for table, rows in tables.items():
        session.execute(insert(table), rows)


def _drop(session: Session) -> None:
    session.info[_KEY] = []
