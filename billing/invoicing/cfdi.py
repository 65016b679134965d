"""CFDI 4.0 (an ingreso, a global ingreso, an egreso): built, taxed and sealed with satcfdi.

Plan prices include IVA: what Mercado Pago charges is what the payer pays,
so the invoice total must equal the charge to the cent. With a unit value
of two decimals about one amount in seven has no exact pre-tax base (the
total moves in steps of 0.0116), so the unit value carries the six
decimals CFDI 4.0 allows and is nudged by millionths until satcfdi's own
rounding gives back the charged total (on a document of several
concepts, the last one takes the nudge). satcfdi rounds concept amounts to
the currency's two decimals, so `_TaxIncluded` keeps them at six (allowed
for Importe, Base and the concept's tax) and rounds only the document's
totals, as the SAT's validation rules describe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from satcfdi.create.cfd import cfdi40
from satcfdi.models import Signer
from satcfdi.transform import get_timezone

from billing.core.errors import InvoiceError
from billing.core.models import Customer
from billing.core.settings import Settings
from billing.invoicing.catalogs import default_use, payment_form

#: SAT's generic receiver for customers who gave no fiscal data.
PUBLIC_RFC = "XAXX010101000"
PUBLIC_NAME = "PUBLICO EN GENERAL"
MICRO = Decimal("0.000001")
CENT = Decimal("0.01")


class _TaxIncluded(cfdi40.Comprobante):
    """satcfdi's Comprobante with six-decimal concepts and two-decimal totals."""

    def compute(self) -> None:
        from satcfdi.create.cfd.cfdi40 import _make_conceptos
        from satcfdi.create.compute import make_impuestos

        self["Conceptos"] = conceptos = _make_conceptos(self["Conceptos"], decimals=6)
        self["SubTotal"] = sum(c["Importe"] for c in conceptos).quantize(CENT, ROUND_HALF_UP)
        taxes = make_impuestos(conceptos)
        for line in taxes["Traslados"]:
            line["Base"] = line["Base"].quantize(CENT, ROUND_HALF_UP)
            line["Importe"] = line["Importe"].quantize(CENT, ROUND_HALF_UP)
        taxes["TotalImpuestosTrasladados"] = sum(t["Importe"] for t in taxes["Traslados"])
        self["Impuestos"] = taxes
        self["Total"] = self["SubTotal"] + taxes["TotalImpuestosTrasladados"]


@dataclass(frozen=True)
class Receiver:
    rfc: str
    name: str
    postal_code: str
    regime: str
    use: str

    @property
    def is_public(self) -> bool:
        return self.rfc == PUBLIC_RFC


def receiver_for(customer: Customer, settings: Settings) -> Receiver:
    """The customer's own fiscal data when complete, else "público en general"."""
    if customer.tax_id and customer.name and customer.postal_code and customer.tax_regime:
        return Receiver(
            rfc=customer.tax_id.upper(),
            name=customer.name.upper(),
            postal_code=customer.postal_code,
            regime=customer.tax_regime,
            # set-fiscal stores a uso the SAT accepts for this régimen; rows from
            # before that check get the catalogue's default, never a fixed G03
            use=customer.cfdi_use or default_use(customer.tax_id.upper(), customer.tax_regime),
        )
    # SAT rule: the generic RFC takes the issuer's postal code, régimen 616, use S01
    return Receiver(
        rfc=PUBLIC_RFC,
        name=PUBLIC_NAME,
        postal_code=issuer_place(settings),
        regime="616",
        use="S01",
    )


def issuer_place(settings: Settings) -> str:
    """LugarExpedicion: settings refuse a CSD without it, so this only guards misuse."""
    if not settings.cfdi_issuer_postal_code:
        raise InvoiceError("cfdi_issuer_postal_code (LugarExpedicion) is not configured")
    return settings.cfdi_issuer_postal_code


def form_of_payment(payment_type_id: str | None, settings: Settings) -> str:
    """c_FormaPago of a Mercado Pago payment: the documented table plus config."""
    return payment_form(payment_type_id, settings.cfdi_payment_forms, settings.cfdi_payment_form)


def load_signer(settings: Settings) -> Signer:
    """The issuer's CSD from config, with a clear error for each way it can be wrong."""
    cert, key = settings.cfdi_csd_certificate, settings.cfdi_csd_key
    if cert is None or key is None:
        raise InvoiceError("no CSD configured: set cfdi_csd_certificate and cfdi_csd_key")
    return load_signer_files(cert, key, settings.cfdi_csd_password)


def load_signer_files(cert: Path, key: Path, password: str | None) -> Signer:
    try:
        return Signer.load(
            certificate=Path(cert).read_bytes(), key=Path(key).read_bytes(), password=password
        )
    except OSError as exc:
        raise InvoiceError("cannot read CSD file: %(error)s", error=exc) from exc
    except Exception as exc:  # cryptography's errors for a wrong password or a bad file
        raise InvoiceError("cannot load the CSD %(cert)s: %(error)s", cert=cert, error=exc) from exc


