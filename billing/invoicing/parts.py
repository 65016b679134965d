"""What issuing and cancelling CFDIs work with, wired once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from billing.core.settings import Settings
from billing.invoicing.pac import Pac, make_pac


class DocumentStore(Protocol):
    def put_document(self, key: str, body: bytes, content_type: str) -> None: ...

    def get_document(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class Invoicing:
    """The database, where the XML and PDF go, the settings (CSD, folios, keys)
    and the PAC: built by cli/context.py (tests: tests/support/stack.py)."""

    engine: Engine
    store: DocumentStore
    settings: Settings
    pac: Pac | None = None  # None: the one `pac_driver` names

    def stamper(self) -> Pac:
        return self.pac if self.pac is not None else make_pac(self.settings)
