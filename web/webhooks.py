"""POST /webhooks/mercadopago: Mercado Pago's notifications, checked and queued.

Mercado Pago signs each delivery with the application's secret signature:
`x-signature: ts=<ts>,v1=<hex>`, v1 = HMAC-SHA256(secret,
"id:<data.id>;request-id:<x-request-id>;ts:<ts>;"), `data.id` taken from the
URL's query and lower-cased when alphanumeric
(https://mercadopago.com.mx/developers/en/docs/links-and-debts/additional-content/your-integrations/notifications/webhooks).
The official SDK's `WebhookSignatureValidator` does that check (in constant
time); this module only finds its inputs.

A valid notification is queued (billing/payments/notifications.py) and
answered 200 at once, whether Mercado Pago's API answers right now or not;
a background task then drains the queue through the same `sync` the billing
pass polls with, and the next billing pass drains whatever that left.
No timestamp window is enforced: a replayed notification only makes us read
the resource again from Mercado Pago, which changes nothing.
A forged, unsigned or altered one is 401 and queues nothing; a body that is
not a JSON object, or names no resource, is 400.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, BackgroundTasks, Request
from fastapi.responses import JSONResponse
from mercadopago.webhook import InvalidWebhookSignatureError, WebhookSignatureValidator
from starlette.concurrency import run_in_threadpool

from billing.core.db import session_scope
from billing.payments.accounts import configured
from billing.payments.mercadopago import MercadoPago
from billing.payments.notifications import TOPICS, drain, enqueue

log = logging.getLogger("cam2drive.web.webhooks")
router = APIRouter(tags=["webhooks"])

MAX_BODY = 64 * 1024  # a notification is a few hundred bytes
# one drain at a time in this process: Mercado Pago sends several notifications
# for one change (the preapproval, its installment, the payment), each a task
_DRAINING = threading.Lock()


def _no(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def mercadopago_for(parts: Any) -> MercadoPago:
    given = getattr(parts, "mercadopago", None)
    if given is not None:
        return given
    st = parts.settings
    return MercadoPago(st.mp_access_token or "", st.mp_api_base, timeout=st.mp_timeout)


def secrets(settings: Any) -> list[str]:
    """Every account's webhook secret: CAM2DRIVE_MP_WEBHOOK_SECRET and [mp.accounts.*]'s.

    The background drain here reads resources from the default account; another
    account's notification stays queued for the billing pass, which drains with
    every account (billing/payments/notifications.py)."""
    found = [a.webhook_secret for a in configured(settings).values() if a.webhook_secret]
    if settings.mp_webhook_secret and settings.mp_webhook_secret not in found:
        found.insert(0, settings.mp_webhook_secret)
    return found


def _apply(parts: Any) -> None:
    """The background half: drain the queue; any failure leaves rows for the billing pass."""
    try:
        st = parts.settings
        with _DRAINING:
            drain(
                parts.engine,
                mercadopago_for(parts),
                datetime.now(UTC).date(),
                st.billing_day,
                st.pending_expiry_days,
            )
    except Exception:  # the rows stay queued; nothing a client sent is logged
        log.exception("applying queued Mercado Pago notifications failed; the billing pass retries")


@router.post(
    "/webhooks/mercadopago",
    summary="Mercado Pago notifications (signed with x-signature)",
    responses={
        400: {"description": "not a notification"},
        401: {"description": "missing or invalid signature"},
        503: {"description": "no webhook secret configured"},
    },
)
async def mercadopago_webhook(request: Request, tasks: BackgroundTasks) -> JSONResponse:
    parts = request.app.state.parts
    keys = secrets(parts.settings)
    if not keys:
        return _no(503, "CAM2DRIVE_MP_WEBHOOK_SECRET is not configured")
    raw = await request.body()
    if len(raw) > MAX_BODY:
        return _no(400, "body: too large for a notification")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        return _no(400, "body: not JSON")
    if not isinstance(body, dict):
        return _no(400, "body: not a JSON object")
    data = body.get("data")
    body_id = data.get("id") if isinstance(data, dict) else None
    query_id = request.query_params.get("data.id") or request.query_params.get("id")
    resource = query_id if query_id is not None else body_id
    topic = (
        request.query_params.get("type") or request.query_params.get("topic") or body.get("type")
    )
    if not isinstance(resource, str | int) or not str(resource).strip():
        return _no(400, "data.id: missing")
    resource = str(resource).strip()
    if len(resource) > 64 or not resource.isalnum():
        return _no(400, "data.id: not a Mercado Pago id")
    refused: InvalidWebhookSignatureError | None = None
    for secret in keys:  # one account's secret signed it, whichever
        try:
            WebhookSignatureValidator.validate(
                request.headers.get("x-signature"),
                request.headers.get("x-request-id"),
                resource.lower(),
                secret,
            )
        except InvalidWebhookSignatureError as exc:
            refused = exc
        else:
            refused = None
            break
    if refused is not None:
        return _no(401, f"x-signature: {refused.reason.value}")
    if body_id is not None and str(body_id) != resource:
        return _no(401, "data.id: the body names another resource than the signed one")
    if topic not in TOPICS:
        return JSONResponse({"status": "ignored"})  # signed, but nothing we act on

    def queue() -> None:
        with session_scope(parts.engine) as session:
            enqueue(session, str(topic), resource)

    await run_in_threadpool(queue)
    tasks.add_task(_apply, parts)
    return JSONResponse({"status": "queued"})
