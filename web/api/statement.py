"""`GET /api/v1/statement?month=YYYY-MM`: what the ISP owes for the month."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from billing.statement import statement
from web.api.schemas import StatementOut
from web.deps import CallerDep, read_session

router = APIRouter(prefix="/api/v1", tags=["statement"])


@router.get(
    "/statement",
    response_model=StatementOut,
    summary="Active days x wholesale price per contract and plan, exact to the cent",
)
def get_statement(
    request: Request,
    who: CallerDep,
    month: str = Query(description="YYYY-MM", max_length=7),
) -> StatementOut:
    with read_session(request) as s:
        st = statement(s, who.distributor_id, month)
    return StatementOut(
        month=st.month,
        days_in_month=st.days_in_month,
        lines=[
            {  # type: ignore[misc]
                "contract_id": ln.contract_id,
                "label": ln.label,
                "start": ln.start,
                "end": ln.end,
                "days": ln.days,
                "monthly_price": str(ln.monthly_price),
                "amount": str(ln.amount),
                "currency": ln.currency,
            }
            for ln in st.lines
        ],
        totals={k: str(v) for k, v in st.totals.items()},
    )
