"""Tax documents an ERP sends with a customer: a Brazilian CPF or CNPJ, a Mexican RFC.

Each is checked by its own check digits, so a typo in the ERP is refused
before a customer is created with it. The stored form is canonical: CPF and
CNPJ as bare digits, an RFC in upper case.
"""

from __future__ import annotations

import re

from billing.core.errors import InvalidField

_PUNCTUATION = re.compile(r"[\s./-]")
_RFC_SHAPE = re.compile(r"^[A-ZÑ&]{3,4}\d{6}[A-Z0-9]{3}$")


def _check_digit(digits: str, weights: range | list[int]) -> int:
    total = sum(int(d) * w for d, w in zip(digits, weights, strict=False))
    rest = total % 11
    return 0 if rest < 2 else 11 - rest


def valid_cpf(digits: str) -> bool:
    if len(digits) != 11 or not digits.isdigit() or digits == digits[0] * 11:
        return False
    first = _check_digit(digits[:9], range(10, 1, -1))
    second = _check_digit(digits[:10], range(11, 1, -1))
    return digits[9:] == f"{first}{second}"


_CNPJ_1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
_CNPJ_2 = [6, *_CNPJ_1]


def valid_cnpj(digits: str) -> bool:
    if len(digits) != 14 or not digits.isdigit() or digits == digits[0] * 14:
        return False
    first = _check_digit(digits[:12], _CNPJ_1)
    second = _check_digit(digits[:13], _CNPJ_2)
    return digits[12:] == f"{first}{second}"


def valid_rfc(text: str) -> bool:
    """An RFC of a person (13) or a company (12), its homoclave digit checked by satcfdi."""
    if not _RFC_SHAPE.match(text):
        return False
    from satcfdi.models.rfc import RFC

    try:
        return bool(RFC(text).is_valid())
    except Exception:  # satcfdi raises on shapes it cannot parse: simply not an RFC
        return False


def normalise_document(value: str, field: str = "customer.document") -> str:
    """The canonical CPF, CNPJ or RFC; InvalidField naming `field` otherwise."""
    text = value.strip().upper()
    if not text:
        raise InvalidField(field, "is required (a CPF, CNPJ or RFC)")
    bare = _PUNCTUATION.sub("", text)
    if bare.isdigit():
        if len(bare) == 11:
            if valid_cpf(bare):
                return bare
            raise InvalidField(field, "is not a valid CPF (check digits do not match)")
        if len(bare) == 14:
            if valid_cnpj(bare):
                return bare
            raise InvalidField(field, "is not a valid CNPJ (check digits do not match)")
        raise InvalidField(field, "must be a CPF (11 digits), a CNPJ (14 digits) or an RFC")
    if valid_rfc(bare):
        return bare
    raise InvalidField(field, "is not a valid CPF, CNPJ or RFC")
