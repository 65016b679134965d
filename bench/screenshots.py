"""Screenshots of the portal's main pages into docs/screenshots/ (the README shows them).

    .venv/bin/python -m bench.screenshots [--out docs/screenshots]

Runs everything for real, as the tests do: SeaweedFS, a SQLite database, an
FTP gateway that a recorder uploads a day of `.dav` clips and snapshots to,
the SFTP gateway (the settings page names both ports), the HTTP service, and
Debian's chromium under Playwright (`make sysdeps` installs it; never
`playwright install`). Phone-sized pages (390 x 844) for
the customer, a desktop for the distributor.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from billing import catalog, staff, video_grants  # noqa: E402
from billing.core.db import session_scope  # noqa: E402
from billing.core.schema import upgrade  # noqa: E402
from cli.devstack.seaweed import SeaweedServer  # noqa: E402
from tests.support.dhav import make_dav  # noqa: E402
from tests.support.portal import PASSWORD, Account, chromium, person, sign_in  # noqa: E402
from tests.support.recordings import upload  # noqa: E402
from tests.support.stack import Stack  # noqa: E402
from tests.support.web import WebServer  # noqa: E402

DAY = "2026-12-06"
PHONE = (390, 844)
DESKTOP = (1280, 860)


def snapshot_jpeg(second: int) -> bytes:
    """A real JPEG (ffmpeg's test pattern), as a recorder's snapshot is."""
    return subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         f"testsrc=size=320x180:rate=1:duration=1:decimals=0,drawtext=text='{second}':x=10:y=10",
         "-frames:v", "1", "-f", "mjpeg", "pipe:1"],
        capture_output=True, check=False,
    ).stdout or subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i",
         "testsrc=size=320x180:rate=1", "-frames:v", "1", "-f", "mjpeg", "pipe:1"],
        capture_output=True, check=True,
    ).stdout  # fmt: skip


def seed(stack: Stack) -> tuple[Account, Account, int]:
    """A distributor with staff, a customer with two recorders, a day of recordings."""
    tag = uuid.uuid4().hex[:4]
    with session_scope(stack.engine) as s:
        dist = catalog.add_distributor(
            s, name="TVCenLínea", email=f"ventas-{tag}@tvcenlinea.example", actor="demo"
        )
        assert dist.id is not None
        for code, size, price in (("AC-ST-50", "50GB", "299.00"), ("AC-ST-100", "100GB", "449.00"),
                                  ("AC-ST-200", "200GB", "699.00")):  # fmt: skip
            terms = catalog.PlanTerms(f"{code}-{tag}".upper(), size, price, "MXN")
            catalog.add_plan(s, terms, actor="demo")
        cust = catalog.add_customer(
            s, distributor_id=dist.id, email=f"tienda-{tag}@example.com",
            name="Tienda Centro", actor="demo",
        )  # fmt: skip
        assert cust.id is not None
        catalog.set_customer_password(s, cust.id, PASSWORD, actor="demo")
        video_grants.set_grant(s, cust.id, True, actor="demo")
        nvr = catalog.add_device(
            s, customer_id=cust.id, name="NVR Tienda", serial="6G0A1B2", actor="demo"
        )
        catalog.grant_subscription(
            s, device_ref=nvr.device.id, plan_code=f"AC-ST-50-{tag}".upper(), actor="demo"
        )
        catalog.add_device(
            s, customer_id=cust.id, name="DVR Bodega", serial="7H1C3D4", actor="demo"
        )
        for i, (name, email) in enumerate((("Ferretería Sol", "sol"), ("Farmacia Luz", "luz"))):
            other = catalog.add_customer(
                s,
                distributor_id=dist.id,
                email=f"{email}-{tag}@example.com",
                name=name,
                actor="demo",
            )
            if i == 0:
                assert other.id is not None
                catalog.set_customer_password(s, other.id, PASSWORD, actor="demo")
        user = staff.add_user(s, distributor_id=dist.id, email=f"staff-{tag}@tvcenlinea.example",
                              name="Ana", actor="demo")  # fmt: skip
        assert user.id is not None
        staff.set_password(s, user.id, PASSWORD, actor="demo")
        customer = Account(cust.email, PASSWORD, cust.id, dist.id)
        boss = Account(user.email, PASSWORD, user.id, dist.id)
        login = (nvr.device.username, nvr.password, nvr.device.id)
    from tests.support.stack import DeviceLogin

    dev = DeviceLogin(login[0], login[1], login[2], nvr.drive.id, customer.id, nvr.drive.prefix)
    clips = [
        (1, "R", 0, 0, 60 * 60 * 2), (1, "M", 8, 12, 40), (1, "M", 9, 3, 25), (1, "A", 13, 40, 30),
        (1, "M", 15, 0, 4), (1, "R", 18, 0, 60 * 60), (2, "M", 10, 5, 50), (2, "I", 12, 30, 20),
        (2, "F", 16, 45, 60), (2, "R", 20, 0, 60 * 90), (1, "M", 23, 58, 150),
    ]  # fmt: skip
    with stack.ftp(dev) as ftp:
        for ch, kind, hour, minute, seconds in clips:
            start = datetime(2026, 12, 6, hour, minute)
            end = datetime.fromtimestamp(start.timestamp() + seconds)
            name = f"{start:%H.%M.%S}-{end:%H.%M.%S}[{kind}][0@0][0].dav"
            data = make_dav(4 if (hour, minute) == (15, 0) else 1, start=start, audio=False)
            upload(ftp, f"{DAY}/{ch:03d}/dav/{hour:02d}/{name}", data)
        for sec in (5, 17, 33, 48):
            upload(ftp, f"{DAY}/001/jpg/15/00/{sec:02d}[M][0@0][0].jpg", snapshot_jpeg(sec))
    return customer, boss, dev.device_id


def shoot(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    shots: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        seaweed = SeaweedServer(Path(tmp) / "seaweed").start()
        os.environ.update(seaweed.env())  # its S3 credentials, as tests/conftest.py does
        try:
            db = f"sqlite:///{Path(tmp) / 'cam2drive.db'}"
            upgrade(db)
            stack = Stack(db, seaweed, f"shots-{uuid.uuid4().hex[:6]}")
            # the recorder's settings page names the ports served here: FTP's, and SFTP's
            stack.settings.sftp_port = stack.start_sftp()
            web = WebServer(stack)
            try:
                customer, boss, device_id = seed(stack)
                with chromium() as browser:

                    def shot(page: Any, name: str) -> None:
                        path = out / f"{name}.png"
                        page.screenshot(path=str(path), full_page=True)
                        shots.append(path)

                    page = person(browser, "es-MX", *PHONE)
                    page.goto(f"{web.url}/signin")
                    shot(page, "signin")
                    sign_in(page, web.url, customer)
                    shot(page, "devices")
                    page.goto(f"{web.url}/portal/devices/{device_id}")
                    page.click("form[action$='/password'] button")
                    shot(page, "device-settings")
                    page.goto(f"{web.url}/portal/subscriptions")
                    shot(page, "subscriptions")
                    wide = person(browser, "es-MX", *DESKTOP)
                    sign_in(wide, web.url, customer)
                    wide.goto(f"{web.url}/portal/recordings?device={device_id}&day={DAY}")
                    wide.locator(".timeline .clip.k-M").nth(2).click()
                    wide.wait_for_function(
                        "() => document.getElementById('player').readyState >= 3", timeout=30000
                    )
                    wide.wait_for_timeout(1500)
                    shot(wide, "recordings")
                    staff_page = person(browser, "pt-BR", *DESKTOP)
                    sign_in(staff_page, web.url, boss)
                    shot(staff_page, "distributor-customers")
                    staff_page.goto(f"{web.url}/distributor/customers/{customer.id}")
                    shot(staff_page, "distributor-customer")
            finally:
                web.close()
                stack.close()
        finally:
            seaweed.stop()
    return shots


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    for path in shoot(args.out):
        print(path)


if __name__ == "__main__":
    main()
