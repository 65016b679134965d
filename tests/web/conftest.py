"""The HTTP service over the stack (both databases), and an ERP with its own key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Stack
from tests.support.web import Erp, WebServer, new_erp


@pytest.fixture
def web(stack: Stack) -> Iterator[WebServer]:
    server = WebServer(stack)
    yield server
    server.close()


@pytest.fixture
def erp(stack: Stack, web: WebServer) -> Iterator[Erp]:
    client = new_erp(stack, web)
    yield client
    client.close()
