"""What a request handler is given: the parts, and the distributor its API key belongs to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from sqlmodel import Session

from billing import apikeys
from billing.core.db import database_errors, reader
from billing.core.models import Customer
from billing.video_grants import granted
from web.portal.pages import principal

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


def current_customer(request: Request) -> int:
    """The customer whose recordings this request may reach; 401 otherwise.

    The media routes are the portal's: its session cookie (web/sessions.py)
    says who is asking. A customer is themself; distributor staff name a
    customer of theirs (`?customer=`) who granted viewing.
    """
    who = principal(request)
    if who is None:
        raise HTTPException(status_code=401, detail="sign in to the portal first")
    if who.kind == "customer":
        return who.id
    return _granted_customer(request, who.distributor_id)


def _granted_customer(request: Request, distributor_id: int) -> int:
    """The customer a staff member names (`?customer=`): theirs, and only with its grant.

    Another distributor's customer, or none, is 404; one that has not granted
    viewing is 403 (the staff member knows the customer, not their video).
    """
    try:
        customer_id = int(request.query_params.get("customer", ""))
    except ValueError:
        raise HTTPException(status_code=404, detail="no such recording") from None
    with database_errors(), Session(reader(parts(request).engine)) as session:
        cust = session.get(Customer, customer_id)
        if cust is None or cust.distributor_id != distributor_id:
            raise HTTPException(status_code=404, detail="no such recording")
        if not granted(session, customer_id):
            raise HTTPException(
                status_code=403, detail="the customer has not allowed their distributor to watch"
            )
    return customer_id


CustomerDep = Annotated[int, Depends(current_customer)]
