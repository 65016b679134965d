"""Mis suscripciones over plain HTTP: the plans a customer is offered are their distributor's."""

from __future__ import annotations

import httpx
from sqlmodel import select

from billing import catalog
from billing.core.db import session_scope
from billing.core.models import Subscription
from tests.support.portal import Account, csrf_of, new_customer, sign_in_http
from tests.support.stack import Stack
from tests.support.web import WebServer, new_erp


def with_recorder(stack: Stack, who: Account) -> int:
    """A recorder of `who`'s with no subscription yet: the page offers it the plans."""
    with session_scope(stack.engine) as s:
        new = catalog.add_device(s, customer_id=who.id, name="NVR Caja", actor="test")
        assert new.device.id is not None
        return new.device.id


def test_the_plans_offered_are_the_distributors(stack: Stack, web: WebServer) -> None:
    mine, rival = new_erp(stack, web), new_erp(stack, web)  # each sells two plans of its own
    mine.close(), rival.close()
    who = new_customer(stack, mine.distributor_id)
    device_id = with_recorder(stack, who)
    with httpx.Client(base_url=web.url) as http:
        assert sign_in_http(http, who.email, who.password).status_code == 303
        page = http.get("/portal/subscriptions")
        assert mine.small in page.text and mine.large in page.text
        assert rival.small not in page.text and rival.large not in page.text
        # a form naming another distributor's plan is refused, in the customer's words
        refused = http.post(
            "/portal/subscriptions",
            data={"csrf": csrf_of(page), "device": str(device_id), "plan": rival.small},
        )
        assert refused.status_code == 422
        assert f"{rival.small} no es uno de los planes de su distribuidor" in refused.text
    with session_scope(stack.engine) as s:
        assert s.exec(select(Subscription).where(Subscription.device_id == device_id)).all() == []
    # a distributor that lists no products sells the whole priced catalogue
    loner = new_customer(stack)
    with_recorder(stack, loner)
    with httpx.Client(base_url=web.url) as http:
        assert sign_in_http(http, loner.email, loner.password).status_code == 303
        page = http.get("/portal/subscriptions")
        assert all(code in page.text for code in (mine.small, mine.large, rival.small))
