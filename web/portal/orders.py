"""Ver pedidos: a customer's orders (charges) and their invoices' PDF and XML."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlmodel import Session

from billing.core.db import reader
from billing.core.errors import Cam2DriveError
from billing.invoicing.invoices import invoice_files, orders
from web.portal.pages import CustomerDep, PageError, parts, render

router = APIRouter(include_in_schema=False)


@router.get("/portal/orders")
def order_list(request: Request, who: CustomerDep) -> Response:
    with Session(reader(parts(request).engine)) as s:
        rows = orders(s, who.id)
    return render(request, "orders.html", rows=list(reversed(rows)))


@router.get("/portal/orders/{invoice_id}.{ext}")
def download(
    request: Request, invoice_id: int, ext: Literal["xml", "pdf"], who: CustomerDep
) -> Response:
    """An invoice document, if one of this customer's orders names it (404 otherwise)."""
    p = parts(request)
    with Session(reader(p.engine)) as s:
        mine = {
            doc
            for row in orders(s, who.id)
            for doc in (row.get("invoice"), row.get("credit_note"))
            if doc is not None
        }
        if invoice_id not in mine:
            raise PageError(404, "No such invoice.")
        try:
            xml, pdf = invoice_files(s, p.store, invoice_id)
        except Cam2DriveError:
            raise PageError(404, "This invoice is not ready yet.") from None
    body, media = (xml, "application/xml") if ext == "xml" else (pdf, "application/pdf")
    return Response(
        body,
        media_type=media,
        headers={
            "Content-Disposition": f'attachment; filename="cam2drive-{invoice_id}.{ext}"',
            "Cache-Control": "private, no-store",
        },
    )
