"""`cam2drive drive index-recordings`: files uploaded before the index, onto the timeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import delete

from billing.core.models import Recording
from tests.support.recordings import upload
from tests.support.stack import Stack

pytestmark = pytest.mark.process  # runs the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


def test_index_recordings(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        upload(ftp, "2026-12-06/001/dav/15/15.00.00-15.05.00[M][0@0][0].dav")
        upload(ftp, "2026-12-06/001/jpg/15/02/33[M][0@0][0].jpg")
    with stack.engine.begin() as conn:  # as just after the upgrade
        conn.execute(delete(Recording))
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": stack.db_url}
    args = [BIN, "drive", "index-recordings", "--drive", str(dev.drive_id), "--json"]
    for added in (2, 0):  # once, then nothing left
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout) == {"added": added}
