"""`Idempotency-Key`: a PUT or POST sent again with the same key gets the first answer.

The answer is stored in the transaction that made the change, so either
both are committed or neither: a retried call after a timeout either finds
the answer or does the work, never both, never twice. Two concurrent calls
with one key: the second's insert fails on the unique key, its work is
rolled back, and it answers with the first's. A key reused for a different
request (another path or body) is a 422. Answers are kept
`idempotency_hours` (the contract sweep deletes older ones); the first
answer to a new contract holds the recorder's password until then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from billing.core.db import session_scope
from billing.core.errors import InvalidField
from billing.core.models import IdempotentReply, utcnow

HEADER = "Idempotency-Key"
Work = Callable[[Session], tuple[int, Any]]


def fingerprint(request: Request, payload: Any) -> str:
    blob = json.dumps(
        [request.method, request.url.path, jsonable_encoder(payload)], sort_keys=True
    ).encode()
    return hashlib.sha256(blob).hexdigest()


def _prior(session: Session, distributor_id: int, key: str) -> IdempotentReply | None:
    return session.exec(
        select(IdempotentReply).where(
            IdempotentReply.distributor_id == distributor_id, IdempotentReply.key == key
        )
    ).first()


def _replay(row: IdempotentReply, print_: str) -> JSONResponse:
    if row.fingerprint != print_:
        raise InvalidField(HEADER, "was already used for a different request")
    return JSONResponse(json.loads(row.body), status_code=row.status_code)


def run(
    engine: Engine,
    request: Request,
    distributor_id: int,
    payload: Any,
    work: Work,
) -> JSONResponse:
    """Do `work` in one transaction (status, body) or replay the key's first answer."""
    key = request.headers.get(HEADER)
    if key is not None and not (0 < len(key) <= 200 and key.isprintable()):
        raise InvalidField(HEADER, "must be 1-200 printable characters")
    print_ = fingerprint(request, payload) if key else ""
    for attempt in (1, 2):
        try:
            return _once(engine, distributor_id, key, print_, work)
        except IntegrityError:
            # a concurrent call won: with its key, answer as it did; without
            # one (two PUTs of a new contract), run again, now as an update
            if key:
                with session_scope(engine) as s:
                    prior = _prior(s, distributor_id, key)
                if prior is not None:
                    return _replay(prior, print_)
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _once(
    engine: Engine, distributor_id: int, key: str | None, print_: str, work: Work
) -> JSONResponse:
    with session_scope(engine) as s:
        if key:
            prior = _prior(s, distributor_id, key)
            if prior is not None:
                return _replay(prior, print_)
        status, body = work(s)
        content = jsonable_encoder(body)
        if key:
            s.add(
                IdempotentReply(
                    distributor_id=distributor_id,
                    key=key,
                    fingerprint=print_,
                    status_code=status,
                    body=json.dumps(content),
                )
            )
            s.flush()
    return JSONResponse(content, status_code=status)


def forget_old(session: Session, hours: int) -> int:
    """Drop answers older than `hours`: called by the contract sweep."""
    table = IdempotentReply.__table__  # type: ignore[attr-defined]
    result = session.execute(
        delete(table).where(table.c.created_at < utcnow() - timedelta(hours=hours))
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
