"""Every expected failure of a command becomes one line on stderr and an exit status."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from billing.core.errors import Cam2DriveError
from billing.core.settings import ConfigError
from cli.output import error_line


def exit_status(exc: BaseException) -> int:
    """Report an expected failure as one line and give the exit status; re-raise the rest."""
    try:
        raise exc
    except SystemExit as stop:  # a forked gateway worker exits with os._exit, not this
        if isinstance(stop.code, str):
            return _say(stop.code)
        return 0 if stop.code is None else stop.code
    except Cam2DriveError as err:
        return _say(str(err))
    except ConfigError as err:
        return _say(str(err), 2)
    except IntegrityError as err:
        return _say(f"conflicts with an existing record: {err.orig}".splitlines()[0])
    except OperationalError as err:
        first = str(err.orig).strip().splitlines()[0] if err.orig else str(err)
        hint = (
            " (run `cam2drive db upgrade`?)"
            if "no such table" in first or "does not exist" in first
            else ""
        )
        return _say(f"database error: {first}{hint}")
    except SQLAlchemyError as err:
        return _say(f"database error: {str(err).splitlines()[0]}")
    except OSError as err:  # a port in use, an unreadable key or certificate
        return _say(f"system error: {err}")
    except KeyboardInterrupt:
        return 130


def _say(message: str, code: int = 1) -> int:
    error_line(message)
    return code
