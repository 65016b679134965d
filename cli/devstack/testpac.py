"""The local test PAC: stamps like a PAC, for tests and `make run` only.

It checks what a real PAC checks first (schema, seal), then adds a
TimbreFiscalDigital signed with a locally made PAC certificate. The UUID is
derived from the seal, so a retried stamp of the same sealed CFDI gives the
same fiscal document. SAT never sees these invoices, which is why it lives
here and not in billing/, and why settings refuse it beside a SAT-issued CSD.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from satcfdi.cfdi import CFDI
from satcfdi.create.cancela.cancelacion import Cancelacion
from satcfdi.create.cfd.tfd11 import TimbreFiscalDigital
from satcfdi.models import Signer
from satcfdi.transform import MEXICO_TZ

from billing.core.errors import InvoiceError
from billing.core.settings import Settings
from billing.invoicing.cfdi import load_signer_files
from billing.invoicing.pac import Pac, seal_verifies
from cli.devstack.democerts import demo_pac

_UUIDS = uuid.UUID("6f1d3c1e-8a53-4d0e-9c44-2f0c8b9a7d10")


class LocalPac:
    """A test PAC: checks what a real PAC checks first, then stamps like one."""

    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        #: every cancellation asked of it, as the signed XML a PAC receives
        self.cancellations: list[bytes] = []

    def cancel(self, request: Cancelacion) -> str:
        """Record the signed request, as the SAT would receive it; 201 = accepted."""
        self.cancellations.append(request.xml_bytes())
        return "201"

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
            sello_cfd=cfdi["Sello"],
        )
        return stamped.process()  # parsed back, as a real PAC's XML answer would be


def make_test_pac(settings: Settings) -> Pac:
    cer, key, password = demo_pac(settings.pac_local_dir)
    return LocalPac(load_signer_files(cer, key, password))
