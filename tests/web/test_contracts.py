"""The ERP contract API over real HTTP: provisioning, idempotency, isolation, bad input."""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlmodel import col, func, select

from billing.core.db import session_scope
from billing.core.models import Contract, Customer, Device
from tests.support.stack import Stack
from tests.support.web import CNPJ, RFC, Erp, WebServer, customer_body, new_erp


def counts(stack: Stack) -> tuple[int, int, int]:
    with session_scope(stack.engine) as s:
        return tuple(  # type: ignore[return-value]
            s.exec(select(func.count()).select_from(model)).one()
            for model in (Customer, Device, Contract)
        )


def test_products_are_the_distributors_plans(erp: Erp) -> None:
    reply = erp.http.get("/api/v1/products")
    assert reply.status_code == 200
    products = reply.json()
    assert [p["label"] for p in products] == sorted([erp.small, erp.large])
    small = next(p for p in products if p["label"] == erp.small)
    assert small == {
        "label": erp.small,
        "name": small["name"],
        "capacity_bytes": 1_000_000,
        "price": "30.00",
        "currency": "BRL",
    }


def test_put_creates_once_then_answers_200_with_the_same_device(erp: Erp, stack: Stack) -> None:
    customer = customer_body(document=CNPJ)
    first = erp.http.put(
        "/api/v1/contracts/HS-1001", json={"label": erp.small, "customer": customer}
    )
    assert first.status_code == 201, first.text
    body = first.json()
    device = body["device"]
    assert body["contract_id"] == "HS-1001" and body["status"] == "active"
    assert body["customer"]["email"] == customer["email"]
    assert device["username"].startswith("c2d-") and len(device["password"]) >= 20
    assert device["ftp"] == {"host": "127.0.0.1", "port": stack.settings.ftp_port}
    assert device["sftp"]["port"] == stack.settings.sftp_port and device["remote_dir"] == "/"
    # the recorder settings work: the installer's NVR uploads with them
    with stack.ftp() as ftp:
        ftp.login(device["username"], device["password"])
        ftp.storbinary("STOR clip.jpg", __import__("io").BytesIO(b"jpeg"))
    again = erp.http.put(
        "/api/v1/contracts/HS-1001", json={"label": erp.small, "customer": customer}
    )
    assert again.status_code == 200
    assert again.json()["customer"] == body["customer"]
    assert again.json()["device"]["username"] == device["username"]
    assert "password" not in again.json()["device"]
    got = erp.http.get("/api/v1/contracts/HS-1001").json()
    assert got["status"] == "active" and got["label"] == erp.small
    assert got["usage"] == {"capacity_bytes": 1_000_000, "committed_bytes": 4}
    assert got["last_upload_at"] is not None


