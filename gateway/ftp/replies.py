"""FTP reply codes for cam2drive's errors: the one mapping every command uses."""

from __future__ import annotations

from billing.core import errors as e

_CODES: list[tuple[type[e.Cam2DriveError], str]] = [
    (e.NotEntitled, "532"),  # "Need account for storing files": exactly our case
    (e.QuotaExceeded, "552"),  # exceeded storage allocation
    (e.StorageUnavailable, "451"),  # local error in processing: transient, retry
    (e.InvalidPath, "553"),  # file name not allowed
    (e.NotSupported, "502"),
    (e.UploadAborted, "426"),
    (e.InvalidInput, "501"),
]


def code_for(err: e.Cam2DriveError) -> str:
    for cls, code in _CODES:
        if isinstance(err, cls):
            return code
    return "550"  # not found, exists, is a directory, not empty, permission


def reply_for(err: e.Cam2DriveError, code: str | None = None) -> str:
    """`552 Drive is full (...)`: one line, first letter capitalised, a final period."""
    text = str(err).replace("\r", " ").replace("\n", " ").strip() or err.__class__.__name__
    text = text[0].upper() + text[1:]
    if not text.endswith("."):
        text += "."
    return f"{code or code_for(err)} {text}"
