"""One log record per transfer, for FTP and SFTP alike: what was moved and how it ended.

A transfer is logged with its real outcome (the final FTP reply, or what an
SFTP close answered), never pyftpdlib's "completed=1" for an upload that
was then refused with 451. `log_format = "json"` writes each transfer as one
JSON object on its own line (session id, protocol, user, client address,
operation, path, bytes, milliseconds, outcome) for log shippers; the default
is one text line. Client-sent text goes through `printable` either way.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Literal

from gateway.logsafe import printable

log = logging.getLogger("cam2drive.transfer")


def session_id() -> str:
    """A short id that ties a session's transfer records together."""
    return secrets.token_hex(4)


def log_transfer(
    *,
    form: Literal["text", "json"],
    protocol: str,
    session: str,
    user: str,
    ip: str,
    op: str,
    path: str,
    nbytes: int,
    ms: int,
    outcome: str,
) -> None:
    """Log one finished (or failed, or aborted) transfer.

    `outcome` is the FTP reply (`226 Transfer complete…`, `451 …`) or, for
    SFTP, `ok`, `failed: <why>` or `aborted: <why>`.
    """
    fields = {
        "session": session,
        "protocol": protocol,
        "user": printable(user),
        "ip": ip,
        "op": op,
        "path": printable(path),
        "bytes": nbytes,
        "ms": ms,
        "outcome": printable(outcome),
    }
    level = logging.INFO if _succeeded(outcome) else logging.WARNING
    if form == "json":
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), **fields}
        log.log(level, "%s", json.dumps(record, ensure_ascii=True), extra={"json_line": True})
        return
    log.log(
        level,
        "%s %s [%s] %s %s %s bytes=%d ms=%d %s",
        protocol,
        fields["ip"],
        fields["user"],
        session,
        op,
        fields["path"],
        nbytes,
        ms,
        fields["outcome"],
    )


def _succeeded(outcome: str) -> bool:
    return outcome == "ok" or outcome.startswith("2")
