"""One Mercado Pago account per currency: `plan add` and `plan sync` against two
emulators (the default account charges MXN, a [mp.accounts.BRL] one BRL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from cli.devstack.mp_emulator import MercadoPagoEmulator
from tests.support.nodes import assert_one_line_error

pytestmark = pytest.mark.process  # runs the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


@pytest.fixture
def two_accounts() -> Iterator[tuple[MercadoPagoEmulator, MercadoPagoEmulator]]:
    with (
        MercadoPagoEmulator(today=date(2026, 11, 22)) as mxn,
        MercadoPagoEmulator(today=date(2026, 11, 22)) as brl,
    ):
        yield mxn, brl


def test_plans_go_to_the_account_of_their_currency(
    db_url: str, tmp_path: Path, two_accounts: tuple[MercadoPagoEmulator, MercadoPagoEmulator]
) -> None:
    mxn, brl = two_accounts
    config = tmp_path / "cam2drive.toml"
    config.write_text(
        f'[mp.accounts.brl]\naccess_token = "TEST-br"\napi_base = "{brl.url}"\n'
        'webhook_secret = "br-secret"\n',
        encoding="utf-8",
    )
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": db_url,
        "CAM2DRIVE_CONFIG": str(config),
        "CAM2DRIVE_MP_ACCESS_TOKEN": "TEST-mx",
        "CAM2DRIVE_MP_API_BASE": mxn.url,
        "CAM2DRIVE_BILLING_DAY": "12",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([BIN, *args], capture_output=True, text=True, env=env, timeout=120)

    def ok(*args: str) -> object:
        proc = run(*args, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    tag = os.urandom(3).hex().upper()
    refused = run(
        "plan", "add", f"AR-{tag}", "--capacity", "1GB", "--price", "9", "--currency", "ARS"
    )
    assert_one_line_error(refused, "no Mercado Pago account charges in ARS")
    assert "mp.accounts.ARS" in refused.stderr
    assert f"AR-{tag}" not in run("plan", "list").stdout  # nothing written
    assert not mxn.state.plans and not brl.state.plans
    assert run("plan", "sync").returncode in (0, 3)  # other tests' plans, before ours
    before = (len(mxn.state.plans), len(brl.state.plans))

    real = ok(
        "plan", "add", f"BR-{tag}", "--capacity", "1GB", "--price", "29.90", "--currency", "brl"
    )
    assert isinstance(real, dict) and real["mp_plan_id"] in brl.state.plans
    plan = brl.state.plans[str(real["mp_plan_id"])]
    assert len(brl.state.plans) == before[1] + 1
    assert plan["auto_recurring"] == {
        "frequency": 1,
        "frequency_type": "months",
        "transaction_amount": 29.9,
        "currency_id": "BRL",
        "billing_day": 12,  # from the config, not the default 5
        "billing_day_proportional": True,
    }
    ok("plan", "add", f"MX-{tag}", "--capacity", "1GB", "--price", "99", "--currency", "MXN")
    assert len(mxn.state.plans) == before[0] + 1

    # Mercado Pago down while a plan is added: the plan exists, `plan sync` catches up
    brl.state.failing.add("/preapproval_plan")
    late = ok(
        "plan", "add", f"BR2-{tag}", "--capacity", "2GB", "--price", "49", "--currency", "BRL"
    )
    assert isinstance(late, dict) and late["mp_plan_id"] is None and "plan sync" in late["mp_error"]

    def sync() -> dict[str, dict[str, object]]:
        # the database is shared with other tests: their plans are synced too
        proc = run("plan", "sync", "--json")
        assert "Traceback" not in proc.stderr
        return {str(r["plan"]): r for r in json.loads(proc.stdout) if str(r["plan"]).endswith(tag)}

    def mine(emu: MercadoPagoEmulator) -> list[str]:
        return sorted(p["reason"] for p in emu.state.plans.values() if p["reason"].endswith(tag))

    assert sync()[f"BR2-{tag}"]["mp_plan_id"] is None  # still down: said, not raised
    brl.state.failing.discard("/preapproval_plan")
    synced = sync()
    assert synced[f"BR2-{tag}"]["mp_plan_id"] in brl.state.plans
    assert synced[f"MX-{tag}"]["mp_plan_id"] in mxn.state.plans
    assert mine(brl) == [f"cam2drive BR-{tag}", f"cam2drive BR2-{tag}"]
    assert mine(mxn) == [f"cam2drive MX-{tag}"]
    sync()  # again: nothing new at Mercado Pago
    assert len(mine(brl)) == 2 and len(mine(mxn)) == 1
