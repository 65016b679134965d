"""`customer set-fiscal` refuses what the SAT would reject, and changes nothing when it does."""

from __future__ import annotations

import uuid

import pytest

from billing import catalog
from billing.core.db import make_engine, session_scope
from billing.core.errors import InvalidInput
from billing.core.models import Customer
from billing.invoicing import catalogs


def _customer(db_url: str) -> tuple[object, int]:
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        dist = catalog.add_distributor(
            s, name="d", email=f"d-{uuid.uuid4().hex[:8]}@x.mx", actor="test"
        )
        cust = catalog.add_customer(
            s, distributor_id=dist.id, email=f"c-{uuid.uuid4().hex[:8]}@x.mx", actor="test"
        )  # type: ignore[arg-type]
        return engine, cust.id  # type: ignore[return-value]


@pytest.mark.parametrize(
    ("rfc", "regime", "use", "error"),
    [
        ("URE180429TM6", "601", "D01", "not for a persona moral"),  # D01 is personal
        ("URE180429TM6", "612", "G03", "régimen 612 is not for a persona moral"),
        ("XIQB891116QE4", "601", "G03", "régimen 601 is not for a persona física"),
        ("XIQB891116QE4", "605", "G03", "not allowed with régimen 605"),  # wages: no G03
        ("XIQB891116QE4", "616", "G01", "not allowed with régimen 616"),
        ("XIQB891116QE4", "612", "CN01", "not one the SAT allows on a sale"),
        ("XIQB891116QE4", "699", "G03", "not in the SAT's c_RegimenFiscal"),
        ("XAXX010101000", "616", "S01", "generic RFC"),
        ("URE18042", "601", "G03", "not a valid RFC"),
        ("URE181329TM6", "601", "G03", "not a valid RFC"),  # month 13
    ],
)
def test_incompatible_receivers_are_refused_and_nothing_changes(
    db_url: str, rfc: str, regime: str, use: str, error: str
) -> None:
    engine, cid = _customer(db_url)
    with session_scope(engine) as s:  # type: ignore[arg-type]
        catalog.set_customer_fiscal(
            s, cid, actor="t", rfc="URE180429TM6", name="URE", regime="601", cfdi_use="G01"
        )
    with pytest.raises(InvalidInput) as exc, session_scope(engine) as s:  # type: ignore[arg-type]
        catalog.set_customer_fiscal(
            s, cid, actor="t", rfc=rfc, regime=regime, cfdi_use=use, postal_code="86991"
        )
    assert error in str(exc.value) and "\n" not in str(exc.value)
    with session_scope(engine) as s:  # type: ignore[arg-type]
        cust = s.get(Customer, cid)
        assert cust is not None
        assert (cust.tax_id, cust.tax_regime, cust.cfdi_use, cust.postal_code) == (
            "URE180429TM6",
            "601",
            "G01",
            None,
        )


def test_uso_defaults_from_the_regime_not_to_g03(db_url: str) -> None:
    engine, cid = _customer(db_url)
    with session_scope(engine) as s:  # type: ignore[arg-type]
        cust = catalog.set_customer_fiscal(
            s, cid, actor="t", rfc="XIQB891116QE4", name="X", regime="605", postal_code="86991"
        )
        assert cust.cfdi_use == "S01"  # wages (605) cannot deduct G03
        cust = catalog.set_customer_fiscal(s, cid, actor="t", regime="612", cfdi_use="G03")
        assert cust.cfdi_use == "G03"
        cust = catalog.set_customer_fiscal(s, cid, actor="t", regime="605")
        assert cust.cfdi_use == "S01"  # a régimen change re-derives an uso it invalidated
        with pytest.raises(InvalidInput, match="postal code"):
            catalog.set_customer_fiscal(s, cid, actor="t", postal_code="8699")


@pytest.mark.unit
def test_payment_form_table() -> None:
    assert catalogs.payment_form("credit_card", {}, "31") == "04"
    assert catalogs.payment_form("debit_card", {}, "31") == "28"
    assert catalogs.payment_form("account_money", {}, "31") == "06"
    assert catalogs.payment_form("account_money", {"account_money": "31"}, "31") == "31"
    assert catalogs.payment_form(None, {}, "31") == "31"
