"""Checking CFDI as the SAT does: its XSD, the seal over the cadena original, the PDF's text."""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import satcfdi
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from sqlmodel import select

from billing import catalog as accounts
from billing.core.db import session_scope
from billing.core.models import Charge
from billing.core.settings import Settings
from tests.support.stack import Stack

NS = {"c": "http://www.sat.gob.mx/cfd/4", "t": "http://www.sat.gob.mx/TimbreFiscalDigital"}

SCHEMAS = (
    Path(satcfdi.__file__).parent
    / "transform"
    / "schemas"
    / "www.sat.gob.mx"
    / "sitio_internet"
    / "cfd"
)


def xsd() -> etree.XMLSchema:
    """CFDI 4.0 and the Timbre Fiscal Digital 1.1, as the SAT publishes them."""
    root = etree.fromstring(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
        '<xs:import namespace="http://www.sat.gob.mx/cfd/4" schemaLocation="4/cfdv40.xsd"/>'
        '<xs:import namespace="http://www.sat.gob.mx/TimbreFiscalDigital" '
        'schemaLocation="TimbreFiscalDigital/TimbreFiscalDigitalv11.xsd"/></xs:schema>',
        base_url=str(SCHEMAS / "all.xsd"),
    )
    return etree.XMLSchema(root)


def seal_verifies(xml: bytes, cert_file: Path) -> bool:
    """The SAT's own check: the cadena original (SAT XSLT) signed by the CSD's key."""
    doc = etree.fromstring(xml)
    xslt = etree.XSLT(
        etree.parse(str(SCHEMAS / "4" / "cadenaoriginal_4_0" / "cadenaoriginal_4_0.xslt"))
    )
    chain = str(xslt(doc)).encode()
    cert = x509.load_der_x509_certificate(cert_file.read_bytes())
    assert (
        doc.get("Certificado")
        == base64.b64encode(
            cert.public_bytes(
                __import__(
                    "cryptography.hazmat.primitives.serialization", fromlist=["Encoding"]
                ).Encoding.DER
            )
        ).decode()
    )
    try:
        cert.public_key().verify(
            base64.b64decode(doc.get("Sello")),
            chain,  # type: ignore[call-arg]
            padding.PKCS1v15(),
            hashes.SHA256(),
        )  # type: ignore[call-arg]
    except Exception:
        return False
    return True


def pdf_text(pdf: bytes, tmp: Path) -> str:
    (tmp / "i.pdf").write_bytes(pdf)
    return subprocess.run(
        ["pdftotext", "-layout", str(tmp / "i.pdf"), "-"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def give_fiscal(stack: Stack, customer_id: int, payment_type: str = "credit_card") -> None:
    """The SAT's test receiver as the customer's fiscal data, and how their charges were paid."""
    with session_scope(stack.engine) as s:
        accounts.set_customer_fiscal(
            s,
            customer_id,
            actor="test",
            rfc="URE180429TM6",
            name="Universidad Robotica Espanola",
            regime="601",
            cfdi_use="G03",
            postal_code="86991",
        )
        for charge in s.exec(select(Charge).where(Charge.status == "approved")):
            charge.payment_type_id = charge.payment_type_id or payment_type
            s.add(charge)


class FailingPac:
    """A PAC whose every stamp fails: `StorageUnavailable` for one that cannot
    be reached, `InvoiceError` for one that refuses the CFDI (as Finkok does a
    bad receiver)."""

    def __init__(self, error: type[Exception], message: str) -> None:
        self.error, self.message = error, message

    def stamp(self, cfdi: object) -> NoReturn:
        raise self.error(self.message)


@contextmanager
def hung_finkok(settings: Settings) -> Iterator[Settings]:
    """`settings` with the Finkok driver pointed at a PAC that accepts
    connections and never answers a byte (closed on exit): what the read
    timeout must bound."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(8)
    try:
        yield settings.model_copy(
            update={
                "pac_driver": "finkok",
                "pac_username": "u",
                "pac_password": "p",
                "pac_url": f"http://127.0.0.1:{hung.getsockname()[1]}",
                "pac_read_timeout": 0.5,
            }
        )
    finally:
        hung.close()
