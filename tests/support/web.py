"""The HTTP service on real uvicorn over a Stack, and ERP clients with their own keys."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn

from billing import apikeys, catalog
from billing.contracts import set_wholesale_price
from billing.core.db import session_scope
from cli.devstack.seaweed import free_port
from tests.support.stack import Stack
from tests.support.wait import wait_for
from web.app import create_app

CPF = "529.982.247-25"  # valid check digits
CNPJ = "11.222.333/0001-81"
RFC = "EKU9003173C9"


class WebServer:
    """`create_app(parts)` served by uvicorn on a free loopback port, on a thread."""

    def __init__(self, parts: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(parts),
                host="127.0.0.1",
                port=self.port,
                log_config=None,
                access_log=False,
                proxy_headers=False,  # as `cam2drive http serve`: the app judges proxies
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        wait_for(lambda: self.server.started, what="uvicorn to start")

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class Erp:
    """One distributor's ERP: its API key and the labels of the products it sells."""

    distributor_id: int
    key_id: str
    secret: str
    small: str  # label of a 1 MB plan
    large: str  # label of a 10 MB plan
    http: httpx.Client

    def put(self, contract_id: str, label: str | None = None, **customer: Any) -> httpx.Response:
        return self.http.put(
            f"/api/v1/contracts/{contract_id}",
            json={"label": label or self.small, "customer": customer_body(**customer)},
        )

    def close(self) -> None:
        self.http.close()


def customer_body(**overrides: Any) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    body: dict[str, Any] = {
        "name": f"Cliente {tag}",
        "email": f"erp-{tag}@example.com",
        "phone": "+55 11 91234-5678",
        "document": CPF,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def new_erp(stack: Stack, web: WebServer, small: str = "1MB", large: str = "10MB") -> Erp:
    """A distributor selling two fresh plans (wholesale 30.00 and 62.00) with an API key."""
    tag = uuid.uuid4().hex[:6].upper()
    with session_scope(stack.engine) as s:
        dist = catalog.add_distributor(
            s, name=f"ISP {tag}", email=f"isp-{tag.lower()}@example.com", actor="test"
        )
        labels = []
        for size, price, wholesale in ((small, "60.00", "30.00"), (large, "120.00", "62.00")):
            code = f"E{tag}-{size}".upper()
            terms = catalog.PlanTerms(code, size, price, "BRL", on_full="reject")
            catalog.add_plan(s, terms, actor="test")
            set_wholesale_price(s, dist.id, code, wholesale, actor="test")  # type: ignore[arg-type]
            labels.append(code)
        key = apikeys.create(s, dist.id, actor="test")  # type: ignore[arg-type]
        key_id, secret, dist_id = key.key.key_id, key.secret, dist.id
    client = httpx.Client(base_url=web.url, auth=(key_id, secret), timeout=30)
    return Erp(dist_id, key_id, secret, labels[0], labels[1], client)  # type: ignore[arg-type]
