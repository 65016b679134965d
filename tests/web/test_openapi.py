"""The committed OpenAPI document is the app's: regenerate it with `cam2drive http openapi`."""

from __future__ import annotations

import json
from pathlib import Path

from cli.commands.http import openapi_text

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_committed_openapi_matches_the_app() -> None:
    committed = json.loads(COMMITTED.read_text(encoding="utf-8"))
    assert committed == json.loads(openapi_text()), (
        "docs/openapi.json is stale: run `cam2drive http openapi -o docs/openapi.json`"
    )
    assert set(committed["paths"]) >= {
        "/api/v1/products",
        "/api/v1/contracts/{contract_id}",
        "/api/v1/contracts/{contract_id}/block",
        "/api/v1/contracts/{contract_id}/history",
        "/api/v1/statement",
    }
