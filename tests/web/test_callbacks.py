"""Signed callbacks to the ERP, sent from the outbox to a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from billing import callbacks
from billing.core.db import session_scope
from billing.core.models import utcnow
from tests.support.stack import Stack
from tests.support.web import Erp

SECRET = "erp-shared-secret-0123456789"


class Receiver:
    """An ERP's endpoint: records each POST and answers the next status in `answers`."""

    def __init__(self, answers: list[int]) -> None:
        self.answers = answers
        self.received: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.received.append((dict(self.headers), body))
                self.send_response(outer.answers.pop(0) if outer.answers else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/cam2drive"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def verified(headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """What an ERP does: recompute the HMAC over timestamp + body, then trust the JSON."""
    stamp = headers["X-Cam2drive-Timestamp"]
    mac = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Cam2drive-Signature"], f"sha256={mac}")
    return json.loads(body)  # type: ignore[no-any-return]


def test_events_are_signed_sent_outside_requests_and_retried_after_a_500(
    erp: Erp, stack: Stack
) -> None:
    receiver = Receiver([500])
    try:
        with session_scope(stack.engine) as s:
            callbacks.set_endpoint(s, erp.distributor_id, receiver.url, SECRET, actor="test")
        reply = erp.put("CB-1")
        assert reply.status_code == 201
        assert receiver.received == []  # never inside the ERP's own request
        t0 = utcnow()
        first = callbacks.deliver(stack.engine, stack.settings, t0)
        assert (first.sent, first.retrying) == (0, 1)
        assert callbacks.deliver(stack.engine, stack.settings, t0).as_dict() == {
            "sent": 0,
            "retrying": 0,
            "failed": 0,
        }  # backing off
        later = t0 + callbacks.backoff(1) + timedelta(seconds=1)
        assert callbacks.deliver(stack.engine, stack.settings, later).sent == 1
        assert len(receiver.received) == 2
        (h1, b1), (h2, b2) = receiver.received
        assert b1 == b2 and h1["X-Cam2drive-Delivery"] == h2["X-Cam2drive-Delivery"]
        event = verified(h2, b2)
        assert event["event"] == "contract.activated" == h2["X-Cam2drive-Event"]
        assert event["data"]["contract_id"] == "CB-1"
        assert event["data"]["device"] == reply.json()["device"]["username"]
        forged = dict(h2, **{"X-Cam2drive-Signature": "sha256=" + "0" * 64})
        with pytest.raises(AssertionError):
            verified(forged, b2)

        # a drive at 90 % of its plan, once a month; a cancellation tells its deletion day
        with stack.ftp() as ftp:
            ftp.login(reply.json()["device"]["username"], reply.json()["device"]["password"])
            ftp.storbinary("STOR big.bin", io.BytesIO(b"x" * 950_000))
        with session_scope(stack.engine) as s:
            assert callbacks.collect(s) >= 1
        with session_scope(stack.engine) as s:
            assert callbacks.collect(s) == 0
        erp.http.post("/api/v1/contracts/CB-1/cancel")
        assert callbacks.deliver(stack.engine, stack.settings, later).sent == 2
        events = {verified(h, b)["event"]: verified(h, b)["data"] for h, b in receiver.received[2:]}
        assert events["drive.quota_90"]["committed_bytes"] == 950_000
        assert (
            events["drive.deletion_scheduled"]["delete_on"]
            == (erp.http.get("/api/v1/contracts/CB-1").json()["delete_on"])
        )
    finally:
        receiver.close()


def test_a_distributor_without_an_endpoint_queues_nothing(erp: Erp, stack: Stack) -> None:
    from sqlmodel import select

    from billing.core.models import CallbackEvent

    assert erp.put("CB-NONE").status_code == 201
    with session_scope(stack.engine) as s:
        rows = s.exec(
            select(CallbackEvent).where(CallbackEvent.distributor_id == erp.distributor_id)
        ).all()
    assert rows == []


def test_a_silent_recorder_and_its_recovery_reach_the_erp_signed(erp: Erp, stack: Stack) -> None:
    import time

    from billing.core.settings import Settings
    from billing.notify import outbox

    receiver = Receiver([])
    quick = stack.settings.model_copy(update={"silent_hours": 1 / 3600})  # silent after 1 s
    assert stack.settings.silent_hours >= 1

    def cycle(settings: Settings = stack.settings) -> list[dict[str, Any]]:
        """What the scheduler does: notify collects, the erp job queues and delivers."""
        outbox.collect(stack.engine, settings)
        with session_scope(stack.engine) as s:
            callbacks.collect(s)
        seen = len(receiver.received)
        callbacks.deliver(stack.engine, stack.settings)
        return [verified(h, b) for h, b in receiver.received[seen:]]

    try:
        with session_scope(stack.engine) as s:
            callbacks.set_endpoint(s, erp.distributor_id, receiver.url, SECRET, actor="test")
        device = erp.put("CB-QUIET").json()["device"]
        with stack.ftp() as ftp:
            ftp.login(device["username"], device["password"])
            ftp.storbinary("STOR a.jpg", io.BytesIO(b"jpeg"))
        assert [e["event"] for e in cycle()] == ["contract.activated"]  # still uploading
        time.sleep(1.5)
        silent = cycle(quick)
        assert [e["event"] for e in silent] == ["device.silent"]
        assert silent[0]["data"]["contract_id"] == "CB-QUIET"
        assert receiver.received[-1][0]["X-Cam2drive-Event"] == "device.silent"
        assert cycle(quick) == []  # reported once, not at every cycle
        with stack.ftp() as ftp:
            ftp.login(device["username"], device["password"])
            ftp.storbinary("STOR b.jpg", io.BytesIO(b"jpeg"))
        back = cycle(quick)
        assert [e["event"] for e in back] == ["device.recovered"]
        assert back[0]["data"]["contract_id"] == "CB-QUIET" and back[0]["data"]["recovered_at"]
        assert cycle() == []
    finally:
        receiver.close()
