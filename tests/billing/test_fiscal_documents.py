"""The global invoice, a customer's own invoice out of it, cancellation and credit notes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from satcfdi.catalogs import catalog_code
from sqlmodel import select

from billing.core.db import session_scope
from billing.core.errors import InvalidInput, StorageUnavailable
from billing.core.models import Charge, Invoice, InvoiceLine
from billing.invoicing.cfdi import load_signer
from billing.invoicing.credits import cancel
from billing.invoicing.globals import period_of
from billing.invoicing.invoices import issue_pending, orders, request_own
from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.billing import Clock, authorize, subscribe
from tests.support.cfdi import (
    NS,
    FailingPac,
    give_fiscal,
    hung_finkok,
    pdf_text,
    seal_verifies,
    xsd,
)
from tests.support.stack import DeviceLogin, Stack, fiscal

DECEMBER = datetime(2026, 12, 2, 18, tzinfo=UTC)  # November's sales are closed
JANUARY = datetime(2027, 1, 5, 18, tzinfo=UTC)
DOWN = FailingPac(StorageUnavailable, "the PAC is unreachable: connection refused")


def sale(stack: Stack, emu: MercadoPagoEmulator, payment: str) -> tuple[DeviceLogin, Charge]:
    """A customer without fiscal data whose November charge was approved."""
    clock = Clock(stack, emu)
    dev = stack.device(capacity="1GB", grant=False)
    sub = subscribe(stack, clock, dev)
    authorize(stack, emu, sub)
    clock.run()
    with session_scope(stack.engine) as s:
        charge = s.exec(select(Charge).where(Charge.subscription_id == sub.id)).one()
        charge.payment_type_id = payment
        s.add(charge)
        s.flush()
        s.expunge(charge)
    return dev, charge


def document_of(stack: Stack, charge_id: int, kind: str) -> Invoice:
    with session_scope(stack.engine) as s:
        if kind == "I":
            return s.exec(select(Invoice).where(Invoice.charge_id == charge_id)).one()
        return s.exec(
            select(Invoice)
            .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)  # type: ignore[arg-type]
            .where(InvoiceLine.charge_id == charge_id, Invoice.kind == kind)
        ).one()


def own_invoice(stack: Stack, charge_id: int, now: datetime | None = None) -> int:
    """The customer's own invoice for the charge, asked of the stack's PAC: its id."""
    return request_own(stack.invoicing(), charge_id, now=now)


def checked(stack: Stack, inv: Invoice, certs: Path) -> etree._Element:
    assert inv.status == "issued" and inv.xml_key, inv.last_error
    xml = stack.store.get_document(inv.xml_key)
    doc = etree.fromstring(xml)
    assert xsd().validate(doc), xsd().error_log
    assert seal_verifies(xml, certs / "csd.cer")
    return doc


def test_sales_without_fiscal_data_go_into_the_global_invoice(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path, tmp_path: Path
) -> None:
    _, card = sale(istack, mp_emulator, "credit_card")
    _, wallet = sale(istack, mp_emulator, "account_money")
    asker, own = sale(istack, mp_emulator, "debit_card")
    early = issue_pending(istack.invoicing(), now=datetime(2026, 11, 25, tzinfo=UTC))
    with session_scope(istack.engine) as s:  # November is open: no per-charge CFDI, no global
        for c in (card, wallet, own):
            assert s.exec(select(Invoice).where(Invoice.charge_id == c.id)).first() is None
            assert s.exec(select(InvoiceLine).where(InvoiceLine.charge_id == c.id)).first() is None
    assert early.failed == []
    # the third customer asks for their own invoice within the month: it leaves the global
    with pytest.raises(InvalidInput, match="no fiscal data"):
        own_invoice(istack, own.id)  # type: ignore[arg-type]
    give_fiscal(istack, asker.customer_id)
    mine = own_invoice(istack, own.id, datetime(2026, 11, 26, tzinfo=UTC))  # type: ignore[arg-type]
    report = issue_pending(istack.invoicing(), now=DECEMBER)
    assert report.failed == []
    glob = document_of(istack, card.id, "G")  # type: ignore[arg-type]
    assert document_of(istack, wallet.id, "G").id == glob.id  # type: ignore[arg-type]
    doc = checked(istack, glob, certs)
    info = doc.find("c:InformacionGlobal", NS)
    assert (info.get("Periodicidad"), info.get("Meses"), info.get("Año")) == ("04", "11", "2026")
    receptor = doc.find("c:Receptor", NS)
    assert dict(receptor.attrib) == {
        "Rfc": "XAXX010101000",
        "Nombre": "PUBLICO EN GENERAL",
        "DomicilioFiscalReceptor": doc.get("LugarExpedicion"),
        "RegimenFiscalReceptor": "616",
        "UsoCFDI": "S01",
    }
    concepts = {c.get("NoIdentificacion"): c for c in doc.find("c:Conceptos", NS)}
    assert str(own.id) not in concepts  # it has its own invoice
    for c in (card, wallet):
        line = concepts[str(c.id)]
        assert (
            line.get("ClaveProdServ"),
            line.get("ClaveUnidad"),
            line.get("Descripcion"),
            line.get("Cantidad"),
        ) == ("01010101", "ACT", "Venta", "1")
    assert Decimal(doc.get("Total")) == glob.total
    assert (doc.get("TipoDeComprobante"), doc.get("MetodoPago")) == ("I", "PUE")
    text = pdf_text(istack.store.get_document(glob.pdf_key), tmp_path)  # type: ignore[arg-type]
    form = catalog_code(
        "C756_c_FormaPago", doc.get("FormaPago")
    )  # Code("04", "Tarjeta de crédito")
    for needle in (
        "EKU9003173C9",
        "XAXX010101000",
        "Venta",
        doc.get("Total"),
        form.description,
    ):
        assert needle in text, needle
    ingreso = checked(istack, document_of(istack, own.id, "I"), certs)  # type: ignore[arg-type]
    assert document_of(istack, own.id, "I").id == mine  # type: ignore[arg-type]
    assert ingreso.find("c:Receptor", NS).get("Rfc") == "URE180429TM6"
    assert ingreso.find("c:InformacionGlobal", NS) is None
    assert ingreso.get("FormaPago") == "28"  # debit card
    again = issue_pending(istack.invoicing(), now=DECEMBER)
    assert again.issued == []  # a sale is in one document, once


def test_cancellation_request_names_uuid_reason_and_substitute(
    istack: Stack, mp_emulator: MercadoPagoEmulator
) -> None:
    dev, charge = sale(istack, mp_emulator, "credit_card")
    give_fiscal(istack, dev.customer_id)
    first = own_invoice(istack, charge.id)  # type: ignore[arg-type]
    inv = document_of(istack, charge.id, "I")  # type: ignore[arg-type]
    substitute = "7F1D3C1E-8A53-4D0E-9C44-2F0C8B9A7D10"
    for reason, other, error in (
        ("05", None, "one of 01, 02, 03, 04"),
        ("01", None, "needs --substitute"),
        ("02", substitute, "only for --reason 01"),
        ("01", "not-a-uuid", "is not a UUID"),
        ("01", inv.uuid, "names the invoice being cancelled"),
    ):
        with pytest.raises(InvalidInput, match=error):
            cancel(istack.invoicing(), first, reason, other)
    assert istack.pac.cancellations == []  # type: ignore[attr-defined]
    cancel(istack.invoicing(), first, "01", substitute)
    (sent,) = istack.pac.cancellations  # type: ignore[attr-defined]
    root = etree.fromstring(sent)
    sat = {"s": "http://cancelacfd.sat.gob.mx", "d": "http://www.w3.org/2000/09/xmldsig#"}
    assert root.tag == "{http://cancelacfd.sat.gob.mx}Cancelacion"
    assert root.get("RfcEmisor") == "EKU9003173C9"
    (folio,) = root.findall("s:Folios/s:Folio", sat)
    assert dict(folio.attrib) == {"UUID": inv.uuid, "Motivo": "01", "FolioSustitucion": substitute}
    assert root.find("d:Signature/d:SignatureValue", sat).text  # signed with the CSD
    with session_scope(istack.engine) as s:
        done = s.get(Invoice, first)
        assert done is not None and (done.status, done.cancel_reason) == ("cancelled", "01")
        assert done.substitute_uuid == substitute
    with pytest.raises(InvalidInput, match="cancelled"):
        cancel(istack.invoicing(), first, "02")


def refund(stack: Stack, charge_id: int, status: str) -> None:
    with session_scope(stack.engine) as s:
        charge = s.get(Charge, charge_id)
        assert charge is not None
        charge.status = status  # what billing/payments/sync.py records
        s.add(charge)


def test_a_refund_cancels_this_months_invoice_and_credits_an_older_one(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path, tmp_path: Path
) -> None:
    dev, recent = sale(istack, mp_emulator, "credit_card")
    _, public = sale(istack, mp_emulator, "credit_card")
    give_fiscal(istack, dev.customer_id)
    november = datetime(2026, 11, 23, tzinfo=UTC)
    pac, parts = istack.pac, istack.invoicing()
    request_own(parts, recent.id, now=november)  # type: ignore[arg-type]
    issue_pending(parts, now=DECEMBER)  # the global
    refund(istack, recent.id, "refunded")  # type: ignore[arg-type]
    refund(istack, public.id, "charged_back")  # type: ignore[arg-type]
    report = issue_pending(parts, now=JANUARY)
    assert report.failed == [] and report.refunds["cancelled"] == []
    # recent was invoiced in November and refunded in January: an egreso, not a cancellation
    original = document_of(istack, recent.id, "I")  # type: ignore[arg-type]
    assert original.status == "issued"
    note = document_of(istack, recent.id, "E")  # type: ignore[arg-type]
    doc = checked(istack, note, certs)
    assert doc.get("TipoDeComprobante") == "E" and doc.get("Total") == str(recent.amount)
    rel = doc.find("c:CfdiRelacionados", NS)
    assert rel.get("TipoRelacion") == "01"
    assert rel.find("c:CfdiRelacionado", NS).get("UUID") == original.uuid
    assert doc.find("c:Receptor", NS).get("UsoCFDI") == "G02"
    text = pdf_text(istack.store.get_document(note.pdf_key), tmp_path)  # type: ignore[arg-type]
    for needle in (
        "EKU9003173C9",
        "URE180429TM6",
        "Devolución",
        str(recent.amount),
        "Tarjeta de crédito",
    ):
        assert needle in text, needle
    # a sale in a global invoice: an egreso to público en general, related to the global
    glob = document_of(istack, public.id, "G")  # type: ignore[arg-type]
    credit = checked(istack, document_of(istack, public.id, "E"), certs)  # type: ignore[arg-type]
    assert credit.find("c:CfdiRelacionados/c:CfdiRelacionado", NS).get("UUID") == glob.uuid
    assert credit.find("c:Receptor", NS).get("Rfc") == "XAXX010101000"
    assert credit.find("c:InformacionGlobal", NS).get("Meses") == "11"
    with session_scope(istack.engine) as s:
        rows = {r["order"]: r for r in orders(s, dev.customer_id)}
    assert rows[recent.id]["invoice"] == original.id and rows[recent.id]["credit_note"] == note.id
    # the same month, under $1,000: the invoice is cancelled (motivo 03) instead
    dev2, fresh = sale(istack, mp_emulator, "credit_card")
    give_fiscal(istack, dev2.customer_id)
    request_own(parts, fresh.id, now=JANUARY)  # type: ignore[arg-type]
    refund(istack, fresh.id, "refunded")  # type: ignore[arg-type]
    again = issue_pending(parts, now=JANUARY)
    assert again.failed == [] and again.refunds["credit_notes"] == []
    cancelled = document_of(istack, fresh.id, "I")  # type: ignore[arg-type]
    assert (cancelled.status, cancelled.cancel_reason) == ("cancelled", "03")
    sent = etree.fromstring(pac.cancellations[-1])  # type: ignore[attr-defined]
    assert sent.find(".//{http://cancelacfd.sat.gob.mx}Folio").get("Motivo") == "03"
    with session_scope(istack.engine) as s:
        assert s.exec(select(Invoice).where(Invoice.doc_key == f"E:{fresh.id}")).first() is None


def test_request_and_cancel_from_the_cli(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path
) -> None:
    import json
    import os
    import subprocess
    import sys

    dev, charge = sale(istack, mp_emulator, "credit_card")
    give_fiscal(istack, dev.customer_id)
    st = istack.settings
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": st.database_url,
        "CAM2DRIVE_S3_ENDPOINT_URL": st.s3_endpoint_url or "",
        "CAM2DRIVE_S3_BUCKET": st.s3_bucket,
        **{f"CAM2DRIVE_{k.upper()}": str(v) for k, v in fiscal(certs).items()},
    }
    bin_ = str(Path(sys.executable).parent / "cam2drive")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([bin_, *args], capture_output=True, text=True, env=env, timeout=120)

    asked = cli("invoice", "request", str(charge.id), "--json")
    assert asked.returncode == 0, asked.stderr
    invoice_id = json.loads(asked.stdout)["invoice"]
    for args, text in (
        (("invoice", "request", "999999"), "does not exist"),
        (("invoice", "cancel", str(invoice_id), "--reason", "07"), "one of 01, 02, 03, 04"),
        (("invoice", "cancel", str(invoice_id), "--reason", "01"), "needs --substitute"),
        (("invoice", "cancel", "999999", "--reason", "02"), "does not exist"),
    ):
        bad = cli(*args)
        assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and text in bad.stderr, (
            bad.stderr
        )
    done = cli("invoice", "cancel", str(invoice_id), "--reason", "02", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "cancelled"
    listed = json.loads(cli("orders", "list", "--customer", str(dev.customer_id), "--json").stdout)
    assert [(r["invoice"], r["invoice_status"]) for r in listed] == [(invoice_id, "cancelled")]


@pytest.mark.parametrize(
    ("day", "periodicity", "key", "last"),
    [
        (date(2026, 11, 22), "01", "2026-11-22", date(2026, 11, 22)),
        (date(2026, 11, 22), "02", "2026-11-W16", date(2026, 11, 22)),  # Mon 16 - Sun 22
        (date(2026, 12, 2), "02", "2026-12-W01", date(2026, 12, 6)),  # cut at the 1st
        (date(2026, 11, 30), "02", "2026-11-W30", date(2026, 11, 30)),  # cut at the 30th
        (date(2026, 2, 14), "04", "2026-02", date(2026, 2, 28)),
    ],
)
def test_a_global_period_never_spans_two_months(
    day: date, periodicity: str, key: str, last: date
) -> None:
    period = period_of(day, periodicity)
    assert (period.key, period.last) == (key, last)
    assert period.first.month == period.last.month == day.month
    assert (period.info.periodicity, period.info.months) == (periodicity, f"{day.month:02d}")


def test_a_hung_pac_bounds_a_cancellation(istack: Stack, certs: Path) -> None:
    from billing.invoicing.credits import cancellation_request
    from billing.invoicing.pac import UNREACHABLE, FinkokPac

    with hung_finkok(istack.settings) as st:
        request = cancellation_request(
            load_signer(st), "6F1D3C1E-8A53-4D0E-9C44-2F0C8B9A7D10", "02", None
        )
        with pytest.raises(StorageUnavailable, match=UNREACHABLE):
            FinkokPac(st).cancel(request)


def test_a_sale_leaves_a_global_that_is_not_stamped_yet(
    istack: Stack, mp_emulator: MercadoPagoEmulator, certs: Path
) -> None:
    stayer, stays = sale(istack, mp_emulator, "credit_card")
    asker, leaves = sale(istack, mp_emulator, "credit_card")
    issue_pending(istack.invoicing(DOWN), now=DECEMBER)
    pending = document_of(istack, leaves.id, "G")  # type: ignore[arg-type]
    assert pending.status == "pending"
    give_fiscal(istack, asker.customer_id)
    own = own_invoice(istack, leaves.id, DECEMBER)  # type: ignore[arg-type]
    assert checked(istack, document_of(istack, leaves.id, "I"), certs) is not None  # type: ignore[arg-type]
    issue_pending(istack.invoicing(), now=DECEMBER)
    glob = document_of(istack, stays.id, "G")  # type: ignore[arg-type]
    doc = checked(istack, glob, certs)
    ids = [c.get("NoIdentificacion") for c in doc.find("c:Conceptos", NS)]
    assert str(stays.id) in ids and str(leaves.id) not in ids
    assert Decimal(doc.get("Total")) == glob.total
    give_fiscal(istack, stayer.customer_id)  # too late: the global is stamped
    with pytest.raises(InvalidInput, match=f"is in invoice {glob.id}"):
        own_invoice(istack, stays.id)  # type: ignore[arg-type]
    assert own != glob.id
