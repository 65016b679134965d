"""The SAT catalogue facts invoicing depends on, in one place.

Source: Anexo 20 of the Resolución Miscelánea Fiscal, CFDI 4.0 catalogues
(catCFDI_V_4, http://omawww.sat.gob.mx/tramitesyservicios/Paginas/anexo_20.htm):
- c_RegimenFiscal, columns "Física" / "Moral": which kind of taxpayer may
  hold each régimen;
- c_UsoCFDI, columns "Aplica para tipo persona Física / Moral" and
  "Régimen Fiscal Receptor": which régimen may receive each uso. The PAC
  rejects a receiver outside it (CFDI40158 / CFDI40161), so `customer
  set-fiscal` refuses the pair before anything is stamped.
- The RFC pattern of Anexo 20 (Receptor@Rfc): three letters for a persona
  moral (12 characters), four for a persona física (13).
satcfdi ships the key/description catalogues but not these compatibility
columns, hence this table. Only the ingreso-relevant usos are listed; the
others (CN01 nómina, CP01 pagos, P01 retired in 4.0) never apply to a sale.
"""

from __future__ import annotations

import re

from billing.core.errors import InvalidInput

#: c_RegimenFiscal: régimen → (persona física allowed, persona moral allowed)
REGIMES: dict[str, tuple[bool, bool]] = {
    "601": (False, True),  # General de Ley Personas Morales
    "603": (False, True),  # Personas Morales con Fines no Lucrativos
    "605": (True, False),  # Sueldos y Salarios
    "606": (True, False),  # Arrendamiento
    "607": (True, False),  # Enajenación o Adquisición de Bienes
    "608": (True, False),  # Demás ingresos
    "610": (True, True),  # Residentes en el Extranjero sin Establecimiento Permanente
    "611": (True, False),  # Ingresos por Dividendos
    "612": (True, False),  # Actividades Empresariales y Profesionales
    "614": (True, False),  # Ingresos por intereses
    "615": (True, False),  # Obtención de premios
    "616": (True, False),  # Sin obligaciones fiscales
    "620": (False, True),  # Sociedades Cooperativas de Producción
    "621": (True, False),  # Incorporación Fiscal
    "622": (False, True),  # Actividades Agrícolas, Ganaderas, Silvícolas y Pesqueras
    "623": (False, True),  # Opcional para Grupos de Sociedades
    "624": (False, True),  # Coordinados
    "625": (True, False),  # Plataformas Tecnológicas
    "626": (True, True),  # Régimen Simplificado de Confianza
}

_BUSINESS = frozenset({"601", "603", "606", "612", "620", "621", "622", "623", "624", "625", "626"})
_PERSONAL = frozenset({"605", "606", "608", "611", "612", "614", "607", "615", "625"})
_ANY = frozenset(
    {"601", "603", "605", "606", "608", "610", "611", "612", "614", "616"}
    | {"620", "621", "622", "623", "624", "607", "615", "625", "626"}
)

#: c_UsoCFDI: uso → (régimenes allowed, persona física allowed, persona moral allowed)
USES: dict[str, tuple[frozenset[str], bool, bool]] = {
    "G01": (_BUSINESS, True, True),  # Adquisición de mercancías
    "G02": (_BUSINESS, True, True),  # Devoluciones, descuentos o bonificaciones
    "G03": (_BUSINESS, True, True),  # Gastos en general
    **{f"I0{n}": (_BUSINESS, True, True) for n in range(1, 9)},  # inversiones
    **{f"D{n:02d}": (_PERSONAL, True, False) for n in range(1, 11)},  # deducciones personales
    "S01": (_ANY, True, True),  # Sin efectos fiscales
}

#: Anexo 20, Receptor@Rfc; the date part is checked further by satcfdi's RFC.
RFC_PATTERN = re.compile(
    r"^[A-ZÑ&]{3,4}[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]$"
)
#: the SAT's generic RFCs: público en general, and foreign residents
GENERIC_RFCS = frozenset({"XAXX010101000", "XEXX010101000"})
POSTAL_PATTERN = re.compile(r"^[0-9]{5}$")


