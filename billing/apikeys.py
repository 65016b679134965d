"""Distributors' API credentials for their ERP: HTTP Basic `key_id:secret` on /api/v1."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import URL, Engine, select
from sqlmodel import Session
from sqlmodel import select as sm_select

from billing.catalog import get_distributor
from billing.core import audit
from billing.core.credentials import hash_device_secret, new_api_key, verify
from billing.core.db import reader
from billing.core.errors import NotFound
from billing.core.models import ApiKey, utcnow

keys = ApiKey.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    secret: str  # shown once, never stored


def create(session: Session, distributor_id: int, *, actor: str) -> NewKey:
    get_distributor(session, distributor_id)
    key_id, secret = new_api_key()
    key = ApiKey(
        distributor_id=distributor_id, key_id=key_id, secret_hash=hash_device_secret(secret)
    )
    session.add(key)
    session.flush()
    _record(session, key, "api_key_created", actor=actor)
    return NewKey(key, secret)


def listing(session: Session, distributor_id: int) -> Sequence[ApiKey]:
    return session.exec(
        sm_select(ApiKey).where(ApiKey.distributor_id == distributor_id).order_by(ApiKey.id)  # type: ignore[arg-type]
    ).all()


def revoke(session: Session, key_id: str, *, actor: str) -> ApiKey:
    key = session.exec(sm_select(ApiKey).where(ApiKey.key_id == key_id.strip())).first()
    if key is None:
        raise NotFound("API key %(key_id)s does not exist", key_id=key_id)
    if key.revoked_at is None:
        _live.clear()  # this process stops trusting it at once; others within LIVE_KEY_SECONDS
        key.revoked_at = utcnow()
        session.add(key)
        _record(session, key, "api_key_revoked", actor=actor)
    return key


def _record(session: Session, key: ApiKey, action: str, *, actor: str) -> None:
    """A key's events are the distributor's, naming the key (never its secret)."""
    audit.record(
        session,
        "distributor",
        key.distributor_id,
        action,
        audit.OPERATOR,
        actor=actor,
        key_id=key.key_id,
    )


#: how long a server process trusts a live key's row without reading it again:
#: a key revoked by another process (the CLI) keeps working at most this long
LIVE_KEY_SECONDS = 2.0
_live: dict[tuple[URL, str], tuple[float, int, str]] = {}
_LIVE_MAX = 4096


def authenticate(engine: Engine, key_id: str, secret: str) -> int | None:
    """The distributor a live key belongs to, or None: a SHA-256 and a constant-time compare.

    The secret is random (~190 bits), so a fast digest is as strong as a slow
    hash. The key's row (distributor, digest; never the secret) is kept
    `LIVE_KEY_SECONDS` so a busy ERP costs no read per call; every call still
    checks its secret against the digest, and unknown or revoked keys are
    never kept, so a wrong secret is always refused.
    """
    now = time.monotonic()
    slot = (engine.url, key_id)
    live = _live.get(slot)
    if live is None or live[0] <= now:
        with reader(engine).connect() as conn:
            row = conn.execute(
                select(keys.c.distributor_id, keys.c.secret_hash).where(
                    keys.c.key_id == key_id, keys.c.revoked_at.is_(None)
                )
            ).first()
        if row is None:
            _live.pop(slot, None)
            return None
        if len(_live) >= _LIVE_MAX:
            _live.clear()
        live = _live[slot] = (now + LIVE_KEY_SECONDS, int(row.distributor_id), row.secret_hash)
    return live[1] if verify(live[2], secret) else None
