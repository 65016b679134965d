"""A loopback SMTP server for `make run`: every notification lands in var/mail/ as .eml."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class MailSink:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory, self.port = directory, port
        directory.mkdir(parents=True, exist_ok=True)
        from aiosmtpd.controller import Controller

        self.controller = Controller(self, hostname="127.0.0.1", port=port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        name = f"{len(list(self.directory.iterdir())) + 1:05d}.eml"
        (self.directory / name).write_bytes(envelope.content)
        return "250 OK"
