"""Client-sent text made safe for a log line: the one helper every log call uses.

A path, user name or command argument may hold CR, LF, NUL or any other
control character. Written as-is, a bare LF in `MKD` started a new log line
that looked like the gateway's own ("… USER 'x' logged in."). Every control
character (C0, DEL, C1, and the Unicode line and paragraph separators) is
written as a visible escape instead, so one client action is always one line.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls, and the characters str.splitlines() also
# breaks on (U+2028, U+2029); a backslash is escaped too, so an escape the
# client typed cannot pass for one of ours.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(value: object) -> str:
    """`value` as text with every control character escaped (`\\x0a`)."""
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text)
