"""Stamping (timbrado): a PAC turns a sealed CFDI into a valid one.

One small interface. Production has one driver, `finkok`, through
satcfdi's client. The `local` test PAC lives in cli/devstack/testpac.py,
for tests and `make run` only: the composition root builds it, and
settings refuse it beside a SAT-issued CSD (billing/core/settings.py). A
retried stamp of the same sealed CFDI must not give a second fiscal
document: the Finkok driver asks for the earlier stamp when Finkok says the
CFDI was stamped before.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any, Protocol

from satcfdi.cfdi import CFDI
from satcfdi.create.cancela.cancelacion import Cancelacion
from satcfdi.models import Certificate

from billing.core.errors import InvoiceError, StorageUnavailable
from billing.core.settings import Settings

#: how a failed call that may have reached the PAC starts (a timeout, a lost answer)
UNREACHABLE = "the PAC is unreachable"


class Pac(Protocol):
    def stamp(self, cfdi: CFDI) -> CFDI:
        """The CFDI with its TimbreFiscalDigital; InvoiceError if refused,
        StorageUnavailable if the PAC could not be reached (retry later)."""
        ...

    def cancel(self, request: Cancelacion) -> str:
        """Send the SAT a signed cancellation (billing/invoicing/credits.py);
        the PAC's status code, InvoiceError if refused."""
        ...


def seal_verifies(cfdi: CFDI) -> bool:
    """Does the CFDI's Sello verify against the certificate it carries?"""
    cert = Certificate.load_certificate(base64.b64decode(cfdi["Certificado"]))
    return cert.verify_sha256(cfdi.cadena_original().encode(), base64.b64decode(cfdi["Sello"]))


class FinkokPac:
    """Finkok through satcfdi (https://www.finkok.com), test or production endpoint."""

    def __init__(self, settings: Settings) -> None:
        from satcfdi.pacs import Environment
        from satcfdi.pacs.finkok import Finkok

        if not (settings.pac_username and settings.pac_password):
            raise InvoiceError("pac = finkok needs pac_username and pac_password")
        env = Environment.PRODUCTION if settings.pac_production else Environment.TEST
        timeouts = (settings.pac_connect_timeout, settings.pac_read_timeout)
        url = settings.pac_url

        class _Bounded(Finkok):
            """satcfdi's Finkok posts with no timeout: a hung PAC would hang the pass."""

            @property
            def host(self) -> str:
                return url.rstrip("/") if url else super().host

            def _perform_request(self, url: str, envelope: Any) -> Any:
                import requests
                from lxml import etree

                response = requests.post(url=url, data=etree.tostring(envelope), timeout=timeouts)
                return etree.fromstring(response.content)

        self.client = _Bounded(settings.pac_username, settings.pac_password, environment=env)

    def stamp(self, cfdi: CFDI) -> CFDI:
        try:
            doc = _ask(lambda: self.client.stamp(cfdi), "the PAC refused the CFDI: %(error)s")
        except InvoiceError as refused:
            try:  # stamped before (a retry after a lost answer): fetch that stamp
                doc = self.client.stamped(cfdi)
            except Exception:
                raise refused  # its cause is the PAC's own refusal
        return CFDI.from_string(doc.xml)

    def cancel(self, request: Cancelacion) -> str:
        ack = _ask(
            lambda: self.client.cancel_comprobante(request),
            "the PAC refused the cancellation: %(error)s",
        )
        return str(ack.code)

    def stamped(self, cfdi: CFDI) -> CFDI | None:
        """The PAC's earlier stamp of this sealed CFDI, None if it has none."""
        try:
            doc = _ask(lambda: self.client.stamped(cfdi), "no earlier stamp: %(error)s")
        except InvoiceError:
            return None
        return CFDI.from_string(doc.xml)


def _ask(call: Callable[[], Any], refused: str) -> Any:
    """A call to the PAC: a network failure may have reached it and is retried
    (StorageUnavailable); any other failure is its refusal (InvoiceError, from
    the template `refused`)."""
    import requests

    try:
        return call()
    except requests.RequestException as exc:
        raise StorageUnavailable(UNREACHABLE + ": %(error)s", error=exc) from exc
    except Exception as exc:
        raise InvoiceError(refused, error=exc) from exc


def make_pac(settings: Settings) -> Pac:
    """The production PAC driver named by `pac_driver`; never a silent default."""
    if settings.pac_driver == "finkok":
        return FinkokPac(settings)
    if settings.pac_driver == "local":
        raise InvoiceError(
            "pac_driver = local is the dev stack's test PAC; only `cam2drive` "
            "commands and tests wire it in"
        )
    raise InvoiceError("no PAC configured: set pac_driver (finkok)")
