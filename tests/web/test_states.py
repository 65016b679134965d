"""What each contract state means, set over HTTP and felt over real FTP and SFTP."""

from __future__ import annotations

import asyncio
import ftplib
import io
from datetime import date, timedelta

import asyncssh
import pytest

from billing import catalog, contracts
from billing.core.db import session_scope
from billing.core.models import Subscription, utcnow
from tests.support.sftp import sftp_connect
from tests.support.stack import Stack
from tests.support.web import Erp

VIEWER_PASSWORD = "52998224725"  # seed 002: the ERP sends the document as the password


def provision(erp: Erp, contract_id: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    """A contract whose customer's viewer password the ERP set; (device, viewer email)."""
    reply = erp.put(contract_id, password=VIEWER_PASSWORD)
    assert reply.status_code == 201, reply.text
    return reply.json()["device"], reply.json()["customer"]["email"]


def upload(stack: Stack, device: dict, name: str) -> str:  # type: ignore[type-arg]
    with stack.ftp() as ftp:
        ftp.login(device["username"], device["password"])
        try:
            return ftp.storbinary(f"STOR {name}", io.BytesIO(b"evidence"))
        except ftplib.error_perm as err:
            return str(err)


def view(stack: Stack, email: str, contract_id: str) -> str:
    """A viewer's FTP login: its reply and, if in, the contract's folder listing."""
    with stack.ftp() as ftp:
        try:
            reply = ftp.login(email, VIEWER_PASSWORD)
        except (ftplib.error_perm, ftplib.error_temp) as err:
            return str(err)
        return f"{reply} {ftp.nlst(f'contract-{contract_id}')}"


@pytest.mark.parametrize(
    "verb,body,status,records,reason",
    [
        ("block", {"level": "partial"}, "blocked_partial", True, "blocked by the provider"),
        ("block", {"level": "total"}, "blocked_total", False, "blocked by the provider"),
        ("suspend", None, "suspended", False, "suspended"),
        ("cancel", None, "cancelled", False, "cancelled"),
    ],
)
def test_each_state_on_uploads_and_viewer_logins(
    erp: Erp,
    stack: Stack,
    verb: str,
    body: dict[str, str] | None,
    status: str,
    records: bool,
    reason: str,
) -> None:
    cid = f"S-{verb}-{status}"
    device, email = provision(erp, cid)
    assert upload(stack, device, "before.jpg").startswith("226")
    assert "before.jpg" in view(stack, email, cid)
    reply = erp.http.post(f"/api/v1/contracts/S-{verb}-{status}/{verb}", json=body)
    assert reply.status_code == 200 and reply.json()["status"] == status
    result = upload(stack, device, "during.jpg")
    if records:
        assert result.startswith("226")  # evidence keeps being saved
    else:
        assert result.startswith("532") and reason.split()[0] in result
    refused = view(stack, email, cid)
    assert refused.startswith("421") and f"Viewing refused: the contract is {reason}" in refused
    back = "reactivate" if verb in ("suspend", "cancel") else "unblock"
    assert erp.http.post(f"/api/v1/contracts/S-{verb}-{status}/{back}").json()["status"] == (
        "active"
    )
    assert upload(stack, device, "after.jpg").startswith("226")
    listing = view(stack, email, cid)
    assert listing.startswith("230") and "after.jpg" in listing


def test_sftp_obeys_the_same_states(erp: Erp, stack: Stack) -> None:
    port = stack.start_sftp()
    device, email = provision(erp, "SFTP-1")

    async def put(user: str, password: str) -> str:
        async with sftp_connect(port, user, password) as conn:
            async with conn.start_sftp_client() as sftp:
                try:
                    async with sftp.open("clip.jpg", "wb") as f:
                        await f.write(b"evidence")
                    return "ok"
                except asyncssh.SFTPError as err:
                    return str(err.reason)

    async def viewer() -> str:
        try:
            async with sftp_connect(port, email, VIEWER_PASSWORD) as conn:
                async with conn.start_sftp_client() as sftp:
                    return f"in {await sftp.listdir('/')}"
        except (asyncssh.DisconnectError, asyncssh.PermissionDenied) as err:
            return str(err.reason)

    assert asyncio.run(put(device["username"], device["password"])) == "ok"
    assert asyncio.run(viewer()).startswith("in")
    erp.http.post("/api/v1/contracts/SFTP-1/block", json={"level": "total"})
    assert "blocked by the provider" in asyncio.run(put(device["username"], device["password"]))
    assert "viewing refused" in asyncio.run(viewer())
    erp.http.post("/api/v1/contracts/SFTP-1/block", json={"level": "partial"})
    assert asyncio.run(put(device["username"], device["password"])) == "ok"
    assert "viewing refused" in asyncio.run(viewer())


def test_cancelled_drive_is_deleted_after_retention_unless_reactivated(
    erp: Erp, stack: Stack
) -> None:
    kept, _ = provision(erp, "RET-KEPT")
    gone, _ = provision(erp, "RET-GONE")
    for device in (kept, gone):
        assert upload(stack, device, "clip.jpg").startswith("226")
    for contract_id in ("RET-KEPT", "RET-GONE"):
        reply = erp.http.post(f"/api/v1/contracts/{contract_id}/cancel").json()
        retention = timedelta(days=stack.settings.contract_retention_days)
        assert reply["delete_on"] == (utcnow().date() + retention).isoformat()
    assert erp.http.post("/api/v1/contracts/RET-KEPT/reactivate").json()["status"] == "active"
    today = utcnow().date()

    def swept(day: date) -> set[str]:  # other tests' contracts share the database
        with session_scope(stack.engine) as s:
            return {d["contract_id"] for d in contracts.sweep(s, stack.purger, day).deleted}

    assert not swept(today + retention - timedelta(days=1)) & {"RET-GONE", "RET-KEPT"}
    assert swept(today + retention) & {"RET-GONE", "RET-KEPT"} == {"RET-GONE"}
    assert "RET-GONE" not in swept(today + retention)  # once
    gone_view = erp.http.get("/api/v1/contracts/RET-GONE").json()
    assert gone_view["status"] == "deleted" and gone_view["usage"]["committed_bytes"] == 0
    assert erp.http.get("/api/v1/contracts/RET-KEPT").json()["usage"]["committed_bytes"] == 8
    with session_scope(stack.engine) as s:
        gone_c = contracts.get(s, erp.distributor_id, "RET-GONE")
        kept_c = contracts.get(s, erp.distributor_id, "RET-KEPT")
        assert s.get(Subscription, gone_c.subscription_id).status == "deleted"  # type: ignore[union-attr]
        prefixes = [catalog.drive_of(s, c.device_id).prefix for c in (gone_c, kept_c)]
    assert [len(dict(stack.store.list_keys(p))) for p in prefixes] == [0, 1]
    history = erp.http.get("/api/v1/contracts/RET-GONE/history").json()
    assert history[-1]["action"] == "drive_deleted" and history[-1]["source"] == "billing"
    assert history[-1]["effect"] == "drive deleted: 1 objects, 8 bytes"
    refused = erp.http.post("/api/v1/contracts/RET-GONE/reactivate")
    assert refused.status_code == 409 and "deleted" in refused.json()["detail"]