@dataclass(frozen=True)
class Line:
    """One concept: an amount with tax included, and the SAT keys it is sold under."""

    description: str
    amount: Decimal
    product_code: str
    unit_code: str
    identifier: str | None = None  # NoIdentificacion: our charge id on a global's concepts


@dataclass(frozen=True)
class GlobalInfo:
    """InformacionGlobal: c_Periodicidad, c_Meses and the year of the sales covered."""

    periodicity: str
    months: str
    year: int


def build(
    signer: Signer,
    settings: Settings,
    receiver: Receiver,
    *,
    concept: str,
    amount: Decimal,
    currency: str,
    when: datetime,
    folio: str,
    payment_form: str | None = None,
) -> cfdi40.Comprobante:
    """A sealed ingreso for one charge whose total is exactly `amount` (tax included).

    `payment_form` is the c_FormaPago of the payment (`form_of_payment`);
    MetodoPago is PUE: every charge is paid in full when it is approved.
    """
    if currency != "MXN":
        raise InvoiceError(
            "CFDI invoices are issued in MXN; this charge is in %(currency)s", currency=currency
        )
    line = Line(concept, amount, settings.cfdi_product_code, settings.cfdi_unit_code)
    return build_document(
        signer, settings, receiver, [line], when=when, folio=folio, payment_form=payment_form
    )


def build_document(
    signer: Signer,
    settings: Settings,
    receiver: Receiver,
    lines: list[Line],
    *,
    when: datetime,
    folio: str,
    payment_form: str | None = None,
    kind: str = "I",
    related_uuid: str | None = None,
    global_info: GlobalInfo | None = None,
) -> cfdi40.Comprobante:
    """A sealed CFDI (ingreso "I" or egreso "E") whose total is the lines' sum to the cent.

    An egreso names the invoice it credits (CfdiRelacionados, TipoRelacion 01
    "Nota de crédito de los documentos relacionados"). A receiver "público
    en general" needs InformacionGlobal (CFDI40 validation of Receptor): a
    global passes its period; otherwise the month of `when`, monthly.
    """
    if not lines:
        raise InvoiceError("a CFDI needs at least one concept")
    rate = Decimal(settings.cfdi_tax_rate)
    place = issuer_place(settings)
    try:
        local = when.astimezone(get_timezone(place)).replace(tzinfo=None, microsecond=0)
    except Exception as exc:
        raise InvoiceError("unknown issuer postal code %(place)r", place=place) from exc
    if receiver.is_public and global_info is None:
        global_info = GlobalInfo("04", f"{local.month:02d}", local.year)
    total = sum((line.amount for line in lines), Decimal(0))
    bases = [(line.amount / (1 + rate)).quantize(MICRO, ROUND_HALF_UP) for line in lines]
    for nudge in (0, 1, -1, 2, -2, 3, -3):
        # the last concept absorbs the millionths that make the rounded total exact
        values = [*bases[:-1], bases[-1] + nudge * MICRO]
        doc = _TaxIncluded(
            emisor=cfdi40.Emisor(
                rfc=str(signer.rfc),
                nombre=settings.cfdi_issuer_name or signer.legal_name or "",
                regimen_fiscal=settings.cfdi_issuer_regime,
            ),
            lugar_expedicion=place,
            receptor=cfdi40.Receptor(
                rfc=receiver.rfc,
                nombre=receiver.name,
                domicilio_fiscal_receptor=receiver.postal_code,
                regimen_fiscal_receptor=receiver.regime,
                uso_cfdi=receiver.use,
            ),
            informacion_global=cfdi40.InformacionGlobal(
                periodicidad=global_info.periodicity,
                meses=global_info.months,
                ano=global_info.year,
            )
            if global_info is not None
            else None,
            cfdi_relacionados=cfdi40.CfdiRelacionados(
                tipo_relacion="01", cfdi_relacionado=related_uuid
            )
            if related_uuid
            else None,
            conceptos=[
                cfdi40.Concepto(
                    clave_prod_serv=line.product_code,
                    no_identificacion=line.identifier,
                    cantidad=1,
                    clave_unidad=line.unit_code,
                    descripcion=line.description,
                    valor_unitario=value,
                    objeto_imp="02",
                    impuestos=cfdi40.Impuestos(
                        traslados=cfdi40.Traslado(
                            impuesto="002", tipo_factor="Tasa", tasa_o_cuota=rate
                        )
                    ),
                )
                for line, value in zip(lines, values, strict=True)
            ],
            moneda="MXN",
            serie=settings.cfdi_serie,
            folio=folio,
            forma_pago=payment_form or settings.cfdi_payment_form,
            metodo_pago="PUE",
            tipo_de_comprobante=kind,
            fecha=local,
        )
        if doc["Total"] == total:
            doc.sign(signer)
            return doc
    raise InvoiceError("no CFDI base gives a total of exactly %(total)s", total=total)
