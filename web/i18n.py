"""The portal's languages: es-MX (default), pt-BR and en.

Words live in Babel message catalogues (web/locale/<lang>/LC_MESSAGES/messages.po,
English msgids). They are read with Babel when the service starts, compiled in
memory: no build step, and a translator edits only the .po file. Dates and
money are formatted by babel.dates / babel.numbers in the same locale.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from babel.support import NullTranslations, Translations

from billing.core.vocab import LOCALES

LOCALE_DIR = Path(__file__).parent / "locale"
#: our short codes (customers.locale, settings.default_locale) -> Babel locales
BABEL = {"es": "es_MX", "pt": "pt_BR", "en": "en"}
NAMES = {"es": "Español (México)", "pt": "Português (Brasil)", "en": "English"}


@cache
def translations(code: str) -> NullTranslations:
    po = LOCALE_DIR / code / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=BABEL[code])
    buf = BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(buf)


def negotiate(accept_language: str | None, default: str) -> str:
    """Our code for an Accept-Language header, by its q-values; `default` if none fits."""
    choices: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "")[:500].split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        try:
            lang = Locale.parse(tag.strip().replace("-", "_")).language if tag.strip() else ""
        except (UnknownLocaleError, ValueError):
            continue
        if lang in LOCALES and q > 0:
            choices.append((-q, i, lang))
    return min(choices)[2] if choices else default


class Formatter:
    """Words, dates and money in one locale (the templates' `_`, `money`, `day`...)."""

    def __init__(self, code: str) -> None:
        self.code = code if code in LOCALES else "es"
        self.locale = BABEL[self.code]
        self._t = translations(self.code)

    def gettext(self, message: str, **values: object) -> str:
        text = self._t.gettext(message)
        return text % values if values else text

    def money(self, amount: Decimal | str | None, currency: str) -> str:
        if amount is None:
            return "—"
        return format_currency(Decimal(amount), currency, locale=self.locale)

    def number(self, value: float | int | Decimal, digits: int = 1) -> str:
        return format_decimal(value, format=f"#,##0.{'0' * digits}", locale=self.locale)

    def day(self, value: date | datetime | str | None, fmt: str = "medium") -> str:
        if value is None:
            return "—"
        if isinstance(value, str):
            value = date.fromisoformat(value[:10])
        return format_date(value, fmt, locale=self.locale)

    def moment(self, value: datetime | None, tz: str = "America/Mexico_City") -> str:
        if value is None:
            return "—"
        return format_datetime(value, "medium", tzinfo=ZoneInfo(tz), locale=self.locale)

    def size(self, n: int) -> str:
        """Bytes in the units plans are sold in (decimal: 50 GB is 50·10⁹ bytes)."""
        for unit, step in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
            if n >= step:
                return f"{self.number(n / step)} {unit}"
        return f"{n} B"
