"""The API's request and response bodies: what /openapi.json documents."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from billing.contracts import ContractView


class Product(BaseModel):
    label: str = Field(description="The product's label: what the ERP's package links to.")
    name: str
    capacity_bytes: int
    price: str = Field(description="The distributor's monthly wholesale price, e.g. '49.90'.")
    currency: str


class CustomerIn(BaseModel):
    name: str = Field(max_length=200)
    email: str = Field(max_length=254)
    phone: str | None = Field(
        default=None, max_length=40, description="Required; the ERP sends it with the package."
    )
    document: str = Field(max_length=40, description="CPF, CNPJ or RFC; check digits checked.")
    password: str | None = Field(
        default=None,
        max_length=200,
        description="The viewer password (seed 002: the ERP may send the document). "
        "Without one the customer sets their own.",
    )


class ContractIn(BaseModel):
    label: str = Field(max_length=40, description="A product label from GET /products.")
    customer: CustomerIn


class Endpoint(BaseModel):
    host: str
    port: int


class DeviceOut(BaseModel):
    username: str
    password: str | None = Field(
        default=None, description="Only in the 201 that created the contract."
    )
    ftp: Endpoint
    sftp: Endpoint
    remote_dir: str


class CustomerOut(BaseModel):
    id: int
    email: str


class Usage(BaseModel):
    capacity_bytes: int
    committed_bytes: int


Status = Literal["active", "blocked_partial", "blocked_total", "suspended", "cancelled", "deleted"]


class ContractOut(BaseModel):
    contract_id: str
    status: Status
    label: str
    next_label: str | None = Field(default=None, description="A downgrade waiting for next month.")
    customer: CustomerOut
    usage: Usage
    last_upload_at: datetime | None
    delete_on: date | None = Field(
        default=None, description="Cancelled: the day the drive is deleted unless reactivated."
    )


class ContractCreated(ContractOut):
    device: DeviceOut


class BlockIn(BaseModel):
    level: Literal["partial", "total"]


class HistoryItem(BaseModel):
    at: datetime
    action: str
    source: str = Field(description="`api_key <key id>`, `cli` or `billing`.")
    effect: str
    status_before: str | None = None
    status_after: str | None = None


class StatementLine(BaseModel):
    contract_id: str
    label: str
    start: date
    end: date
    days: int
    monthly_price: str
    amount: str
    currency: str


class StatementOut(BaseModel):
    month: str
    days_in_month: int
    lines: list[StatementLine]
    totals: dict[str, str]


class Problem(BaseModel):
    detail: str
    field: str | None = None


#: what ContractOut takes from a ContractView as it is (customer and usage nest the rest)
_AS_VIEWED = ("contract_id", "status", "label", "next_label", "last_upload_at", "delete_on")


def contract_out(v: ContractView) -> dict[str, object]:
    out: dict[str, object] = {name: getattr(v, name) for name in _AS_VIEWED}
    out["customer"] = {"id": v.customer_id, "email": v.email}
    out["usage"] = {"capacity_bytes": v.capacity_bytes, "committed_bytes": v.committed_bytes}
    return out