def person_kind(rfc: str) -> str:
    """'moral' for a 12-character RFC, 'física' for 13 (Anexo 20)."""
    return "moral" if len(rfc) == 12 else "física"


def check_receiver(rfc: str, regime: str, use: str) -> None:
    """InvalidInput naming why the SAT would reject this receiver; nothing when it would not."""
    kind = person_kind(rfc)
    allowed = REGIMES.get(regime)
    if allowed is None:
        raise InvalidInput(
            "régimen %(regime)s is not in the SAT's c_RegimenFiscal catalogue", regime=regime
        )
    if not allowed[0 if kind == "física" else 1]:
        raise InvalidInput(
            "régimen %(regime)s is not for a persona %(kind)s (RFC %(rfc)s)",
            regime=regime,
            kind=kind,
            rfc=rfc,
        )
    entry = USES.get(use)
    if entry is None:
        raise InvalidInput(
            "uso CFDI %(use)s is not one the SAT allows on a sale (%(uses)s)",
            use=use,
            uses=", ".join(USES),
        )
    regimes, fisica, moral = entry
    if not (fisica if kind == "física" else moral):
        raise InvalidInput(
            "uso CFDI %(use)s is not for a persona %(kind)s (RFC %(rfc)s)",
            use=use,
            kind=kind,
            rfc=rfc,
        )
    if regime not in regimes:
        raise InvalidInput(
            "uso CFDI %(use)s is not allowed with régimen %(regime)s (SAT c_UsoCFDI); "
            "use one of %(suggested)s",
            use=use,
            regime=regime,
            suggested=", ".join(suggested_uses(rfc, regime)),
        )


def receiver_problem(rfc: str, regime: str, use: str) -> str | None:
    """Why the SAT would reject this receiver, in one line; None when it would not."""
    try:
        check_receiver(rfc, regime, use)
    except InvalidInput as err:
        return str(err)
    return None


def suggested_uses(rfc: str, regime: str) -> list[str]:
    """The usos the SAT accepts for this receiver, G03 first when it is one."""
    kind = person_kind(rfc)
    ok = [
        use
        for use, (regimes, fisica, moral) in USES.items()
        if regime in regimes and (fisica if kind == "física" else moral)
    ]
    return sorted(ok, key=lambda u: (u != "G03", u != "S01", u))


def default_use(rfc: str, regime: str) -> str:
    """The uso a customer gets when they name none: G03 where allowed, else S01."""
    return suggested_uses(rfc, regime)[0]


#: c_FormaPago for Mercado Pago's payment_type_id (its /v1/payments field).
#: Mercado Pago is not the payer's means of payment, the card or the balance
#: is (SAT's FAQ on intermediarios: FormaPago is how the issuer's customer
#: paid). `cfdi_payment_forms` in config overrides or extends this.
PAYMENT_FORMS: dict[str, str] = {
    "credit_card": "04",  # Tarjeta de crédito
    "debit_card": "28",  # Tarjeta de débito
    "prepaid_card": "28",  # a prepaid card is charged like a debit card
    "account_money": "06",  # Dinero electrónico: the Mercado Pago balance
    "bank_transfer": "03",  # Transferencia electrónica de fondos (SPEI)
    "ticket": "01",  # Efectivo (OXXO and other cash points)
    "atm": "01",  # Efectivo
}
#: c_FormaPago keys a PUE invoice may carry (99 "por definir" is for PPD only)
FORMA_PAGO_KEYS = frozenset(
    {f"{n:02d}" for n in (1, 2, 3, 4, 5, 6, 8, 12, 13, 14, 15, 17, 23, 24, 25, 26, 27, 28)}
    | {"29", "30", "31"}
)


def payment_form(payment_type_id: str | None, overrides: dict[str, str], fallback: str) -> str:
    """The c_FormaPago of a payment; `fallback` when Mercado Pago did not say."""
    table = {**PAYMENT_FORMS, **overrides}
    return table.get(payment_type_id or "", fallback)
