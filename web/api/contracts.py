"""`/api/v1/contracts`: provision, look at, block, suspend and cancel an ERP's contracts.

Handlers are thin: billing/contracts.py holds every rule; this module
turns a request into a call and a result into JSON, inside one
transaction with the request's `Idempotency-Key` answer (web/idempotency.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlmodel import Session

from billing import contracts
from billing.core.db import reader
from billing.core.models import utcnow
from web import idempotency
from web.api.schemas import (
    BlockIn,
    ContractCreated,
    ContractIn,
    ContractOut,
    HistoryItem,
    Problem,
    contract_out,
)
from web.deps import CallerDep, parts, read_session

router = APIRouter(prefix="/api/v1", tags=["contracts"])
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "missing or wrong API credentials"},
    404: {"model": Problem, "description": "no such contract for this distributor"},
    409: {"model": Problem, "description": "the contract's state forbids it"},
    422: {"model": Problem, "description": "bad input; `field` names it"},
}


def _device(request: Request, username: str, password: str | None) -> dict[str, Any]:
    st = parts(request).settings
    host = st.recorder_host()
    return {
        "username": username,
        **({"password": password} if password else {}),
        "ftp": {"host": host, "port": st.ftp_port},
        "sftp": {"host": host, "port": st.sftp_port},
        "remote_dir": "/",
    }


@router.put(
    "/contracts/{contract_id}",
    response_model=ContractCreated,
    status_code=200,
    summary="Create (201, recorder password shown once) or update (200) a contract",
    responses={201: {"model": ContractCreated, "description": "created"}, **ERRORS},
)
def put_contract(
    contract_id: str, body: ContractIn, request: Request, who: CallerDep
) -> JSONResponse:
    def work(s: Session) -> tuple[int, Any]:
        c = body.customer
        result = contracts.put(
            s,
            distributor_id=who.distributor_id,
            contract_id=contract_id,
            label=body.label,
            customer=contracts.CustomerInput(
                c.name, c.email, c.phone or "", c.document, c.password
            ),
            actor=who.actor,
            today=utcnow().date(),
            settings=parts(request).settings,
        )
        out = contract_out(result.view)
        out["device"] = _device(request, result.view.username, result.device_password)
        return (201 if result.created else 200), out

    return idempotency.run(parts(request).engine, request, who.distributor_id, body, work)


@router.get(
    "/contracts/{contract_id}",
    response_model=ContractOut,
    summary="A contract's status, plan, usage and last upload",
    responses=ERRORS,
)
def get_contract(contract_id: str, request: Request, who: CallerDep) -> dict[str, Any]:
    # the ERP's most frequent call: one SELECT on a pooled connection, no ORM session
    with reader(parts(request).engine).connect() as conn:
        return contract_out(contracts.status(conn, who.distributor_id, contract_id))


def _act(request: Request, who: Any, contract_id: str, verb: str, payload: Any) -> JSONResponse:
    p = parts(request)

    def work(s: Session) -> tuple[int, Any]:
        contract = contracts.get(s, who.distributor_id, contract_id)
        view = contracts.act(s, p.settings, contract, verb, actor=who.actor, today=utcnow().date())
        return 200, contract_out(view)

    return idempotency.run(p.engine, request, who.distributor_id, payload, work)


@router.post(
    "/contracts/{contract_id}/block",
    response_model=ContractOut,
    summary="Block: partial keeps recording but refuses viewing; total refuses both",
    responses=ERRORS,
)
def block(contract_id: str, body: BlockIn, request: Request, who: CallerDep) -> JSONResponse:
    return _act(request, who, contract_id, f"block_{body.level}", body)


def _verb(verb: str, summary: str) -> None:
    def handler(contract_id: str, request: Request, who: CallerDep) -> JSONResponse:
        return _act(request, who, contract_id, verb, {})

    handler.__name__ = verb
    router.post(
        f"/contracts/{{contract_id}}/{verb}",
        response_model=ContractOut,
        summary=summary,
        responses=ERRORS,
    )(handler)


_verb("unblock", "Unblock: back to active")
_verb("suspend", "Suspend: recording and viewing refused, drive kept")
_verb("reactivate", "Reactivate a suspended, blocked or cancelled (not yet deleted) contract")
_verb("cancel", "Cancel: refused at once; the drive is deleted after the retention")


@router.get(
    "/contracts/{contract_id}/history",
    response_model=list[HistoryItem],
    summary="Every action on the contract: when, its source and its effect",
    responses=ERRORS,
)
def history(contract_id: str, request: Request, who: CallerDep) -> list[dict[str, Any]]:
    with read_session(request) as s:
        return contracts.history(s, contracts.get(s, who.distributor_id, contract_id))
