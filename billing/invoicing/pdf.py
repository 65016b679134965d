"""The printed form of a stamped CFDI: satcfdi's own template, laid out by WeasyPrint.

satcfdi puts a zero-width space between every character of the seals and
the cadena original so they can wrap. Their cell sits in an auto-layout
table, so WeasyPrint first measures its min-content width by breaking at
every one of those spaces and re-shaping the rest of the text each time:
about 1 000 layouts of up to 1 000 characters, 3-5 s of CPU per invoice.
Giving the seal block a definite width (what that cell gets on a letter
page anyway) skips the measurement; the page looks the same and renders
about 12 times faster (`bench/invoices.py`).

Ligatures are off: an invoice is data people copy (RFC, UUID, seals), and
with them on a seal's "ff" came out of the PDF as one glyph that text
extraction drops, so the copied seal no longer verifies.
"""

from __future__ import annotations

from functools import cache
from typing import Any

#: `.ciii` is the seal block of satcfdi's TimbreFiscalDigital template.
STYLE = "body { font-variant-ligatures: none; } td > .ciii { width: 15cm; }"


@cache
def _printer() -> tuple[Any, Any, list[Any]]:
    """Imported on first use: a host without Pango can still bill, and says why it cannot print."""
    import weasyprint
    from satcfdi import render

    return weasyprint, render, [render.PDF_CSS, weasyprint.CSS(string=STYLE)]


def pdf_bytes(stamped: Any) -> bytes:
    """The invoice PDF of a stamped CFDI (satcfdi's layout and page margins)."""
    weasyprint, render, stylesheets = _printer()
    html = weasyprint.HTML(string=render.html_str(stamped))
    return html.write_pdf(stylesheets=stylesheets)
