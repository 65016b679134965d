"""`cam2drive device timezone`: the zone a recorder's file names are read in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlmodel import Session

from billing.core.db import make_engine
from billing.core.models import Device
from tests.support.nodes import assert_one_line_error

pytestmark = pytest.mark.process  # runs the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


def run(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": db_url}
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120)


def as_json(db_url: str, *args: str) -> dict:  # type: ignore[type-arg]
    proc = run(db_url, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def zone_of(db_url: str, device_id: int) -> str | None:
    engine = make_engine(db_url)
    with Session(engine) as s:
        device = s.get(Device, device_id)
        assert device is not None
        zone = device.timezone
    engine.dispose()
    return zone


def test_device_timezone(db_url: str) -> None:
    assert run(db_url, "db", "upgrade").returncode == 0
    tag = os.urandom(4).hex()
    dist = as_json(db_url, "distributor", "add", "--name", "TZ", "--email", f"tz{tag}@x.mx")
    cust = as_json(
        db_url, "customer", "add", "--distributor", str(dist["id"]), "--email", f"c{tag}@x.mx"
    )
    dev = as_json(db_url, "device", "add", "--customer", str(cust["id"]), "--name", "NVR")
    assert zone_of(db_url, dev["id"]) is None  # the device_timezone setting
    done = as_json(db_url, "device", "timezone", str(dev["id"]), "America/Bogota")
    assert done == {"id": dev["id"], "timezone": "America/Bogota"}
    assert zone_of(db_url, dev["id"]) == "America/Bogota"
    bad = run(db_url, "device", "timezone", dev["username"], "Mars/Olympus_Mons")
    assert_one_line_error(bad, "timezone: unknown time zone 'Mars/Olympus_Mons'")
    assert zone_of(db_url, dev["id"]) == "America/Bogota"  # unchanged
    text = run(db_url, "device", "timezone", dev["username"], "default").stdout
    assert text.strip() == f"device {dev['id']}: time zone default"
    assert zone_of(db_url, dev["id"]) is None
