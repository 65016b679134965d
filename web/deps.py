"""What a request handler is given: the parts, and the distributor its API key belongs to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import Session, select

from billing import apikeys
from billing.core.credentials import hash_password, verify
from billing.core.db import database_errors, reader
from billing.core.models import Customer

_basic = HTTPBasic(auto_error=False, realm="cam2drive", description="key_id:secret")


def parts(request: Request) -> Any:
    return request.app.state.parts


@contextmanager
def read_session(request: Request) -> Iterator[Session]:
    """A session for GETs: no write lock on SQLite, no BEGIN/ROLLBACK on PostgreSQL."""
    with Session(reader(parts(request).engine), expire_on_commit=False) as session:
        yield session


@dataclass(frozen=True)
class Caller:
    distributor_id: int
    key_id: str

    @property
    def actor(self) -> str:
        """Who the audit log and a contract's history name as the source."""
        return f"api:{self.key_id}"


def caller(
    request: Request,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_basic)],
) -> Caller:
    """The distributor behind `key_id:secret`; 401 for anything else, always the same words."""
    distributor_id = None
    if credentials is not None and len(credentials.username) <= 40:
        with database_errors():
            distributor_id = apikeys.authenticate(
                parts(request).engine, credentials.username, credentials.password
            )
    if distributor_id is None:
        raise HTTPException(
            status_code=401,
            detail="missing or wrong API credentials (HTTP Basic key_id:secret)",
            headers={"WWW-Authenticate": 'Basic realm="cam2drive"'},
        )
    return Caller(distributor_id, credentials.username)  # type: ignore[union-attr]


CallerDep = Annotated[Caller, Depends(caller)]


_portal_basic = HTTPBasic(auto_error=False, realm="cam2drive portal", description="email:password")
_NO_CUSTOMER: list[str] = []  # an argon2 hash to verify against when the email is unknown


def current_customer(
    request: Request,
    credentials: Annotated[HTTPBasicCredentials | None, Depends(_portal_basic)],
) -> int:
    """The signed-in customer's id; 401 otherwise, the same words and work either way.

    A stand-in for the portal's session sign-in (#31 item 1), which replaces
    the body and keeps the signature: HTTP Basic with the customer's email
    and viewer password, argon2-verified. An unknown email is verified
    against a throwaway hash so it takes as long as a wrong password.
    """
    customer_id = None
    if credentials is not None and len(credentials.username) <= 254:
        with database_errors(), Session(reader(parts(request).engine)) as session:
            row = session.exec(
                select(Customer.id, Customer.password_hash).where(
                    Customer.email == credentials.username.strip().lower()
                )
            ).first()
        if row is None or row[1] is None:
            if not _NO_CUSTOMER:
                _NO_CUSTOMER.append(hash_password("no such customer"))
            verify(_NO_CUSTOMER[0], credentials.password)
        elif verify(row[1], credentials.password):
            customer_id = row[0]
    if customer_id is None:
        raise HTTPException(
            status_code=401,
            detail="sign in with your email and password",
            headers={"WWW-Authenticate": 'Basic realm="cam2drive portal"'},
        )
    return customer_id


CustomerDep = Annotated[int, Depends(current_customer)]
