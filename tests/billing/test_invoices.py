"""CFDI invoices of real charges: built with satcfdi, stamped, rendered, stored, listed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.errors import InvoiceError, StorageUnavailable
from billing.core.models import Invoice
from billing.invoicing.invoices import issue_pending
from billing.invoicing.parts import Invoicing
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import Clock, authorize, subscribe
from tests.support.cfdi import FailingPac, give_fiscal, hung_finkok, pdf_text, seal_verifies, xsd
from tests.support.stack import DeviceLogin, Stack, fiscal

BIN = str(Path(sys.executable).parent / "cam2drive")
# refuses every CFDI, as Finkok does a bad receiver
REFUSING = FailingPac(InvoiceError, "the PAC refused the CFDI: CFDI40158")


def paid_device(
    stack: Stack, clock: Clock, emu: MercadoPagoEmulator, own: bool = True
) -> tuple[DeviceLogin, int]:
    """A device with an approved charge; `own`: its customer gave fiscal data."""
    dev = stack.device(capacity="1GB", grant=False)
    sub = subscribe(stack, clock, dev)
    authorize(stack, emu, sub)
    clock.run()
    if own:
        give_fiscal(stack, dev.customer_id)
    return dev, sub.id  # type: ignore[return-value]


def test_invoice_of_a_charge_to_a_customer_with_fiscal_data(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path, tmp_path: Path
) -> None:
    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)  # fiscal data given, paid by credit card
    report = issue_pending(istack.invoicing())
    assert report.failed == []
    with session_scope(istack.engine) as s:  # the databases hold other tests' charges too
        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
        assert inv.id in report.issued
        assert inv.status == "issued" and inv.total == Decimal("4.33")
        assert inv.xml_key and inv.xml_key.startswith("invoices/") and inv.uuid
    xml = istack.store.get_document(inv.xml_key)
    doc = etree.fromstring(xml)
    assert xsd().validate(doc), xsd().error_log
    assert seal_verifies(xml, certs / "csd.cer")
    ns = {"c": "http://www.sat.gob.mx/cfd/4", "t": "http://www.sat.gob.mx/TimbreFiscalDigital"}
    assert doc.get("Total") == "4.33" and doc.get("Moneda") == "MXN"
    assert (doc.get("FormaPago"), doc.get("MetodoPago")) == ("04", "PUE")  # credit card
    assert doc.find("c:Receptor", ns).get("Rfc") == "URE180429TM6"
    assert doc.find("c:Emisor", ns).get("Rfc") == "EKU9003173C9"
    tfd = doc.find("c:Complemento/t:TimbreFiscalDigital", ns)
    assert tfd.get("UUID") == inv.uuid and tfd.get("SelloCFD") == doc.get("Sello")
    text = pdf_text(istack.store.get_document(inv.pdf_key), tmp_path)  # type: ignore[arg-type]
    for needle in (
        "EKU9003173C9",
        "URE180429TM6",
        "almacenamiento en la nube",
        "4.33",
        "Tarjeta de crédito",
        inv.uuid,
    ):
        assert needle in text, needle
    flat = re.sub(r"[\s\u200b]", "", text)  # the seals wrap at any character
    for seal in (tfd.get("SelloCFD"), tfd.get("SelloSAT")):
        assert seal in flat, "a seal is cut off in the PDF"
    again = issue_pending(istack.invoicing())
    assert again.issued == [] and again.failed == []  # once per charge


@pytest.mark.parametrize("amount", ["299.00", "1.49", "1.63", "86.23", "12345.67"])
def test_total_is_exactly_the_charge(certs: Path, amount: str) -> None:
    """Prices include IVA; amounts with no exact 2-decimal base still invoice exactly."""
    from datetime import UTC, datetime

    from billing.core.models import Customer
    from billing.core.settings import Settings
    from billing.invoicing.cfdi import build, load_signer, receiver_for

    st = Settings(**fiscal(certs))  # type: ignore[arg-type]
    doc = build(
        load_signer(st),
        st,
        receiver_for(Customer(distributor_id=1, email="a@b.mx"), st),
        concept="x",
        amount=Decimal(amount),
        currency="MXN",
        when=datetime(2026, 11, 22, 18, tzinfo=UTC),
        folio="1",
    )
    xml = doc.xml_bytes()
    root = etree.fromstring(xml)
    assert root.get("Total") == amount
    assert root.find("{http://www.sat.gob.mx/cfd/4}InformacionGlobal") is not None
    assert xsd().validate(root), xsd().error_log
    assert seal_verifies(xml, certs / "csd.cer")


class LostAnswer:
    """A PAC that stamps and then loses the answer, as a timeout would."""

    def __init__(self, inner) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.uuids = inner, []

    def stamp(self, cfdi):  # type: ignore[no-untyped-def]
        stamped = self.inner.stamp(cfdi)
        self.uuids.append(stamped["Complemento"]["TimbreFiscalDigital"]["UUID"])
        raise StorageUnavailable("the PAC did not answer in time")


def test_a_lost_pac_answer_is_retried_into_the_same_invoice(
    istack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)
    lost = LostAnswer(istack.pac)
    first = issue_pending(istack.invoicing(lost))
    assert first.issued == [] and "did not answer" in first.failed[0]["error"]
    with session_scope(istack.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
        assert inv.status == "pending" and inv.attempts == 1
    second = issue_pending(istack.invoicing())
    assert inv.id in second.issued
    with session_scope(istack.engine) as s:
        done = s.get(Invoice, inv.id)
        assert done is not None and done.uuid == lost.uuids[0]  # the same fiscal document


def test_orders_and_invoice_files_from_the_cli(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path, tmp_path: Path
) -> None:
    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)
    issue_pending(istack.invoicing())
    st = istack.settings
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": st.database_url,
        "CAM2DRIVE_S3_ENDPOINT_URL": st.s3_endpoint_url or "",
        "CAM2DRIVE_S3_BUCKET": st.s3_bucket,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120)

    listed = cli("orders", "list", "--customer", str(dev.customer_id), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["amount"], r["status"]) for r in rows] == [("4.33", "approved")]
    assert rows[0]["invoice"] and "almacenamiento" in rows[0]["concept"]
    got = cli("invoice", "get", str(rows[0]["invoice"]), "--xml", "-o", str(tmp_path / "f.xml"))
    assert got.returncode == 0, got.stderr
    assert xsd().validate(etree.parse(str(tmp_path / "f.xml")))
    got = cli("invoice", "get", str(rows[0]["invoice"]), "--pdf", "-o", str(tmp_path / "f.pdf"))
    assert got.returncode == 0 and (tmp_path / "f.pdf").read_bytes().startswith(b"%PDF")
    for args, text in (
        (("invoice", "get", "999999", "--xml", "-o", "x"), "does not exist"),
        (("invoice", "get", "1", "-o", "x"), "exactly one of --xml"),
        (("orders", "list", "--customer", "nobody@x.mx"), "does not exist"),
        (("customer", "set-fiscal", str(dev.customer_id), "--rfc", "NOPE"), "not a valid RFC"),
    ):
        bad = cli(*args)
        assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and text in bad.stderr, (
            bad.stderr
        )


def test_an_invoice_unstamped_for_72_hours_is_redated_and_resealed(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path
) -> None:
    from datetime import timedelta

    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)
    issue_pending(istack.invoicing(LostAnswer(istack.pac)))
    with session_scope(istack.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
        first = inv.issued_on
    later = first + timedelta(hours=73)  # time travel: the PAC was down three days
    report = issue_pending(istack.invoicing(), now=later)
    assert inv.id in report.issued
    with session_scope(istack.engine) as s:
        done = s.get(Invoice, inv.id)
        assert done is not None and done.issued_on != first
    xml = istack.store.get_document(done.xml_key)  # type: ignore[arg-type]
    doc = etree.fromstring(xml)
    assert (
        doc.get("Fecha")[:10]
        == later.astimezone(__import__("zoneinfo").ZoneInfo("America/Mexico_City"))
        .date()
        .isoformat()
    )
    assert xsd().validate(doc) and seal_verifies(xml, certs / "csd.cer")


def test_a_refused_invoice_alerts_and_stops_being_retried(
    istack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from billing.core.models import AuditEvent

    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)
    tries = istack.settings.invoice_max_attempts
    for _ in range(tries):
        issue_pending(istack.invoicing(REFUSING))
    with session_scope(istack.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
        assert inv.status == "failed" and inv.attempts == tries
        actions = [
            e.action
            for e in s.exec(
                select(AuditEvent).where(
                    AuditEvent.entity == "invoice", AuditEvent.entity_id == str(inv.id)
                )
            )
        ]
        assert actions.count("refused") == tries - 1 and actions[-1] == "failed"
    again = issue_pending(istack.invoicing(REFUSING))
    assert all(f["invoice"] != inv.id for f in again.failed)  # not retried forever


def test_a_hung_pac_does_not_stop_a_billing_pass(
    istack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    from billing.invoicing.pac import UNREACHABLE, FinkokPac

    clock = Clock(istack, mp_emulator)
    dev, _ = paid_device(istack, clock, mp_emulator)
    with hung_finkok(istack.settings) as st:
        report = issue_pending(Invoicing(istack.engine, istack.store, st, FinkokPac(st)))
    assert report.failed and all(f["error"].startswith(UNREACHABLE) for f in report.failed)
    with session_scope(istack.engine) as s:
        inv = s.exec(select(Invoice).where(Invoice.customer_id == dev.customer_id)).one()
        assert inv.status == "pending"  # retried next pass, asking for a stamp first
