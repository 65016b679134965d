"""SFTP status codes for cam2drive's errors: the one mapping every request uses."""

from __future__ import annotations

from collections.abc import Callable

import asyncssh

from billing.core import errors as e

# each SFTPError subclass takes the reason alone (the base class takes a code first)
_ERRORS: list[tuple[type[e.Cam2DriveError], Callable[[str], asyncssh.SFTPError]]] = [
    (e.NotFound, asyncssh.SFTPNoSuchFile),
    (e.PermissionDenied, asyncssh.SFTPPermissionDenied),
    (e.NotEntitled, asyncssh.SFTPPermissionDenied),
    (e.QuotaExceeded, asyncssh.SFTPQuotaExceeded),
    (e.AlreadyExists, asyncssh.SFTPFileAlreadyExists),
    (e.IsADirectory, asyncssh.SFTPFileIsADirectory),
    (e.NotADirectory, asyncssh.SFTPNotADirectory),
    (e.DirectoryNotEmpty, asyncssh.SFTPDirNotEmpty),
    (e.InvalidPath, asyncssh.SFTPInvalidFilename),
    (e.NotSupported, asyncssh.SFTPOpUnsupported),
]


def sftp_error(err: e.Cam2DriveError) -> asyncssh.SFTPError:
    """The SFTP error for `err`; its text is the reason the client shows.

    Codes newer than a client's protocol version are sent as FX_FAILURE by
    asyncssh, with the same message, so old clients still see why.
    """
    text = str(err) or err.__class__.__name__
    text = text[0].upper() + text[1:]
    for cls, sftp_cls in _ERRORS:
        if isinstance(err, cls):
            return sftp_cls(text)
    return asyncssh.SFTPFailure(text)  # storage unavailable, aborted uploads: retry
