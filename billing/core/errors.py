"""Errors that carry a message meant for a person (operator, installer, client).

Each frontend maps an error's class to its own reply once: FTP codes in
gateway/ftp/replies.py, CLI exit lines in cli/output.py. Anything that is not
a `Cam2DriveError` is a bug and is logged, never shown.
"""

from __future__ import annotations


class Cam2DriveError(Exception):
    """Base class: `str(err)` is one line a person can act on.

    The message is a fixed English template with `%(name)s` slots and the values
    beside it (`AlreadyExists("a customer with email %(email)s already exists",
    email=email)`), never an f-string: the portal looks the template up in its
    Babel catalogue and fills the slots in the reader's language, while the
    CLI, the API and the logs read `str(err)`, the English sentence.
    """

    def __init__(self, template: str = "", /, **values: object) -> None:
        self.template = template
        self.values = values
        super().__init__(template % values if values else template)


class InvalidInput(Cam2DriveError):
    """Malformed arguments: a bad capacity, an unknown plan code, ..."""


class NotFound(Cam2DriveError):
    """The record or path does not exist."""


class AlreadyExists(Cam2DriveError):
    """A unique value is taken (an email, a plan code, a path)."""


class InvalidPath(Cam2DriveError):
    """A path that may not be used: it leaves the drive, is too long, has control characters."""


class NotADirectory(Cam2DriveError):
    pass


class IsADirectory(Cam2DriveError):
    pass


class DirectoryNotEmpty(Cam2DriveError):
    pass


class PermissionDenied(Cam2DriveError):
    """The login may not do this (a read-only viewer writing, say)."""


class NotEntitled(Cam2DriveError):
    """The device has no subscription that allows uploads right now."""


class QuotaExceeded(Cam2DriveError):
    """The drive is full (reject policy) or the file is larger than the drive."""


class StorageUnavailable(Cam2DriveError):
    """S3 or the database failed: transient, the recorder should retry."""


class NotSupported(Cam2DriveError):
    """A command cam2drive deliberately does not implement (APPE, REST+STOR)."""


class UploadAborted(Cam2DriveError):
    """The client went away or aborted before the file was complete."""


class InvoiceError(Cam2DriveError):
    """An invoice could not be built, sealed or stamped; the charge stays uninvoiced."""


class InvalidField(InvalidInput):
    """Bad input in one named field of a request (`customer.email`): the API's 422 names it."""

    def __init__(self, field: str, message: str, /, **values: object) -> None:
        reason = message % values if values else message
        super().__init__("%(field)s: %(reason)s", field=field, reason=reason)
        self.field = field
        self.reason = reason
        self.reason_template = message
        self.reason_values = values


class Conflict(Cam2DriveError):
    """The request is well formed but the record's state forbids it (a cancelled contract)."""
