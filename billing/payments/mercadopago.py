"""Mercado Pago through the official SDK: plans, preapprovals, Checkout Pro links.

Two rules shape this module:

* every call that can charge carries an idempotency key derived from our own
  records (`idempotency_key("preapproval", subscription_id, ...)`), so a
  retried call or a re-run after a crash never charges twice;
* a failure to reach Mercado Pago (timeout, 5xx, connection refused) is
  `MercadoPagoUnavailable` and is never read as non-payment; a refusal
  (4xx) is `MercadoPagoRefused` with Mercado Pago's own message.

The SDK's API host is fixed; a small HttpClient rewrites it to
`CAM2DRIVE_MP_API_BASE` (the emulator in tests and `make run`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import mercadopago
import requests
import urllib3
from mercadopago.config import RequestOptions
from mercadopago.http.http_client import HttpClient
from mercadopago.pagination import search_auto_paging_iter

from billing.core.errors import Cam2DriveError

MP_HOST = "https://api.mercadopago.com"
PAGE = 50  # results asked per page of a search; Mercado Pago may answer fewer


class MercadoPagoFailed(Cam2DriveError):
    """Mercado Pago did not do what was asked: whoever asked reports it and changes nothing."""


class MercadoPagoUnavailable(MercadoPagoFailed):
    """Mercado Pago could not be reached or failed: retry later, never non-payment."""


class MercadoPagoRefused(MercadoPagoFailed):
    """Mercado Pago refused the request (bad data, payer email mismatch, ...)."""


def idempotency_key(*parts: object) -> str:
    """A stable key from our own record ids: the same operation, the same key."""
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:48]


class _BaseUrlClient(HttpClient):
    """The SDK's transport, pointed at `base`, over kept-alive urllib3 pools.

    The SDK builds every request and parses every reply; only the wire
    changes. Its own transport opens a new `requests.Session` (a new TCP and
    TLS connection) per call, and `requests` spends about a millisecond of
    CPU per call on top of urllib3: a billing pass on the 5th makes a call
    per subscription, and that was most of its time (BENCHMARKS.md).
    Retries stay off: a failed call is "unavailable" and the next pass asks
    again. urllib3's pools are thread-safe, so billing's fetch threads share one.
    """

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.pool = urllib3.PoolManager(num_pools=4, maxsize=64, retries=False)

    def request(self, method, url, headers=None, params=None, data=None, timeout=None, **_retries):
        from mercadopago.errors.exceptions import MPServerError

        if url.startswith(MP_HOST):
            url = self.base + url[len(MP_HOST) :]
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params, doseq=True)
        body = data.encode() if isinstance(data, str) else data
        limit = urllib3.Timeout(connect=timeout, read=timeout) if timeout else None
        try:
            result = self.pool.request(method, url, body=body, headers=headers, timeout=limit)
        except urllib3.exceptions.TimeoutError as exc:
            raise requests.Timeout(str(exc)) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise requests.ConnectionError(str(exc)) from exc
        response: dict[str, Any] = {"status": result.status, "response": None}
        if result.status != 204 and result.data:
            try:
                response["response"] = json.loads(result.data)
            except ValueError as exc:
                raise MPServerError(
                    result.status,
                    {"message": "Invalid JSON in response body", "error": "invalid_response"},
                ) from exc
        return response


@dataclass(frozen=True)
class Preapproval:
    id: str
    status: str
    init_point: str | None
    payer_email: str
    amount: Decimal
    raw: dict[str, Any]


class MercadoPago:
    def __init__(
        self, access_token: str, api_base: str = MP_HOST, *, timeout: float = 10.0
    ) -> None:
        if not access_token:
            raise Cam2DriveError("CAM2DRIVE_MP_ACCESS_TOKEN is not configured")
        options = RequestOptions(connection_timeout=float(timeout), max_retries=0)
        self.sdk = mercadopago.SDK(
            access_token, http_client=_BaseUrlClient(api_base), request_options=options
        )
        self.timeout = float(timeout)

    def _options(self, key: str | None) -> RequestOptions:
        headers = {"x-idempotency-key": key} if key else None
        return RequestOptions(
            connection_timeout=self.timeout, max_retries=0, custom_headers=headers
        )

    @staticmethod
    def _result(resp: Any, what: str) -> dict[str, Any]:
        status = resp["status"] if isinstance(resp, dict) else getattr(resp, "status", None)
        body = resp["response"] if isinstance(resp, dict) else getattr(resp, "response", None)
        if status is None or status >= 500:
            raise MercadoPagoUnavailable(
                "Mercado Pago failed (%(status)s) while %(what)s", status=status, what=what
            )
        if status >= 400:
            message = (body or {}).get("message") or f"HTTP {status}"
            cause = (body or {}).get("cause") or []
            if cause and isinstance(cause, list) and isinstance(cause[0], dict):
                message = f"{message} ({cause[0].get('description') or cause[0].get('code')})"
            raise MercadoPagoRefused(
                "Mercado Pago refused %(what)s: %(message)s", what=what, message=message
            )
        return body or {}

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return self._result(fn(*args, **kwargs), what)
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise MercadoPagoUnavailable(
                "Mercado Pago unreachable while %(what)s", what=what
            ) from exc
        except Cam2DriveError:
            raise
        except Exception as exc:  # SDK-level errors (MPServerError, bad JSON)
            raise MercadoPagoUnavailable(
                "Mercado Pago error while %(what)s: %(error)s", what=what, error=exc
            ) from exc

    # --- plans (one per cam2drive plan and billing day) -------------------------------

    def create_plan(
        self,
        *,
        key: str,
        reason: str,
        amount: Decimal,
        currency: str,
        billing_day: int,
        back_url: str = "https://cam2drive.example/return",
    ) -> dict[str, Any]:
        """A monthly preapproval plan charging on `billing_day`, prorating the first month.

        POST /preapproval_plan with `reason`, `back_url` and `auto_recurring`
        {frequency 1, frequency_type months, transaction_amount, currency_id,
        billing_day (1-28), billing_day_proportional}:
        https://www.mercadopago.com.mx/developers/es/reference/subscriptions/_preapproval_plan/post
        With `billing_day_proportional` Mercado Pago charges the first month in
        proportion to the days left until the billing day, on a 30-day basis,
        monthly plans only, the rule billing/subscriptions/proration.py quotes:
        https://mercadopago.com.mx/developers/en/docs/subscriptions/integration-customization/payment-methods/proportional-amount
        """
        body = {
            "reason": reason,
            "back_url": back_url,
            "auto_recurring": {
                "frequency": 1,
                "frequency_type": "months",
                "transaction_amount": float(amount),
                "currency_id": currency,
                "billing_day": billing_day,
                "billing_day_proportional": True,
            },
        }
        return self._call("creating the plan", self.sdk.plan().create, body, self._options(key))

    def get_plan(self, plan_id: str) -> dict[str, Any]:
        """GET /preapproval_plan/{id}: its `init_point` is the payer's checkout.
        https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/get-preapproval-plan/get
        """
        return self._call("reading the plan", self.sdk.plan().get, plan_id)

    # --- preapprovals (recurring charges) -------------------------------------------

    def create_preapproval(
        self,
        *,
        key: str,
        payer_email: str,
        reason: str,
        amount: Decimal,
        currency: str,
        start_date: str,
        external_reference: str,
        plan_id: str | None = None,
        back_url: str = "https://cam2drive.example/return",
    ) -> Preapproval:
        body: dict[str, Any] = {
            "reason": reason,
            "external_reference": external_reference,
            "payer_email": payer_email,
            "back_url": back_url,
            "status": "pending",
            "auto_recurring": {
                "frequency": 1,
                "frequency_type": "months",
                "transaction_amount": float(amount),
                "currency_id": currency,
                "start_date": start_date,
            },
        }
        if plan_id:
            body["preapproval_plan_id"] = plan_id
        raw = self._call(
            "creating the subscription", self.sdk.preapproval().create, body, self._options(key)
        )
        return _preapproval(raw)

    def get_preapproval(self, preapproval_id: str) -> Preapproval:
        return _preapproval(
            self._call("reading the subscription", self.sdk.preapproval().get, preapproval_id)
        )

    def _paged(
        self, what: str, uri: str, filters: dict[str, Any], limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """Every result of a paged search, through the SDK's own auto-pager.

        Mercado Pago's searches answer a page at a time (`offset`, `limit`,
        `paging.total`); reading only the first page once made a paying
        customer look unpaid. The SDK's `search_auto_paging_iter` follows
        `paging` as returned, so any page size Mercado Pago enforces is honoured;
        each page still goes through `_call`, so a failed page is
        MercadoPagoUnavailable for the whole search, never a short answer.
        """

        def page(params: dict[str, Any], options: Any = None) -> dict[str, Any]:
            body = self._call(what, self.sdk.preapproval()._get, uri, dict(params))
            return {"status": 200, "response": body}

        return list(search_auto_paging_iter(page, filters, None, limit))

    def installments(self, preapproval_id: str) -> list[dict[str, Any]]:
        """Every authorized payment (monthly installment) of a preapproval, all pages.

        GET /authorized_payments/search?preapproval_id=…&offset=…&limit=…, answered
        with `paging` {offset, limit, total} and `results`:
        https://www.mercadopago.com.mx/developers/es/reference/online-payments/subscriptions/authorized-payment-search/get.md
        Fields read per result (`debit_date`, `status`, `transaction_amount`,
        `payment` {id, status}):
        https://www.mercadopago.com.br/developers/es/reference/online-payments/subscriptions/get-authorized-payment/get.md
        """
        return self._paged(
            "listing installments",
            "/authorized_payments/search",
            {"preapproval_id": preapproval_id},
        )

    def get_installment(self, installment_id: str) -> dict[str, Any]:
        """One authorized payment (what a `subscription_authorized_payment`
        notification names): GET /authorized_payments/{id}, which says its
        `preapproval_id`:
        https://www.mercadopago.com.br/developers/es/reference/online-payments/subscriptions/get-authorized-payment/get.md
        """
        return self._call(
            "reading the installment",
            self.sdk.preapproval()._get,
            f"/authorized_payments/{installment_id}",
        )

    def search_preapprovals(
        self, *, plan_id: str | None = None, payer_email: str | None = None
    ) -> list[Preapproval]:
        """Every preapproval on `plan_id` for `payer_email`, all pages.

        GET /preapproval/search filters by `preapproval_plan_id` and
        `payer_email` and pages with `offset`/`limit`/`paging.total`:
        https://www.mercadopago.com.mx/developers/en/reference/subscriptions/_preapproval_search/get
        """
        filters = {
            k: v
            for k, v in (("preapproval_plan_id", plan_id), ("payer_email", payer_email))
            if v is not None
        }
        raw = self._paged("searching subscriptions", "/preapproval/search", filters)
        return [_preapproval(r) for r in raw]

    def ensure_cancelled(self, preapproval_id: str) -> Preapproval:
        """Cancel the preapproval unless it already is, then read it back to confirm.

        PUT /preapproval/{id} {"status": "cancelled"} stops every later charge
        (statuses pending|authorized|paused|cancelled):
        https://www.mercadopago.com/developers/en/reference/online-payments/subscriptions/update-preapproval/put
        A drive is deleted only after this returns: a preapproval left
        authorized would keep charging a customer who has nothing left.
        Raises MercadoPagoUnavailable/Refused when it cannot be confirmed.
        """
        pre = self.get_preapproval(preapproval_id)
        if pre.status != "cancelled":
            self.cancel_preapproval(preapproval_id)
            pre = self.get_preapproval(preapproval_id)
        if pre.status != "cancelled":
            raise MercadoPagoUnavailable(
                "Mercado Pago did not confirm the cancellation of %(preapproval)s "
                "(status %(status)s)",
                preapproval=preapproval_id,
                status=pre.status,
            )
        return pre

    def update_preapproval_amount(self, preapproval_id: str, amount: Decimal) -> Preapproval:
        """Later installments charge `amount` (an upgrade, a downgrade)."""
        return _preapproval(
            self._call(
                "changing the subscription's amount",
                self.sdk.preapproval().update,
                preapproval_id,
                {"auto_recurring": {"transaction_amount": float(amount)}},
            )
        )

    def cancel_preapproval(self, preapproval_id: str) -> Preapproval:
        return _preapproval(
            self._call(
                "cancelling the subscription",
                self.sdk.preapproval().update,
                preapproval_id,
                {"status": "cancelled"},
            )
        )

    # --- one-off payments: Checkout Pro preferences (pay-now, upgrades) ----------------

    def create_preference(
        self,
        *,
        key: str,
        title: str,
        amount: Decimal,
        currency: str,
        external_reference: str,
        payer_email: str,
        expires_at: datetime,
        notification_url: str | None = None,
    ) -> dict[str, Any]:
        """A Checkout Pro link for one payment: the payer pays at its `init_point`.

        POST /checkout/preferences with `items` [{title, quantity, unit_price,
        currency_id}], `payer.email`, `external_reference` (our charge's id, what
        the payment carries back), `notification_url` (where Mercado Pago
        notifies the payment) and `expires` + `expiration_date_to` (after which
        the link cannot be paid):
        https://www.mercadopago.com.mx/developers/en/guides/online-payments/checkout-pro/configurations
        There is no card token to send: the payer enters the card at Mercado
        Pago (POST /v1/payments would need `token`, `payment_method_id` and
        `installments`). `key` is the X-Idempotency-Key, the charge's id: a
        retry after a crash gets the same preference, not a second one.
        Answered with `id` and `init_point`.
        """
        body: dict[str, Any] = {
            "items": [
                {
                    "id": external_reference,
                    "title": title,
                    "quantity": 1,
                    "currency_id": currency,
                    "unit_price": float(amount),
                }
            ],
            "payer": {"email": payer_email},
            "external_reference": external_reference,
            "expires": True,
            "expiration_date_to": expires_at.astimezone(UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000+00:00"
            ),
        }
        if notification_url:
            body["notification_url"] = notification_url
        return self._call(
            "creating the payment link", self.sdk.preference().create, body, self._options(key)
        )

    def payments_for(self, external_reference: str) -> list[dict[str, Any]]:
        """Every payment carrying `external_reference` (a one-off charge's id).

        GET /v1/payments/search?external_reference=…, paged with `offset`,
        `limit` and `paging.total`:
        https://mercadopago.com.mx/developers/en/reference/payments/_payments_search/get
        Fields read per payment: `id`, `status` (approved, rejected, cancelled,
        refunded, charged_back, in_process…), `status_detail`, `payment_type_id`:
        https://www.mercadopago.com.mx/developers/en/reference/online-payments/checkout-api-payments/get-payment/get
        """
        found: list[dict[str, Any]] = []
        while True:
            raw = self._call(
                "searching the link's payments",
                self.sdk.payment().search,
                {"external_reference": external_reference, "offset": len(found), "limit": PAGE},
            )
            results = list(raw.get("results") or [])
            found += results
            total = int((raw.get("paging") or {}).get("total") or 0)
            if not results or len(found) >= total:
                return found

    def payments_updated(
        self, begin: str, end: str, page: int = 1000
    ) -> Iterator[list[dict[str, Any]]]:
        """Pages of the payments last updated between `begin` and `end` (ISO 8601),
        oldest first: one call per page instead of one per subscription.

        Mercado Pago may return fewer than `page` per call; the offset follows
        what came back, so any page size it enforces is honoured.
        """
        offset = 0
        while True:
            raw = self._call(
                "searching payments",
                self.sdk.payment().search,
                {
                    "range": "date_last_updated",
                    "begin_date": begin,
                    "end_date": end,
                    "sort": "date_last_updated",
                    "criteria": "asc",
                    "offset": offset,
                    "limit": page,
                },
            )
            results = list(raw.get("results") or [])
            if results:
                yield results
            offset += len(results)
            total = int((raw.get("paging") or {}).get("total") or 0)
            if not results or offset >= total:
                return

    def get_payment(self, payment_id: str | int) -> dict[str, Any]:
        return self._call("reading the payment", self.sdk.payment().get, payment_id)


def _preapproval(raw: dict[str, Any]) -> Preapproval:
    return Preapproval(
        id=str(raw["id"]),
        status=str(raw.get("status")),
        init_point=raw.get("init_point"),
        payer_email=raw.get("payer_email", ""),
        amount=Decimal(str((raw.get("auto_recurring") or {}).get("transaction_amount", "0"))),
        raw=raw,
    )
