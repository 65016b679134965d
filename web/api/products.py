"""`GET /api/v1/products`: what the ERP's "Sincronizar" reads."""

from __future__ import annotations

from fastapi import APIRouter, Request

from billing import contracts
from gateway.ingest import human
from web.api.schemas import Product
from web.deps import CallerDep, read_session

router = APIRouter(prefix="/api/v1", tags=["products"])


@router.get("/products", response_model=list[Product], summary="The plans this distributor sells")
def list_products(request: Request, who: CallerDep) -> list[Product]:
    with read_session(request) as s:
        return [
            Product(
                label=plan.code,
                name=f"cam2drive {human(plan.capacity_bytes)}",
                capacity_bytes=plan.capacity_bytes,
                price=str(product.wholesale_price),
                currency=product.currency,
            )
            for plan, product in contracts.products(s, who.distributor_id)
        ]
