"""A local Mercado Pago emulator: the endpoints cam2drive uses, over real HTTP.

For tests and `make run`: the official `mercadopago` SDK talks to it exactly
as to api.mercadopago.com (same paths, JSON shapes and error bodies), so the
code under test is the code that runs in production.

Endpoints (Mercado Pago's):
  POST /preapproval_plan                 a plan: monthly amount, billing_day, billing_day_proportional
  GET  /preapproval_plan/{id}            read it
  POST /preapproval                      create a recurring charge (status pending, init_point),
                                         alone or on a plan (preapproval_plan_id)
  GET  /preapproval/{id}                 read it
  PUT  /preapproval/{id}                 change status (cancelled, paused) or amount
  GET  /preapproval/search               by external_reference, payer_email, status
  GET  /authorized_payments/search       installments of a preapproval (preapproval_id=)
  POST /v1/payments                      one-off payment (X-Idempotency-Key honoured)
  GET  /v1/payments/{id}
  GET  /v1/payments/search               by external_reference, and a date window
                                         (range=date_last_updated|date_created,
                                         begin_date, end_date), sort, criteria,
                                         offset, limit (at most 1000 per page here)

Control (the emulator's own, documented in README):
  POST /__emulator/behaviour  {"payer_email"| "external_reference", "outcome":
                               "approve"|"reject"|"timeout"|"email_mismatch"}
                              {"failing_path": "/v1/payments/search", "outcome": "error"|""}
                               an endpoint answers 500 until told otherwise; a path
                               with "?key=value" fails only for that query
                               parameter (one subscription's installments)
  POST /__emulator/authorize/{preapproval_id}   the payer accepts at checkout
  POST /__emulator/clock      {"date": "YYYY-MM-DD"}  run installments due up to that date
  POST /__emulator/payments/{id} {"status": "approved"|"rejected"}  settle an in-process payment
  GET  /__emulator/state                         everything, for debugging
  POST /__emulator/seed  {"preapproval_plan_id": P, "payers": [{"payer_email", "external_reference"}]}
                         many preapprovals created and accepted at once (benchmarks)
  POST /__emulator/preferences/{id}/pay {"payer_email", "outcome"?}  the payer pays a
                         Checkout Pro preference at its init_point (refused once expired)

Also: GET /authorized_payments/{id}; POST /checkout/preferences and GET
/checkout/preferences/{id} (Checkout Pro, for pay-now links).

Webhooks: built with `notification_url` and `webhook_secret` (what "Your
integrations > Webhooks" configures at Mercado Pago), the emulator POSTs a
notification for every change, signed as Mercado Pago signs them:
`?data.id=<id>&type=<topic>`, body {action, api_version, data: {id}, type, ...},
headers `x-request-id` and `x-signature: ts=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"id:<data.id lower-cased>;request-id:<x-request-id>;ts:<ts>;")>`
(https://mercadopago.com.mx/developers/en/docs/links-and-debts/additional-content/your-integrations/notifications/webhooks).
Topics (https://www.mercadopago.com.mx/developers/en/docs/your-integrations/notifications):
`subscription_preapproval` (a preapproval created or changed),
`subscription_authorized_payment` (an installment charged) and `payment`
(every payment created or changed). A preference's own `notification_url`
takes precedence for its payments, as the page says. Each delivery is made
once, from its own thread, and recorded in `deliveries`; Mercado Pago's
retries of unanswered deliveries are not emulated.

With a plan's `billing_day` the first installment is charged at
authorisation and every later one on that day of the month; with
`billing_day_proportional` the first is price x min(d, 30) / 30 (d = days
to the next billing day, full price on the day itself), as Mercado Pago
documents for "monto proporcional".

Installments follow Mercado Pago's retry behaviour: a declined installment
is retried up to 4 times within 10 days (days 0, 2, 4, 7, 10 of its debit
date); after 3 installments rejected in a row the preapproval is cancelled.
Every attempt is a payment, as in Mercado Pago: `operation_type`
"recurring_payment", and `point_of_interaction.transaction_data` names the
preapproval (`subscription_id`) and the installment's `billing_date`; its
dates are the emulator's clock (`/__emulator/clock`), at noon UTC.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

SEARCH_LIMIT = 1000  # the emulator's page size cap; clients follow `paging` as returned
RETRY_OFFSETS = (0, 2, 4, 7, 10)  # first attempt + 4 retries within 10 days
MAX_REJECTED_INSTALLMENTS = 3


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _error(status: int, message: str, error: str, cause: str | None = None) -> tuple[int, dict]:
    body: dict[str, Any] = {"message": message, "error": error, "status": status, "cause": []}
    if cause:
        body["cause"] = [{"code": error, "description": cause}]
    return status, body


def _found(table: dict[str, dict], key: str, what: str) -> tuple[int, Any]:
    item = table.get(key)
    return (200, item) if item is not None else _error(404, f"{what} {key} not found", "not_found")


@dataclass
class _State:
    plans: dict[str, dict] = field(default_factory=dict)
    preapprovals: dict[str, dict] = field(default_factory=dict)
    installments: dict[str, list[dict]] = field(default_factory=dict)
    payments: dict[str, dict] = field(default_factory=dict)
    idempotency: dict[str, tuple[int, dict]] = field(default_factory=dict)
    behaviour: dict[str, str] = field(default_factory=dict)  # email/ext ref -> outcome
    calls: list[dict] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)  # paths that answer 500
    preferences: dict[str, dict] = field(default_factory=dict)
    today: date = field(default_factory=date.today)
    next_id: int = 1000
    version: int = 0  # bumped on every payment change: invalidates `search_cache`
    search_cache: tuple[Any, int, list[dict]] | None = None


class MercadoPagoEmulator:
    """`with MercadoPagoEmulator() as mp: mp.url` — a server on a free loopback port."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        timeout_seconds: float = 5.0,
        today: date | None = None,
        page_limit: int = 20,
        retry_offsets: tuple[int, ...] = RETRY_OFFSETS,
        max_rejected_installments: int = MAX_REJECTED_INSTALLMENTS,
        notification_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.notification_url, self.webhook_secret = notification_url, webhook_secret
        self.deliveries: list[dict[str, Any]] = []  # every webhook sent: topic, id, status
        self.page_limit = page_limit
        # Mercado Pago documents that it retries a declined installment, not on
        # which days nor after how many declines it gives up: both are settings
        self.retry_offsets = retry_offsets
        self.max_rejected_installments = max_rejected_installments
        self.state = _State()
        if today is not None:
            self.state.today = today
        self.lock = threading.RLock()
        self.timeout_seconds = timeout_seconds
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in two writes: without this, Nagle and the
            # client's delayed ACK add 40 ms to every reply on a kept-alive connection
            disable_nagle_algorithm = True

            def log_message(self, fmt: str, *args: Any) -> None:  # quiet
                pass

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body, default=str).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                try:
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a "timeout" outcome): nothing to do

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    self._send(*_error(400, "invalid JSON body", "bad_request"))
                    return
                if not self.path.startswith("/__emulator") and not self.headers.get(
                    "Authorization", ""
                ).startswith("Bearer "):
                    self._send(*_error(401, "invalid access token", "unauthorized"))
                    return
                url = urlparse(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                status, out = emulator.dispatch(
                    method, url.path, query, body, self.headers.get("X-Idempotency-Key")
                )
                if status == 0:  # "timeout": hold the request past the client's patience
                    time.sleep(emulator.timeout_seconds)
                    status, out = 504, {"message": "gateway timeout", "status": 504}
                self._send(status, out)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> MercadoPagoEmulator:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> MercadoPagoEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- dispatch ---------------------------------------------------------------

    def dispatch(
        self, method: str, path: str, query: dict[str, str], body: dict, idem_key: str | None
    ) -> tuple[int, Any]:
        with self.lock:
            self.state.calls.append(
                {"method": method, "path": path, "key": idem_key, "query": query}
            )
            if path in self.state.failing or any(
                f"{path}?{k}={v}" in self.state.failing for k, v in query.items()
            ):
                return _error(500, "internal server error", "internal_error")
            routes: list[tuple[str, str, Any]] = [
                ("POST", r"/preapproval_plan", self._create_plan),
                ("GET", r"/preapproval_plan/(?P<id>[\w-]+)", self._get_plan),
                ("POST", r"/preapproval", self._create_preapproval),
                ("GET", r"/preapproval/search", self._search_preapprovals),
                ("GET", r"/preapproval/(?P<id>[\w-]+)", self._get_preapproval),
                ("PUT", r"/preapproval/(?P<id>[\w-]+)", self._update_preapproval),
                ("GET", r"/authorized_payments/search", self._search_installments),
                ("GET", r"/authorized_payments/(?P<id>\d+)", self._get_installment),
                ("POST", r"/checkout/preferences", self._create_preference),
                ("GET", r"/checkout/preferences/(?P<id>[\w-]+)", self._get_preference),
                ("POST", r"/__emulator/preferences/(?P<id>[\w-]+)/pay", self._pay_preference),
                ("POST", r"/v1/payments", self._create_payment),
                ("GET", r"/v1/payments/search", self._search_payments),
                ("GET", r"/v1/payments/(?P<id>\d+)", self._get_payment),
                ("POST", r"/__emulator/behaviour", self._set_behaviour),
                ("POST", r"/__emulator/authorize/(?P<id>[\w-]+)", self._authorize),
                ("POST", r"/__emulator/subscribe", self._subscribe),
                ("POST", r"/__emulator/clock", self._clock),
                ("POST", r"/__emulator/payments/(?P<id>\d+)", self._settle_payment),
                ("GET", r"/__emulator/state", self._dump),
                ("POST", r"/__emulator/seed", self._seed),
            ]
            for verb, pattern, fn in routes:
                match = re.fullmatch(pattern, path)
                if verb == method and match:
                    if idem_key and method == "POST" and not path.startswith("/__"):
                        cached = self.state.idempotency.get(f"{path}|{idem_key}")
                        if cached is not None:
                            return cached
                        result = fn(body=body, query=query, **match.groupdict())
                        if 200 <= result[0] < 300:  # what was done is replayed, refusals are not
                            self.state.idempotency[f"{path}|{idem_key}"] = result
                        return result
                    return fn(body=body, query=query, **match.groupdict())
            return _error(404, f"resource {path} not found", "not_found")

    def _id(self) -> int:
        self.state.next_id += 1
        return self.state.next_id

    def _outcome(self, *who: str | None) -> str:
        for key in who:
            if key and key in self.state.behaviour:
                return self.state.behaviour[key]
        return "approve"

    # --- plans ----------------------------------------------------------------------

    def _create_plan(self, body: dict, query: dict) -> tuple[int, Any]:
        rec = body.get("auto_recurring") or {}
        if not body.get("reason") or not rec.get("transaction_amount"):
            return _error(
                400, "reason and auto_recurring.transaction_amount are required", "bad_request"
            )
        day = rec.get("billing_day")
        if day is not None and not (isinstance(day, int) and 1 <= day <= 28):
            return _error(400, "billing_day must be between 1 and 28", "bad_request")
        if rec.get("billing_day_proportional") and (
            rec.get("frequency", 1) != 1 or rec.get("frequency_type", "months") != "months"
        ):
            return _error(
                400,
                "billing_day_proportional needs frequency 1 and frequency_type months",
                "bad_request",
            )
        pid = uuid.uuid4().hex
        plan = {
            "id": pid,
            "reason": body["reason"],
            "status": "active",
            "back_url": body.get("back_url"),
            "date_created": _now(),
            "init_point": "https://www.mercadopago.com.mx/subscriptions/checkout"
            f"?preapproval_plan_id={pid}",
            "auto_recurring": {
                "frequency": rec.get("frequency", 1),
                "frequency_type": rec.get("frequency_type", "months"),
                "transaction_amount": rec["transaction_amount"],
                "currency_id": rec.get("currency_id", "MXN"),
                "billing_day": day,
                "billing_day_proportional": bool(rec.get("billing_day_proportional")),
            },
        }
        self.state.plans[pid] = plan
        return 201, plan

    def _get_plan(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        return _found(self.state.plans, id, "preapproval_plan")

    # --- preapprovals -------------------------------------------------------------

    def _create_preapproval(
        self, body: dict, query: dict, checkout: bool = False
    ) -> tuple[int, Any]:
        email = body.get("payer_email")
        recurring = dict(body.get("auto_recurring") or {})
        plan = None
        if body.get("preapproval_plan_id"):
            plan = self.state.plans.get(body["preapproval_plan_id"])
            if plan is None:
                return _error(
                    404, f"preapproval_plan {body['preapproval_plan_id']} not found", "not_found"
                )
            recurring = {**plan["auto_recurring"], **recurring}
        if not email or not recurring.get("transaction_amount"):
            return _error(
                400, "payer_email and auto_recurring.transaction_amount are required", "bad_request"
            )
        if plan is not None and not body.get("card_token_id") and not checkout:
            # a subscription with an associated plan is created with the payer's card
            # token: https://www.mercadopago.com.mx/developers/en/docs/subscriptions/integration-configuration/subscription-associated-plan
            return _error(
                400,
                "card_token_id is required to subscribe to a preapproval_plan",
                "bad_request",
            )
        outcome = self._outcome(email, body.get("external_reference"))
        if outcome == "timeout":
            return 0, {}
        if outcome == "email_mismatch":
            return _error(
                400,
                "Cannot operate between different countries or the payer email "
                "does not belong to a Mercado Pago account",
                "bad_request",
                "payer_email must be the email of the payer's Mercado Pago account",
            )
        pid = uuid.uuid4().hex
        start = recurring.get("start_date") or self.state.today.isoformat()
        pre = {
            "id": pid,
            "payer_id": None,
            "payer_email": email,
            "status": "pending",
            "reason": body.get("reason"),
            "external_reference": body.get("external_reference"),
            "back_url": body.get("back_url"),
            "date_created": _now(),
            "last_modified": _now(),
            "init_point": f"https://www.mercadopago.com.mx/subscriptions/checkout?preapproval_id={pid}",
            "preapproval_plan_id": plan["id"] if plan else None,
            "auto_recurring": {
                "frequency": recurring.get("frequency", 1),
                "frequency_type": recurring.get("frequency_type", "months"),
                "transaction_amount": recurring["transaction_amount"],
                "currency_id": recurring.get("currency_id", "MXN"),
                "start_date": start,
                "billing_day": recurring.get("billing_day"),
                "billing_day_proportional": bool(recurring.get("billing_day_proportional")),
            },
            "next_payment_date": start,
            "summarized": {"charged_quantity": 0, "semaphore": "green"},
            "rejected_in_a_row": 0,
        }
        self.state.preapprovals[pid] = pre
        self.state.installments[pid] = []
        return 201, pre

    def _get_preapproval(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        return _found(self.state.preapprovals, id, "preapproval")

    def _update_preapproval(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        pre = self.state.preapprovals.get(id)
        if pre is None:
            return _error(404, f"preapproval {id} not found", "not_found")
        if "status" in body:
            if body["status"] not in ("cancelled", "paused", "authorized"):
                return _error(400, f"invalid status {body['status']}", "bad_request")
            if pre["status"] == "cancelled":
                return _error(400, "a cancelled preapproval cannot be modified", "bad_request")
            pre["status"] = body["status"]
        amount = (body.get("auto_recurring") or {}).get("transaction_amount")
        if amount is not None:
            pre["auto_recurring"]["transaction_amount"] = amount
        pre["last_modified"] = _now()
        self._notify("subscription_preapproval", pre["id"])
        return 200, pre

    def _page(self, results: list[dict], query: dict) -> tuple[int, Any]:
        """One page of a search: `offset`, `limit` (default 20, as the docs' sample
        answer), `paging` {offset, limit, total}. The largest page Mercado Pago
        serves is not documented: `page_limit` (constructor) caps it here."""
        try:
            offset = int(query.get("offset", 0))
            limit = min(int(query.get("limit", 20)), self.page_limit)
        except ValueError:
            return _error(400, "offset and limit must be integers", "bad_request")
        if offset < 0 or limit < 1:
            return _error(400, "invalid offset or limit", "bad_request")
        return 200, {
            "paging": {"offset": offset, "limit": limit, "total": len(results)},
            "results": results[offset : offset + limit],
        }

    def _search_preapprovals(self, body: dict, query: dict) -> tuple[int, Any]:
        """GET /preapproval/search by payer_email, preapproval_plan_id (and the
        emulator also filters external_reference, status), paged:
        https://www.mercadopago.com.mx/developers/en/reference/subscriptions/_preapproval_search/get"""
        fields = ("external_reference", "payer_email", "status", "preapproval_plan_id")
        results = [
            p
            for p in self.state.preapprovals.values()
            if all(str(p.get(k)) == v for k, v in query.items() if k in fields)
        ]
        return self._page(results, query)

    def _get_installment(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        """GET /authorized_payments/{id}:
        https://www.mercadopago.com.br/developers/es/reference/online-payments/subscriptions/get-authorized-payment/get.md"""
        for insts in self.state.installments.values():
            for inst in insts:
                if str(inst["id"]) == id:
                    return 200, inst
        return _error(404, f"authorized_payment {id} not found", "not_found")

    def _search_installments(self, body: dict, query: dict) -> tuple[int, Any]:
        """GET /authorized_payments/search?preapproval_id=…, paged (offset, limit):
        https://www.mercadopago.com.mx/developers/es/reference/online-payments/subscriptions/authorized-payment-search/get.md"""
        pid = query.get("preapproval_id")
        return self._page(list(self.state.installments.get(pid or "", [])), query)

    # --- one-off payments -----------------------------------------------------------

    def _create_payment(self, body: dict, query: dict) -> tuple[int, Any]:
        amount = body.get("transaction_amount")
        payer = (body.get("payer") or {}).get("email")
        if amount is None or not payer:
            return _error(400, "transaction_amount and payer.email are required", "bad_request")
        outcome = self._outcome(body.get("external_reference"), payer)
        if outcome == "timeout":
            return 0, {}
        approved = outcome not in ("reject", "in_process")
        state, detail = (
            ("approved", "accredited")
            if approved
            else ("in_process", "pending_review_manual")
            if outcome == "in_process"
            else ("rejected", "cc_rejected_insufficient_amount")
        )
        pay = {
            "id": self._id(),
            "status": state,
            "status_detail": detail,
            "transaction_amount": amount,
            "currency_id": body.get("currency_id", "MXN"),
            "description": body.get("description"),
            "external_reference": body.get("external_reference"),
            "payer": {"email": payer},
            "date_created": _now(),
            "date_last_updated": _now(),
            "date_approved": _now() if approved else None,
        }
        self._store_payment(pay)
        self._notify("payment", pay["id"])
        return 201, pay

    def _store_payment(self, pay: dict) -> None:
        """Every new or changed payment goes through here: it invalidates `search_cache`."""
        self.state.payments[str(pay["id"])] = pay
        self.state.version += 1

    def _get_payment(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        return _found(self.state.payments, id, "payment")

    def _search_payments(self, body: dict, query: dict) -> tuple[int, Any]:
        try:
            offset = int(query.get("offset", 0))
            limit = min(int(query.get("limit", 30)), SEARCH_LIMIT)
            window = (
                (self._when(query["begin_date"]), self._when(query["end_date"]))
                if "begin_date" in query or "end_date" in query
                else None
            )
        except (KeyError, ValueError):
            return _error(
                400,
                "offset and limit must be integers; begin_date and end_date "
                "go together, as ISO 8601 dates or NOW[-nDAYS]",
                "bad_request",
            )
        field_ = query.get("range", "date_created")
        sort, desc = query.get("sort", "date_created"), query.get("criteria") == "desc"
        if (
            field_ not in ("date_created", "date_last_updated")
            or sort not in ("date_created", "date_last_updated", "id")
            or offset < 0
            or limit < 1
        ):
            return _error(400, "invalid range, sort, offset or limit", "bad_request")
        key = (query.get("external_reference"), window, field_, sort, desc)
        cached = self.state.search_cache
        if cached is not None and cached[0] == key and cached[1] == self.state.version:
            results = cached[2]  # the next page of the same search: no new scan
        else:
            ref = key[0]
            results = [
                p
                for p in self.state.payments.values()
                if (ref is None or p.get("external_reference") == ref)
                and (window is None or window[0] <= _parse(p[field_]) <= window[1])
            ]
            results.sort(
                key=lambda p: (p["id"] if sort == "id" else _parse(p[sort]), p["id"]), reverse=desc
            )
            self.state.search_cache = (key, self.state.version, results)
        return 200, {
            "paging": {"total": len(results), "limit": limit, "offset": offset},
            "results": results[offset : offset + limit],
        }

    def _when(self, text: str) -> datetime:
        """Mercado Pago's date filters: ISO 8601, or NOW / NOW-nDAYS on the emulator's clock."""
        relative = re.fullmatch(r"NOW(?:-(\d+)DAYS)?", text)
        if relative:
            end_of_day = datetime(
                self.state.today.year,
                self.state.today.month,
                self.state.today.day,
                23,
                59,
                59,
                tzinfo=UTC,
            )
            return end_of_day - timedelta(days=int(relative.group(1) or 0))
        return _parse(text)

    # --- control ------------------------------------------------------------------

    def _set_behaviour(self, body: dict, query: dict) -> tuple[int, Any]:
        if "failing_path" in body:  # an endpoint that answers 500 (or again 200 with "")
            path = str(body["failing_path"])
            if body.get("outcome") == "error":
                self.state.failing.add(path)
            else:
                self.state.failing.discard(path)
            return 200, {"ok": True, "failing": sorted(self.state.failing)}
        who = body.get("payer_email") or body.get("external_reference")
        outcome = body.get("outcome")
        if not who or outcome not in (
            "approve",
            "reject",
            "timeout",
            "email_mismatch",
            "in_process",
        ):
            return _error(
                400,
                "need payer_email or external_reference, and an outcome of "
                "approve|reject|timeout|email_mismatch|in_process",
                "bad_request",
            )
        self.state.behaviour[who] = outcome
        return 200, {"ok": True, who: outcome}

    def _authorize(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        pre = self.state.preapprovals.get(id)
        if pre is None:
            return _error(404, f"preapproval {id} not found", "not_found")
        self._accept(pre)
        self._run_due(self.state.today)
        return 200, pre

    def _subscribe(self, body: dict, query: dict) -> tuple[int, Any]:
        """The payer subscribes at a plan's `init_point` with their Mercado Pago account
        (`payer_email`): an authorized preapproval on the plan, its first installment
        charged at once (proportional to the billing day when the plan says so)."""
        status, pre = self._create_preapproval(
            {
                "preapproval_plan_id": body.get("preapproval_plan_id"),
                "payer_email": body.get("payer_email"),
                "reason": "checkout",
                # the emulator's own label, so /__emulator/behaviour can steer
                # this payer's installments; cam2drive never reads it
                "external_reference": body.get("external_reference"),
            },
            {},
            checkout=True,
        )
        if status != 201:
            return status, pre
        self._accept(pre)
        self._run_due(self.state.today)
        return 201, pre

    def _seed(self, body: dict, query: dict) -> tuple[int, Any]:
        """Many payers subscribe and accept at once (benchmarks): one pass over the book."""
        plan_id, payers = body.get("preapproval_plan_id"), body.get("payers")
        if plan_id not in self.state.plans or not isinstance(payers, list):
            return _error(
                400, "need an existing preapproval_plan_id and a list of payers", "bad_request"
            )
        ids = []
        for payer in payers:
            status, pre = self._create_preapproval(
                {"preapproval_plan_id": plan_id, "reason": "seed", **payer}, {}, checkout=True
            )
            if status != 201:
                return status, pre
            self._accept(pre)
            ids.append(pre["id"])
        self._run_due(self.state.today)
        return 201, {"ids": ids}

    def _accept(self, pre: dict) -> None:
        pre["status"] = "authorized"
        self._notify("subscription_preapproval", pre["id"])
        pre["payer_id"] = self._id()
        rec = pre["auto_recurring"]
        if rec.get("billing_day"):
            today = self.state.today
            amount = Decimal(str(rec["transaction_amount"]))
            if rec.get("billing_day_proportional") and today.day != rec["billing_day"]:
                nxt = _next_billing(today, rec["billing_day"])
                days = min((nxt - today).days, 30)
                amount = (amount * days / 30).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
            self._schedule(pre, today, amount=float(amount))
        else:
            self._schedule(pre, date.fromisoformat(rec["start_date"][:10]))

    def _clock(self, body: dict, query: dict) -> tuple[int, Any]:
        try:
            new = date.fromisoformat(body["date"])
        except (KeyError, ValueError):
            return _error(400, "date must be YYYY-MM-DD", "bad_request")
        if new < self.state.today:
            return _error(400, "the emulator's clock only moves forward", "bad_request")
        day = self.state.today
        while day <= new:
            self._run_due(day)
            day += timedelta(days=1)
        self.state.today = new
        return 200, {"today": new.isoformat()}

    def _settle_payment(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        """Settle, refund or charge back a payment; statuses and details as listed in
        https://www.mercadopago.com.mx/developers/en/docs/checkout-api-payments/response-handling/query-results.md"""
        details = {
            "approved": "accredited",
            "rejected": "cc_rejected_other_reason",
            "refunded": "refunded",
            "charged_back": "settled",
        }
        pay = self.state.payments.get(id)
        if pay is None or body.get("status") not in details:
            return _error(
                400,
                "need an existing payment and a status approved|rejected|refunded|charged_back",
                "bad_request",
            )
        pay["status"] = body["status"]
        pay["status_detail"] = details[body["status"]]
        pay["date_last_updated"] = _now()
        self._store_payment(pay)
        for insts in self.state.installments.values():  # the installment names its payment
            for inst in insts:
                if (inst.get("payment") or {}).get("id") == pay["id"]:
                    inst["payment"]["status"] = pay["status"]
                    inst["payment"]["status_detail"] = pay["status_detail"]
        self._notify("payment", pay["id"], self._notify_url_of(pay))
        return 200, pay

    def _dump(self, body: dict, query: dict) -> tuple[int, Any]:
        return 200, {
            "today": self.state.today.isoformat(),
            "preapprovals": self.state.preapprovals,
            "installments": self.state.installments,
            "payments": self.state.payments,
            "calls": len(self.state.calls),
        }

    # --- Checkout Pro preferences (pay-now links) -----------------------------------

    def _create_preference(self, body: dict, query: dict) -> tuple[int, Any]:
        """POST /checkout/preferences: `items` (title, quantity, unit_price,
        currency_id), `external_reference`, `notification_url`, `expires`,
        `expiration_date_to`; answered with `id` and `init_point`:
        https://www.mercadopago.com.mx/developers/en/guides/online-payments/checkout-pro/configurations"""
        items = body.get("items")
        if (
            not isinstance(items, list)
            or not items
            or not all(
                isinstance(i, dict) and i.get("title") and i.get("quantity") and "unit_price" in i
                for i in items
            )
        ):
            return _error(
                400, "items with title, quantity and unit_price are required", "bad_request"
            )
        if body.get("expires") and not body.get("expiration_date_to"):
            return _error(400, "expires needs expiration_date_to", "bad_request")
        if self._outcome(body.get("external_reference")) == "timeout":
            return 0, {}
        pid = f"{self._id()}-{uuid.uuid4()}"
        pref = {
            **body,
            "id": pid,
            "date_created": _now(),
            "init_point": f"https://www.mercadopago.com.mx/checkout/v1/redirect?pref_id={pid}",
        }
        self.state.preferences[pid] = pref
        return 201, pref

    def _get_preference(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        return _found(self.state.preferences, id, "preference")

    def _pay_preference(self, body: dict, query: dict, id: str) -> tuple[int, Any]:
        """The payer pays at the preference's init_point: a payment with the
        preference's `external_reference`, notified to its `notification_url`."""
        pref = self.state.preferences.get(id)
        if pref is None or not body.get("payer_email"):
            return _error(400, "need an existing preference and a payer_email", "bad_request")
        if pref.get("expires") and _parse(str(pref["expiration_date_to"])) < datetime.combine(
            self.state.today, datetime.min.time(), UTC
        ):
            return _error(400, "the preference has expired", "bad_request")
        approved = body.get("outcome", "approve") != "reject"
        pay = {
            "id": self._id(),
            "status": "approved" if approved else "rejected",
            "status_detail": "accredited" if approved else "cc_rejected_other_reason",
            "payment_type_id": "credit_card",
            "transaction_amount": sum(
                float(i["unit_price"]) * int(i["quantity"]) for i in pref["items"]
            ),
            "currency_id": pref["items"][0].get("currency_id", "MXN"),
            "description": pref["items"][0]["title"],
            "external_reference": pref.get("external_reference"),
            "preference_id": id,
            "payer": {"email": body["payer_email"]},
            "date_created": _now(),
            "date_last_updated": _now(),
            "date_approved": _now() if approved else None,
        }
        self._store_payment(pay)
        self._notify("payment", pay["id"], pref.get("notification_url"))
        return 201, pay

    # --- webhooks -------------------------------------------------------------------

    def _notify_url_of(self, pay: dict) -> str | None:
        pref = self.state.preferences.get(str(pay.get("preference_id")))
        return pref.get("notification_url") if pref else None

    def _notify(self, topic: str, resource_id: object, url: str | None = None) -> None:
        """Send a signed notification (see the module docstring), off the lock."""
        url = url or self.notification_url
        if not url or not self.webhook_secret:
            return
        data_id, request_id, ts = str(resource_id), str(uuid.uuid4()), str(int(time.time()))
        manifest = f"id:{data_id.lower()};request-id:{request_id};ts:{ts};"
        digest = hmac.new(self.webhook_secret.encode(), manifest.encode(), hashlib.sha256)
        body = {
            "id": self._id(),
            "action": f"{topic}.updated",
            "api_version": "v1",
            "type": topic,
            "data": {"id": data_id},
            "date_created": _now(),
            "live_mode": False,
            "user_id": 1,
        }
        req = urllib.request.Request(
            f"{url}{'&' if '?' in url else '?'}data.id={data_id}&type={topic}",
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "x-request-id": request_id,
                "x-signature": f"ts={ts},v1={digest.hexdigest()}",
            },
        )
        record: dict[str, Any] = {"topic": topic, "id": data_id, "status": None}
        self.deliveries.append(record)

        def deliver() -> None:
            try:
                with urllib.request.urlopen(req, timeout=22) as resp:  # MP waits 22 s
                    record["status"] = resp.status
            except urllib.error.HTTPError as exc:
                record["status"] = exc.code
            except OSError as exc:
                record["status"] = f"unreachable: {exc}"

        threading.Thread(target=deliver, daemon=True).start()

    # --- installments ---------------------------------------------------------------

    def _schedule(self, pre: dict, debit: date, amount: float | None = None) -> None:
        self.state.installments[pre["id"]].append(
            {
                "id": self._id(),
                "preapproval_id": pre["id"],
                "type": "recurring",
                "status": "scheduled",
                "debit_date": debit.isoformat(),
                "retry_attempt": 0,
                "transaction_amount": (
                    pre["auto_recurring"]["transaction_amount"] if amount is None else amount
                ),
                "fixed_amount": amount is not None,  # the prorated first installment
                "currency_id": pre["auto_recurring"]["currency_id"],
                "date_created": _now(),
                "payment": None,
            }
        )
        pre["next_payment_date"] = debit.isoformat()

    def _run_due(self, today: date) -> None:
        for pre in self.state.preapprovals.values():
            if pre["status"] != "authorized":
                continue
            for inst in self.state.installments[pre["id"]]:
                if inst["status"] not in ("scheduled", "recycling"):
                    continue
                debit = date.fromisoformat(inst["debit_date"])
                attempt = inst["retry_attempt"]
                if (
                    attempt >= len(self.retry_offsets)
                    or debit + timedelta(days=self.retry_offsets[attempt]) > today
                ):
                    continue
                self._attempt(pre, inst, today)

    def _attempt(self, pre: dict, inst: dict, today: date) -> None:
        if inst["retry_attempt"] == 0 and not inst.get("fixed_amount"):
            # the amount is the preapproval's at debit time (a change applies next cycle)
            inst["transaction_amount"] = pre["auto_recurring"]["transaction_amount"]
        outcome = self._outcome(pre.get("external_reference"), pre.get("payer_email"))
        approved = outcome != "reject"
        moment = f"{today}T12:00:00.000Z"
        pay = {
            "id": self._id(),
            "status": "approved" if approved else "rejected",
            "status_detail": "accredited" if approved else "cc_rejected_insufficient_amount",
            "operation_type": "recurring_payment",
            "transaction_amount": inst["transaction_amount"],
            "currency_id": inst["currency_id"],
            "date_created": moment,
            "date_last_updated": moment,
            "date_approved": moment if approved else None,
            "external_reference": pre.get("external_reference"),
            "point_of_interaction": {
                "type": "SUBSCRIPTIONS",
                "transaction_data": {
                    "subscription_id": pre["id"],
                    "billing_date": inst["debit_date"],
                    "subscription_sequence": {"number": None, "total": None},
                },
            },
        }
        self._store_payment(pay)
        inst["payment"] = {
            "id": pay["id"],
            "status": pay["status"],
            "status_detail": pay["status_detail"],
        }
        inst["retry_attempt"] += 1
        self._notify("payment", pay["id"])
        self._notify("subscription_authorized_payment", inst["id"])
        if approved:
            inst["status"] = "processed"
            pre["rejected_in_a_row"] = 0
            pre["summarized"]["charged_quantity"] += 1
            self._schedule(pre, self._after(pre, date.fromisoformat(inst["debit_date"])))
            return
        if inst["retry_attempt"] < len(self.retry_offsets):
            inst["status"] = "recycling"
            return
        inst["status"] = "rejected"
        pre["rejected_in_a_row"] += 1
        if pre["rejected_in_a_row"] >= self.max_rejected_installments:
            pre["status"] = "cancelled"
        else:
            self._schedule(pre, self._after(pre, date.fromisoformat(inst["debit_date"])))

    @staticmethod
    def _after(pre: dict, debit: date) -> date:
        """The next installment's date: the plan's billing day, else a month later."""
        day = pre["auto_recurring"].get("billing_day")
        return _next_billing(debit, day) if day else _next_month(debit)


def _parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _next_billing(day: date, billing_day: int) -> date:
    if day.day < billing_day:
        return date(day.year, day.month, billing_day)
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, billing_day)


def _next_month(day: date) -> date:
    year, month = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
    return date(year, month, min(day.day, 28))
