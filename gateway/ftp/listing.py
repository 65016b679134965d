"""Directory listings in the formats FTP clients parse (LIST, MLSD/MLST)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta

from gateway.drive import Entry

_SIX_MONTHS = timedelta(days=180)


def _aware(ts: datetime) -> datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def list_line(entry: Entry, now: datetime, writable: bool) -> str:
    """`ls -l` style, as pyftpdlib and most Unix servers print it."""
    mode = ("d" if entry.is_dir else "-") + ("rwxr-xr-x" if entry.is_dir else "rw-r--r--")
    if not writable:
        mode = mode.replace("w", "-")
    mtime = _aware(entry.mtime)
    fmt = "%b %d %H:%M" if now - mtime < _SIX_MONTHS else "%b %d  %Y"
    return f"{mode}   1 cam2drive cam2drive {entry.size:>12} {mtime.strftime(fmt)} {entry.name}\r\n"


def list_lines(entries: Iterable[Entry], writable: bool) -> Iterator[bytes]:
    now = datetime.now(UTC)
    for entry in entries:
        yield list_line(entry, now, writable).encode("utf-8")


def mlsx_facts(entry: Entry, writable: bool) -> str:
    """RFC 3659 facts: `type=file;size=12;modify=20261122030000;perm=adfrw;`."""
    modify = _aware(entry.mtime).strftime("%Y%m%d%H%M%S")
    if entry.is_dir:
        perm = "flcdmpe" if writable else "el"
        return f"type=dir;modify={modify};perm={perm};"
    perm = "adfrw" if writable else "r"
    return f"type=file;size={entry.size};modify={modify};perm={perm};"


def mlsd_lines(entries: Iterable[Entry], writable: bool) -> Iterator[bytes]:
    for entry in entries:
        yield f"{mlsx_facts(entry, writable)} {entry.name}\r\n".encode()