def test_idempotency_key_replays_the_first_answer(erp: Erp, stack: Stack) -> None:
    body = {"label": erp.small, "customer": customer_body()}
    headers = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    first = erp.http.put("/api/v1/contracts/R-1", json=body, headers=headers)
    before = counts(stack)
    replay = erp.http.put("/api/v1/contracts/R-1", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json()  # the password too: the ERP may have missed it
    assert counts(stack) == before
    other = {"label": erp.large, "customer": body["customer"]}
    reused = erp.http.put("/api/v1/contracts/R-1", json=other, headers=headers)
    assert reused.status_code == 422 and reused.json()["field"] == "Idempotency-Key"
    # a POST too: the second cancel with the key gets the first answer, not a new one
    key = {"Idempotency-Key": "cancel-R-1"}
    one = erp.http.post("/api/v1/contracts/R-1/cancel", headers=key)
    two = erp.http.post("/api/v1/contracts/R-1/cancel", headers=key)
    assert one.status_code == two.status_code == 200 and one.json() == two.json()
    history = erp.http.get("/api/v1/contracts/R-1/history").json()
    assert [h["action"] for h in history] == ["created", "cancel"]


@pytest.mark.parametrize(
    "change,field",
    [
        ({"email": "not-an-email"}, "customer.email"),
        ({"document": "529.982.247-24"}, "customer.document"),  # CPF check digit off by one
        ({"document": "11.222.333/0001-82"}, "customer.document"),  # CNPJ
        ({"document": "GODE561231GR9"}, "customer.document"),  # RFC homoclave digit
        ({"phone": None}, "customer.phone"),
        ({"name": ""}, "customer.name"),
        ({"password": "short"}, "customer.password"),
        ({"label": "NO-SUCH-PLAN"}, "label"),
        ({"label": 42}, "label"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_creates_nothing(
    erp: Erp, stack: Stack, change: dict[str, object], field: str
) -> None:
    change = dict(change)  # parametrize shares the dict between both databases
    label = change.pop("label", erp.small)
    before = counts(stack)
    reply = erp.http.put(
        "/api/v1/contracts/BAD-1", json={"label": label, "customer": customer_body(**change)}
    )
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == field
    assert field in reply.json()["detail"]
    assert counts(stack) == before
    assert erp.http.get("/api/v1/contracts/BAD-1").status_code == 404


def test_valid_rfc_and_cnpj_are_accepted(erp: Erp) -> None:
    assert erp.put("MX-1", document=RFC).status_code == 201
    assert erp.put("BR-1", document=CNPJ).status_code == 201


def test_another_distributors_contract_is_404_for_every_verb(
    erp: Erp, stack: Stack, web: WebServer
) -> None:
    assert erp.put("SHARED-ID").status_code == 201
    other = new_erp(stack, web)
    try:
        assert other.http.get("/api/v1/contracts/SHARED-ID").status_code == 404
        assert other.http.get("/api/v1/contracts/SHARED-ID/history").status_code == 404
        for verb in ("unblock", "suspend", "reactivate", "cancel"):
            assert other.http.post(f"/api/v1/contracts/SHARED-ID/{verb}").status_code == 404
        block = other.http.post("/api/v1/contracts/SHARED-ID/block", json={"level": "total"})
        assert block.status_code == 404
        # the same id is the other distributor's own, separate contract
        assert other.put("SHARED-ID").status_code == 201
    finally:
        other.close()
    assert erp.http.get("/api/v1/contracts/SHARED-ID").json()["status"] == "active"


def test_credentials_missing_wrong_or_revoked_are_401(erp: Erp, web: WebServer) -> None:
    with httpx.Client(base_url=web.url) as anon:
        assert anon.get("/api/v1/products").status_code == 401
        assert anon.get("/api/v1/products", auth=(erp.key_id, "wrong")).status_code == 401
        assert anon.get("/api/v1/products", auth=("nobody", erp.secret)).status_code == 401
        reply = anon.put("/api/v1/contracts/X", json={})
        assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Basic")
    from billing import apikeys

    with session_scope(erp_engine(web)) as s:
        apikeys.revoke(s, erp.key_id, actor="test")
    assert erp.http.get("/api/v1/products").status_code == 401


def erp_engine(web: WebServer):  # type: ignore[no-untyped-def]
    return web.server.config.app.state.parts.engine


def test_label_change_upgrades_at_once_and_downgrades_next_month(erp: Erp) -> None:
    customer = customer_body()
    assert erp.put("PC-1", erp.small, **customer).status_code == 201
    up = erp.put("PC-1", erp.large, **customer)
    assert up.status_code == 200
    assert up.json()["label"] == erp.large and up.json()["usage"]["capacity_bytes"] == 10_000_000
    down = erp.put("PC-1", erp.small, **customer).json()
    assert down["label"] == erp.large and down["next_label"] == erp.small
    back = erp.put("PC-1", erp.large, **customer).json()  # the ERP changed its mind
    assert back["next_label"] is None
    actions = [h["action"] for h in erp.http.get("/api/v1/contracts/PC-1/history").json()]
    assert actions == ["created", "upgraded", "downgrade_scheduled", "downgrade_cancelled"]


def test_history_names_each_source(erp: Erp, stack: Stack) -> None:
    from billing import contracts
    from billing.core.models import utcnow

    assert erp.put("H-1").status_code == 201
    assert erp.http.post("/api/v1/contracts/H-1/suspend").json()["status"] == "suspended"
    with session_scope(stack.engine) as s:  # an operator reactivates from the shell
        contract = contracts.get(s, erp.distributor_id, "H-1")
        contracts.act(s, stack.settings, contract, "reactivate", actor="cli", today=utcnow().date())
    history = erp.http.get("/api/v1/contracts/H-1/history").json()
    assert [(h["action"], h["source"]) for h in history] == [
        ("created", f"api_key {erp.key_id}"),
        ("suspend", f"api_key {erp.key_id}"),
        ("reactivate", "cli"),
    ]
    assert history[1]["effect"] == "status active -> suspended"
    assert all(h["at"] for h in history)


def test_a_cancelled_contract_cannot_be_blocked_and_a_repeat_changes_nothing(erp: Erp) -> None:
    assert erp.put("C-1").status_code == 201
    assert erp.http.post("/api/v1/contracts/C-1/cancel").json()["status"] == "cancelled"
    again = erp.http.post("/api/v1/contracts/C-1/cancel")
    assert again.status_code == 200 and again.json()["delete_on"] is not None
    refused = erp.http.post("/api/v1/contracts/C-1/block", json={"level": "partial"})
    assert refused.status_code == 409 and "cancelled" in refused.json()["detail"]
    bad = erp.http.post("/api/v1/contracts/C-1/block", json={"level": "half"})
    assert bad.status_code == 422 and bad.json()["field"] == "level"
    assert len(erp.http.get("/api/v1/contracts/C-1/history").json()) == 2


def test_a_scheduled_downgrade_is_applied_by_the_next_cycle_or_dropped_if_the_drive_outgrew_it(
    erp: Erp, stack: Stack
) -> None:
    import io
    from datetime import timedelta

    from billing import contracts
    from billing.core.models import utcnow

    recorders = {}
    for cid in ("DG-FITS", "DG-FULL"):
        customer = customer_body()
        created = erp.put(cid, erp.large, **customer)
        assert created.status_code == 201
        recorders[cid] = created.json()["device"]
        down = erp.put(cid, erp.small, **customer).json()
        assert (down["label"], down["next_label"]) == (erp.large, erp.small)
    with stack.ftp() as ftp:  # after scheduling, one recorder fills past the smaller plan
        ftp.login(recorders["DG-FULL"]["username"], recorders["DG-FULL"]["password"])
        ftp.storbinary("STOR big.bin", io.BytesIO(b"x" * 2_000_000))

    today = utcnow().date()
    first = (today.replace(day=1) + timedelta(days=32)).replace(day=1)
    with session_scope(stack.engine) as s:  # not before its day
        assert contracts.sweep(s, stack.purger, first - timedelta(days=1)).downgraded == []
    assert erp.http.get("/api/v1/contracts/DG-FITS").json()["label"] == erp.large
    with session_scope(stack.engine) as s:  # the scheduler's erp job on the 1st
        report = contracts.sweep(s, stack.purger, first)
    assert report.downgraded == ["DG-FITS"] and report.kept == ["DG-FULL"]

    smaller = erp.http.get("/api/v1/contracts/DG-FITS").json()
    assert (smaller["label"], smaller["next_label"]) == (erp.small, None)
    assert smaller["usage"]["capacity_bytes"] == 1_000_000
    kept = erp.http.get("/api/v1/contracts/DG-FULL").json()
    assert (kept["label"], kept["next_label"]) == (erp.large, None)
    assert kept["usage"] == {"capacity_bytes": 10_000_000, "committed_bytes": 2_000_000}
    applied = erp.http.get("/api/v1/contracts/DG-FITS/history").json()[-1]
    assert (applied["action"], applied["source"]) == ("downgraded", "billing")
    dropped = erp.http.get("/api/v1/contracts/DG-FULL/history").json()[-1]
    assert (dropped["action"], dropped["source"]) == ("downgrade_dropped", "billing")
    with session_scope(stack.engine) as s:  # nothing left to apply
        assert contracts.sweep(s, stack.purger, first).downgraded == []


def test_a_customer_sent_without_a_password_is_emailed_a_one_time_link(
    erp: Erp, stack: Stack
) -> None:
    import json

    from billing import password_links
    from billing.core.credentials import verify
    from billing.core.errors import InvalidInput
    from billing.core.models import Notification

    chooses, given = customer_body(), customer_body(password="sent-by-the-erp-1")
    assert erp.put("PW-LINK", **chooses).status_code == 201
    assert erp.put("PW-LINK", **chooses).status_code == 200  # an update sends no second link
    assert erp.put("PW-GIVEN", **given).status_code == 201
    with session_scope(stack.engine) as s:
        ids = dict(
            s.exec(
                select(Customer.email, Customer.id).where(
                    col(Customer.email).in_((chooses["email"], given["email"]))
                )
            ).all()
        )
        notes = s.exec(
            select(Notification).where(
                Notification.kind == password_links.NOTIFICATION,
                col(Notification.customer_id).in_(ids.values()),
            )
        ).all()
    customer_id = ids[chooses["email"]]
    assert [n.customer_id for n in notes] == [customer_id]
    link = json.loads(notes[0].payload)["link"]
    assert link.startswith(password_links.url(stack.settings, ""))
    token = link.rsplit("/", 1)[1]
    with session_scope(stack.engine) as s:  # the portal's page does this
        password_links.redeem(s, token, "chosen-by-the-customer-1")
    with session_scope(stack.engine) as s:
        hashed = s.get(Customer, customer_id).password_hash  # type: ignore[union-attr]
        assert hashed and verify(hashed, "chosen-by-the-customer-1")
        with pytest.raises(InvalidInput):  # once only
            password_links.redeem(s, token, "someone-else-9999")
