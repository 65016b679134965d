"""`cam2drive distributor add-user|users|user-link`: staff logins for the portal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from billing import password_links
from billing.core.db import make_engine, session_scope
from tests.support.nodes import assert_one_line_error

pytestmark = pytest.mark.process  # runs the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


def cam2drive(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": db_url,
        "CAM2DRIVE_PORTAL_URL": "https://p.example",
    }
    return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120)


def test_add_a_staff_user_who_sets_a_password_by_link(db_url: str) -> None:
    tag = os.urandom(4).hex()
    dist = json.loads(
        cam2drive(
            db_url, "distributor", "add", "--name", "ISP", "--email", f"d{tag}@x.mx", "--json"
        ).stdout
    )
    added = cam2drive(
        db_url, "distributor", "add-user", "--distributor", str(dist["id"]),
        "--email", f"Ana{tag}@ISP.mx", "--locale", "pt", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    user = json.loads(added.stdout)
    assert user["email"] == f"ana{tag}@isp.mx" and user["locale"] == "pt"
    link = user["password_link"]
    assert link.startswith("https://p.example/password/")
    # the same address again, a bad one, a distributor that does not exist: one line each
    for args, says in (
        (["--distributor", str(dist["id"]), "--email", f"ana{tag}@isp.mx"], "already"),
        (["--distributor", str(dist["id"]), "--email", "not an email"], "not an email"),
        (["--distributor", "999999", "--email", f"x{tag}@isp.mx"], "does not exist"),
        (
            ["--distributor", str(dist["id"]), "--email", f"y{tag}@isp.mx", "--locale", "fr"],
            "locale",
        ),
    ):
        assert_one_line_error(cam2drive(db_url, "distributor", "add-user", *args), says)
    # one address is one portal login: a customer may not take a staff member's email
    taken = cam2drive(
        db_url, "customer", "add", "--distributor", str(dist["id"]), "--email", f"ANA{tag}@isp.mx"
    )
    assert_one_line_error(taken, "already signs in to the portal")
    users = json.loads(
        cam2drive(db_url, "distributor", "users", "--distributor", str(dist["id"]), "--json").stdout
    )
    assert [(u["email"], u["has_password"]) for u in users] == [(f"ana{tag}@isp.mx", False)]
    engine = make_engine(db_url)
    with session_scope(engine) as s:
        password_links.redeem(s, link.rsplit("/", 1)[-1], "a-staff-password-1")
    users = json.loads(
        cam2drive(db_url, "distributor", "users", "--distributor", str(dist["id"]), "--json").stdout
    )
    assert users[0]["has_password"] is True
    again = cam2drive(db_url, "distributor", "user-link", f"ana{tag}@isp.mx")
    assert again.returncode == 0 and again.stdout.strip().startswith("https://p.example/password/")
    assert again.stdout.strip() != link
    missing = cam2drive(db_url, "distributor", "user-link", f"nobody{tag}@isp.mx")
    assert_one_line_error(missing, "no distributor user")
    engine.dispose()
