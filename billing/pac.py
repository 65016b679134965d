"""Stamping (timbrado): a PAC turns a sealed CFDI into a valid one.

One small interface, two drivers chosen by `pac` in the config: `local`, a
test PAC inside this process for tests and `make run`, and `finkok`
through satcfdi's client. A retried stamp of the same sealed CFDI must not
give a second fiscal document: the local PAC derives the UUID from the
seal, and the Finkok driver asks for the earlier stamp when Finkok says
the CFDI was stamped before.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime
from typing import Protocol

from satcfdi.cfdi import CFDI
from satcfdi.create.cfd.tfd11 import TimbreFiscalDigital
from satcfdi.models import Certificate, Signer
from satcfdi.transform import MEXICO_TZ

from billing.cfdi import load_signer_files
from billing.democerts import demo_pac
from billing.errors import InvoiceError, StorageUnavailable
from billing.settings import Settings

_UUIDS = uuid.UUID("6f1d3c1e-8a53-4d0e-9c44-2f0c8b9a7d10")


class Pac(Protocol):
    def stamp(self, cfdi: CFDI) -> CFDI:
        """The CFDI with its TimbreFiscalDigital; InvoiceError if refused,
        StorageUnavailable if the PAC could not be reached (retry later)."""
        ...


def seal_verifies(cfdi: CFDI) -> bool:
    """Does the CFDI's Sello verify against the certificate it carries?"""
    cert = Certificate.load_certificate(base64.b64decode(cfdi["Certificado"]))
    return cert.verify_sha256(cfdi.cadena_original().encode(), base64.b64decode(cfdi["Sello"]))


class LocalPac:
    """A test PAC: checks what a real PAC checks first, then stamps like one."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer

    def stamp(self, cfdi: CFDI) -> CFDI:
        try:
            cfdi.to_xml(validate=True)
        except Exception as exc:
            raise InvoiceError(f"the PAC refused the CFDI (schema): {exc}") from exc
        if not seal_verifies(cfdi):
            raise InvoiceError("the PAC refused the CFDI: its seal does not verify")
        stamped = cfdi.copy()
        stamped["Complemento"] = TimbreFiscalDigital(
            proveedor=self.signer,
            uuid=str(uuid.uuid5(_UUIDS, cfdi["Sello"])).upper(),
            fecha_timbrado=datetime.now(MEXICO_TZ).replace(tzinfo=None, microsecond=0),
            sello_cfd=cfdi["Sello"])
        return stamped.process()  # parsed back, as a real PAC's XML answer would be


class FinkokPac:
    """Finkok through satcfdi (https://www.finkok.com), test or production endpoint."""

    def __init__(self, settings: Settings) -> None:
        from satcfdi.pacs import Environment
        from satcfdi.pacs.finkok import Finkok

        if not (settings.pac_username and settings.pac_password):
            raise InvoiceError("pac = finkok needs pac_username and pac_password")
        env = Environment.PRODUCTION if settings.pac_production else Environment.TEST
        self.client = Finkok(settings.pac_username, settings.pac_password, environment=env)

    def stamp(self, cfdi: CFDI) -> CFDI:
        import requests

        try:
            doc = self.client.stamp(cfdi)
        except requests.RequestException as exc:
            raise StorageUnavailable(f"the PAC is unreachable: {exc}") from exc
        except Exception as first:
            try:  # stamped before (a retry after a lost answer): fetch that stamp
                doc = self.client.stamped(cfdi)
            except Exception:
                raise InvoiceError(f"the PAC refused the CFDI: {first}") from first
        return CFDI.from_string(doc.xml)


def make_pac(settings: Settings) -> Pac:
    if settings.pac_driver == "local":
        cer, key, password = demo_pac(settings.pac_local_dir)
        return LocalPac(load_signer_files(cer, key, password))
    if settings.pac_driver == "finkok":
        return FinkokPac(settings)
    raise InvoiceError(f"unknown PAC driver {settings.pac_driver!r}: use local or finkok")
