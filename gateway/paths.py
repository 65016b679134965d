"""Path rules of the drive view: the one place a client's path is judged.

Every path a client sends (FTP or SFTP) becomes a *drive path* here, before
any database or storage call: absolute inside the login's root, normalised,
and refused with InvalidPath when it would leave the root, is too long, or
holds characters no recorder has a reason to send. Storage keys are never
derived from these paths (see gateway/ingest.py), so even a path that passed
by mistake could not address another tenant's objects.
"""

from __future__ import annotations

from billing.core.errors import InvalidPath

MAX_COMPONENT_BYTES = 255
MAX_PATH_BYTES = 1024


def decode_client_bytes(raw: bytes, fallback: str | None) -> str:
    """UTF-8 first; firmwares set to a Chinese locale send GB2312, so fall back.

    With no fallback configured, undecodable bytes are refused (InvalidPath).
    GB18030 decodes every byte sequence GB2312 can produce.
    """
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        if fallback is None:
            raise InvalidPath("path is not valid UTF-8") from None
        try:
            return raw.decode(fallback)
        except UnicodeDecodeError:
            raise InvalidPath(f"path is neither UTF-8 nor {fallback}") from None


def _check_component(name: str) -> None:
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise InvalidPath("path contains a control character")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
        raise InvalidPath(f"a path component is longer than {MAX_COMPONENT_BYTES} bytes")


def resolve(cwd: str, raw: str) -> str:
    """Join `raw` to `cwd` and normalise it to a drive path without leading slash.

    `""` is the root. `.` and `..` are resolved; a `..` above the root is an
    error rather than silently clamped, so a client learns its path is wrong.
    """
    if "\x00" in raw:
        raise InvalidPath("path contains a NUL character")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise InvalidPath(f"path is longer than {MAX_PATH_BYTES} bytes")
    parts: list[str] = [] if raw.startswith("/") else [p for p in cwd.split("/") if p]
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise InvalidPath("path leaves the drive")
            parts.pop()
            continue
        _check_component(part)
        parts.append(part)
    path = "/".join(parts)
    if len(path.encode("utf-8", "surrogatepass")) + 1 > MAX_PATH_BYTES:
        raise InvalidPath(f"path is longer than {MAX_PATH_BYTES} bytes")
    return path


def display(path: str) -> str:
    """A drive path as a client sees it: `/a/b`, `/` for the root."""
    return "/" + path
