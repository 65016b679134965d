"""The `cam2drive` command as an operator runs it: real processes, real databases."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.nodes import assert_one_line_error

pytestmark = pytest.mark.process  # runs the cam2drive command

BIN = str(Path(sys.executable).parent / "cam2drive")


def run(db_url: str, command: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """`cam2drive <command>`, the words split as a shell splits them, on `db_url`."""
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": db_url}
    proc = subprocess.run(
        [BIN, *shlex.split(command)], capture_output=True, text=True, env=env, timeout=120
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    return proc


def as_json(db_url: str, command: str) -> dict:  # type: ignore[type-arg]
    return json.loads(run(db_url, f"{command} --json").stdout)


def test_operator_flow(db_url: str, tmp_path: Path) -> None:
    run(db_url, "db upgrade")
    run(db_url, "db upgrade")  # idempotent
    tag = os.urandom(4).hex()
    dist = as_json(db_url, f"distributor add --name TVCenLínea --email d{tag}@x.mx")
    cust = as_json(
        db_url,
        f"customer add --distributor {dist['id']} --email c{tag}@x.mx --name Ana "
        "--phone '+52 55 1234'",
    )
    plan = as_json(
        db_url,
        f"plan add AC-ST-{tag} --capacity 50GB --price 199.00 --currency mxn --on-full reject",
    )
    assert plan["capacity_bytes"] == 50_000_000_000 and plan["price"] == "199.00"
    assert plan["currency"] == "MXN"
    dev = as_json(db_url, f"device add --customer {cust['id']} --name 'NVR Centro' --serial 6G0ABC")
    assert dev["username"].startswith("c2d-") and len(dev["password"]) == 24
    assert dev["recorder"]["port"] and dev["drive_prefix"] == f"t/{cust['id']}/d/{dev['id']}/"
    assert "secret_hash" not in dev
    text = run(db_url, f"device add --customer {cust['id']} --name 'NVR 2'").stdout
    assert "Password" in text and "Remote directory" in text
    reset = as_json(db_url, f"device reset-password {dev['id']}")
    assert reset["password"] != dev["password"]
    quote = as_json(db_url, f"subscription quote --plan AC-ST-{tag} --date 2026-11-22")
    assert quote == {
        "amount": "86.23",
        "currency": "MXN",
        "days": 13,
        "period_start": "2026-11-22",
        "period_end": "2026-12-05",
    }
    sub = as_json(db_url, f"subscription grant --device {dev['username']} --plan ac-st-{tag}")
    assert sub["status"] == "active"
    usage = as_json(db_url, f"usage --device {dev['id']}")
    assert usage == [
        {
            "id": usage[0]["id"],
            "device_id": dev["id"],
            "prefix": dev["drive_prefix"],
            "capacity_bytes": 50_000_000_000,
            "committed_bytes": 0,
            "reserved_bytes": 0,
            "objects": 0,
            "last_upload_at": None,
        }
    ]
    listed = as_json(db_url, f"device list --customer {cust['id']}")
    assert [d["name"] for d in listed] == ["NVR Centro", "NVR 2"]

    # bad input: one clear line, non-zero exit, nothing written
    x1 = "plan add X1 --currency MXN"
    for command, error in (
        (f"subscription quote --plan AC-ST-{tag} --date 22/11/2026", "is not YYYY-MM-DD"),
        (f"customer add --distributor {dist['id']} --email c{tag}@x.mx", "already exists"),
        ("customer add --distributor 999999 --email new@x.mx", "distributor 999999 does not exist"),
        (f"customer add --distributor {dist['id']} --email not-an-email", "not an email"),
        (f"{x1} --capacity lots --price 1", "is not a size"),
        (f"{x1} --capacity 1GB --price 1.999", "at most 2 decimals"),
        (f"{x1} --capacity 1GB --price 1 --on-full explode", "on-full"),
        (f"subscription grant --device nobody --plan AC-ST-{tag}", "device nobody does not exist"),
        (f"subscription grant --device {dev['id']} --plan NOPE", "plan NOPE does not exist"),
        ("customer set-password nobody@x.mx --password-stdin", "does not exist"),
    ):
        assert_one_line_error(run(db_url, command, ok=False), error)
    plans = as_json(db_url, "plan list")
    assert "X1" not in [p["code"] for p in plans]

    # viewer password: from stdin (scripts) with a clear refusal when too short
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": db_url}
    ok = subprocess.run(
        [BIN, "customer", "set-password", f"c{tag}@x.mx", "--password-stdin"],
        input="a-good-password\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0 and "can now log in" in ok.stdout, ok.stderr
    short = subprocess.run(
        [BIN, "customer", "set-password", str(cust["id"]), "--password-stdin"],
        input="short\n",
        capture_output=True,
        text=True,
        env=env,
    )
    assert_one_line_error(short, "at least 10 characters")


def test_errors_without_schema_or_config(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    assert_one_line_error(run(empty, "usage", ok=False), "db upgrade")
    proc = run(empty, f"--config {tmp_path / 'missing.toml'} usage", ok=False)
    assert_one_line_error(proc, "does not exist")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ftp]\npassive_ports = 'lots'\n")
    assert_one_line_error(run(empty, f"--config {bad} usage", ok=False), "passive")


def test_toml_config_file(tmp_path: Path) -> None:
    from billing.core.settings import load_settings

    conf = tmp_path / "cam2drive.toml"
    conf.write_text(
        'database_url = "sqlite:///x.db"\n[ftp]\nport = 21\n'
        'passive_ports = "50000-50010"\nmasquerade_address = "203.0.113.9"\n'
        '[s3]\nbucket = "grabaciones"\n'
    )
    st = load_settings(conf)
    assert (st.ftp_port, st.ftp_passive_ports, st.ftp_masquerade_address, st.s3_bucket) == (
        21,
        "50000-50010",
        "203.0.113.9",
        "grabaciones",
    )
    os.environ["CAM2DRIVE_FTP_PORT"] = "2100"
    try:
        assert load_settings(conf).ftp_port == 2100  # environment beats the file
    finally:
        del os.environ["CAM2DRIVE_FTP_PORT"]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["db"],
        ["db", "upgrade"],
        ["distributor", "add"],
        ["customer", "add"],
        ["plan", "add"],
        ["device", "add"],
        ["device", "reset-password"],
        ["subscription", "grant"],
        ["usage"],
        ["gateway", "ftp"],
        ["gateway", "sftp"],
        ["janitor"],
        ["dev", "run"],
        ["customer", "set-password"],
        ["device", "add-key"],
        ["device", "keys"],
        ["device", "remove-key"],
        ["customer", "list"],
        ["plan", "list"],
        ["distributor", "list"],
        ["subscription", "quote"],
        ["subscription", "create"],
        ["subscription", "show"],
        ["subscription", "list"],
        ["subscription", "upgrade"],
        ["subscription", "pay-link"],
        ["subscription", "downgrade"],
        ["subscription", "cancel"],
        ["billing"],
        ["billing", "run"],
        ["billing", "ledger"],
        ["scheduler"],
    ],
)
def test_help_everywhere(args: list[str]) -> None:
    proc = subprocess.run([BIN, *args, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Usage" in proc.stdout


def test_paid_subscription_commands(own_db_url: str) -> None:
    """subscription create / show / list and billing run, against the emulator over HTTP."""
    db_url = own_db_url
    import urllib.request

    from cli.devstack.mp_emulator import MercadoPagoEmulator

    tag = os.urandom(4).hex()
    with MercadoPagoEmulator(today=__import__("datetime").date(2026, 11, 22)) as emu:
        env_extra = {"CAM2DRIVE_MP_API_BASE": emu.url, "CAM2DRIVE_MP_ACCESS_TOKEN": "TEST-x"}
        os.environ.update(env_extra)
        try:
            dist = as_json(db_url, f"distributor add --name D --email pd{tag}@x.mx")
            cust = as_json(db_url, f"customer add --distributor {dist['id']} --email pc{tag}@x.mx")
            as_json(db_url, f"plan add P-{tag} --capacity 5GB --price 199.00 --currency MXN")
            dev = as_json(db_url, f"device add --customer {cust['id']} --name n")
            create = f"subscription create --device {dev['id']} --plan P-{tag}"
            sub = as_json(db_url, f"{create} --date 2026-11-22")
            assert sub["status"] == "pending" and sub["first_charge"] == "86.23"
            assert sub["checkout_url"].startswith("https://www.mercadopago.com.mx/")
            text = run(db_url, f"subscription show {sub['id']}").stdout
            assert "checkout_url" in text
            again = as_json(db_url, f"{create} --date 2026-11-22")
            assert again["id"] == sub["id"]  # retried, not duplicated
            assert f"pc{tag}@x.mx" in sub["pending_reason"]  # the email to pay with
            plan_id = sub["checkout_url"].split("preapproval_plan_id=")[1]
            urllib.request.urlopen(  # the payer subscribes at the plan's checkout
                urllib.request.Request(
                    f"{emu.url}/__emulator/subscribe",
                    data=json.dumps(
                        {"preapproval_plan_id": plan_id, "payer_email": f"pc{tag}@x.mx"}
                    ).encode(),
                    method="POST",
                )
            ).read()
            ahead = run(db_url, "billing run --date 2099-01-05", ok=False)
            assert_one_line_error(ahead, "only a --dry-run may look ahead")
            dry = as_json(db_url, "billing run --date 2026-11-22 --dry-run")
            assert sub["id"] in dry["activated"] and dry["dry_run"] is True
            shown = as_json(db_url, f"subscription show {sub['id']}")
            assert shown["status"] == "pending"  # the dry run changed nothing
            real = as_json(db_url, "billing run --date 2026-11-22")
            assert sub["id"] in real["activated"]
            listed = as_json(db_url, f"subscription list --customer {cust['id']}")
            assert [s["status"] for s in listed] == ["active"]
            ledger = as_json(db_url, f"billing ledger --customer {cust['id']}")
            assert [(c["amount"], c["status"]) for c in ledger] == [("86.23", "approved")]
            dup = run(db_url, create, ok=False)
            assert_one_line_error(dup, f"already has subscription {sub['id']} (active)")
            as_json(db_url, f"plan add Q-{tag} --capacity 9GB --price 299.00 --currency MXN")
            up = run(db_url, f"subscription upgrade {sub['id']} --plan Q-{tag} --date 2026-11-22")
            assert "pref_id=" in up.stdout and "43.33" in up.stdout  # 100 x 13/30, a link
            assert "plan changes once" in up.stdout
            shown = as_json(db_url, f"subscription show {sub['id']}")
            assert shown["plan"] == f"P-{tag}".upper()  # not before the payer pays
            nothing = run(db_url, f"subscription pay-link {sub['id']}", ok=False)
            assert_one_line_error(nothing, "only a past_due or blocked")
        finally:
            for key in env_extra:
                os.environ.pop(key, None)


def test_a_gateway_sets_the_gil_switch_interval(stack) -> None:  # type: ignore[no-untyped-def]
    """`gil_switch_interval_ms` reaches sys.setswitchinterval in every gateway
    process (gateway.node.prepare_gateway); a value out of range is one clear error."""
    import gc
    import sys

    from cli.context import App
    from gateway.node import prepare_gateway

    app = App()
    app.__dict__["settings"] = stack.settings.model_copy(
        update={"gil_switch_interval_ms": 12.5, "heap_trim_interval": 0}
    )
    app.__dict__["store"] = stack.store
    before = sys.getswitchinterval()
    try:
        prepare_gateway(app)
        assert sys.getswitchinterval() == pytest.approx(0.0125)
    finally:
        sys.setswitchinterval(before)
        gc.unfreeze()
    env = {
        **os.environ,
        "CAM2DRIVE_DATABASE_URL": stack.db_url,
        "CAM2DRIVE_GIL_SWITCH_INTERVAL_MS": "0",
    }
    proc = subprocess.run(
        [BIN, "gateway", "ftp"], capture_output=True, text=True, env=env, timeout=120
    )
    assert_one_line_error(proc, "gil_switch_interval_ms")
