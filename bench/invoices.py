"""Invoice benchmark: build, seal, stamp and print CFDIs as the billing run does.

    .venv/bin/python bench/invoices.py [--count 20]

One run, the same stamped CFDIs (demo CSD, local test PAC) printed two ways:
satcfdi's stock `render.pdf_bytes`, and `billing.invoicing.pdf.pdf_bytes`
(the same template with a definite width for the seal block). Prints
invoices/s for building+sealing, for the local test PAC's stamp (it
validates against the SAT's XSD as a real PAC does; production pays
Finkok's latency instead), and for each printer, and the printers' ratio.
No S3 or database: this is the CPU each invoice costs. Figures go in
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from billing.core.models import Customer  # noqa: E402
from billing.core.settings import Settings  # noqa: E402
from billing.invoicing import pdf as invoice_pdf  # noqa: E402
from billing.invoicing.cfdi import build, load_signer, receiver_for  # noqa: E402
from cli.devstack.democerts import demo_invoicing  # noqa: E402
from cli.devstack.testpac import make_test_pac  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=20, help="invoices per printer")
    args = ap.parse_args()
    from satcfdi import render

    with tempfile.TemporaryDirectory() as tmp:
        st = Settings(**demo_invoicing(Path(tmp), Path(tmp) / "pac"))
        signer, pac = load_signer(st), make_test_pac(st)
        customer = Customer(distributor_id=1, email="bench@example.mx")
        b0 = time.perf_counter()
        sealed = [
            build(
                signer,
                st,
                receiver_for(customer, st),
                concept="Almacenamiento en la nube AC-ST-50",
                amount=Decimal("199.00"),
                currency="MXN",
                when=datetime(2026, 11, 22, 18, tzinfo=UTC),
                folio=str(i),
            )
            for i in range(args.count)
        ]
        b1 = time.perf_counter()
        stamped = [pac.stamp(doc) for doc in sealed]
        b2 = time.perf_counter()
        for step, secs in (("build+seal", b1 - b0), ("local PAC stamp", b2 - b1)):
            print(
                f"{step:20} {args.count / secs:7.2f} invoices/s  "
                f"({1000 * secs / args.count:6.0f} ms each)"
            )
        invoice_pdf.pdf_bytes(stamped[0])  # fonts and stylesheets loaded outside the clock
        rates = {}
        for name, printer in (
            ("satcfdi stock", render.pdf_bytes),
            ("cam2drive", invoice_pdf.pdf_bytes),
        ):
            t0 = time.perf_counter()
            sizes = [len(printer(doc)) for doc in stamped]
            rates[name] = args.count / (time.perf_counter() - t0)
            print(
                f"PDF {name:16} {rates[name]:7.2f} invoices/s  "
                f"({1000 / rates[name]:6.0f} ms each, {sum(sizes) // len(sizes)} B PDF)"
            )
        print(
            f"ratio cam2drive / stock printer: {rates['cam2drive'] / rates['satcfdi stock']:.1f}x"
        )


if __name__ == "__main__":
    main()
