"""Every sentence the portal's templates show has its es-MX and pt-BR translation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from web.i18n import LOCALE_DIR, Formatter, negotiate, translations

TEMPLATES = Path(__file__).resolve().parents[2] / "web" / "templates"
CALLS = re.compile(r"""_\(\s*(["'])(.+?)\1""")


# what the views say: page errors, gettext() calls, the error pages' sentences
SAID = re.compile(
    r"(?:gettext\(|PageError\(\d+,\s*|_plain_error\(request,\s*\d+,\s*"
    r"|message = |message, status = )"
    r'\s*"([^"]+)"'
)


def template_messages() -> set[str]:
    found = {m.group(2) for p in TEMPLATES.glob("*.html") for m in CALLS.finditer(p.read_text())}
    views = TEMPLATES.parent / "portal"
    return found | {m.group(1) for p in views.glob("*.py") for m in SAID.finditer(p.read_text())}


@pytest.mark.parametrize("code", ["es", "pt"])
def test_templates_are_translated(code: str) -> None:
    with (LOCALE_DIR / code / "LC_MESSAGES" / "messages.po").open("rb") as fh:
        catalogue = read_po(fh)
    missing = sorted(
        m for m in template_messages() if m not in catalogue or not catalogue[m].string
    )
    assert missing == []
    assert translations(code).gettext("My devices") != "My devices"  # the catalogue loads


def test_dates_and_money_follow_the_locale() -> None:
    assert Formatter("es").money("1234.5", "MXN") == "$1,234.50"
    assert Formatter("pt").money("1234.5", "BRL") == "R$\xa01.234,50"
    assert Formatter("en").day("2026-12-06") == "Dec 6, 2026"
    assert Formatter("pt").day("2026-12-06") == "6 de dez. de 2026"


def test_accept_language_picks_by_weight() -> None:
    assert negotiate("pt-BR,pt;q=0.9,en;q=0.8", "es") == "pt"
    assert negotiate("fr-FR, en;q=0.5, pt;q=0.4", "es") == "en"
    assert negotiate("fr, de", "es") == "es"
    assert negotiate("en;q=0, garbage;;q=x, pt-BR;q=0.1", "es") == "pt"
