"""The ISP's monthly statement, to the cent, over HTTP and from the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

from billing import contracts
from billing.core.db import session_scope
from tests.support.stack import Stack
from tests.support.web import Erp, customer_body

BIN = str(Path(sys.executable).parent / "cam2drive")


def test_statement_to_the_cent_across_mid_month_changes(erp: Erp, stack: Stack) -> None:
    """Wholesale: small 30.00, large 62.00 a month. November has 30 days, December 31."""

    def put(cid: str, label: str, on: date) -> None:
        with session_scope(stack.engine) as s:
            body = customer_body()
            contracts.put(
                s,
                distributor_id=erp.distributor_id,
                contract_id=cid,
                label=label,
                customer=contracts.CustomerInput(**body),
                actor="test",
                today=on,
            )

    def act(cid: str, verb: str, on: date) -> None:
        with session_scope(stack.engine) as s:
            contract = contracts.get(s, erp.distributor_id, cid)
            contracts.act(s, stack.settings, contract, verb, actor="test", today=on)

    small, large = erp.small, erp.large
    put("A", small, date(2026, 10, 20))  # the whole month
    put("B", small, date(2026, 11, 10))  # from the 10th: 21 days
    put("C", small, date(2026, 11, 5))
    act("C", "cancel", date(2026, 11, 19))  # the 5th to the 18th: 14 days
    put("D", small, date(2026, 11, 1))
    with session_scope(stack.engine) as s:  # upgraded on the 16th: 15 + 15 days
        cust = contracts.view(s, contracts.get(s, erp.distributor_id, "D"))
        contracts.put(
            s,
            distributor_id=erp.distributor_id,
            contract_id="D",
            label=large,
            customer=contracts.CustomerInput(
                "Cliente D", cust.email, "+5511912345678", "52998224725"
            ),
            actor="test",
            today=date(2026, 11, 16),
        )
    put("E", large, date(2026, 11, 3))
    act("E", "cancel", date(2026, 11, 8))  # 3rd-7th: 5 days
    act("E", "reactivate", date(2026, 11, 20))  # 20th-30th: 11 days
    put("F", small, date(2026, 12, 1))  # December only
    put("G", small, date(2026, 10, 1))
    act("G", "suspend", date(2026, 11, 10))  # the drive is kept: billed all month

    nov = erp.http.get("/api/v1/statement", params={"month": "2026-11"}).json()
    lines = [(ln["contract_id"], ln["label"], ln["days"], ln["amount"]) for ln in nov["lines"]]
    assert nov["days_in_month"] == 30
    assert lines == [
        ("A", small, 30, "30.00"),
        ("B", small, 21, "21.00"),
        ("C", small, 14, "14.00"),
        ("D", small, 15, "15.00"),
        ("D", large, 15, "31.00"),
        ("E", large, 5, "10.33"),  # 62 x 5 / 30 = 10.333...
        ("E", large, 11, "22.73"),  # 62 x 11 / 30 = 22.733...
        ("G", small, 30, "30.00"),
    ]
    assert nov["totals"] == {"BRL": "174.06"}
    assert nov["lines"][1]["start"] == "2026-11-10" and nov["lines"][1]["end"] == "2026-11-30"
    dec = erp.http.get("/api/v1/statement", params={"month": "2026-12"}).json()
    assert dec["days_in_month"] == 31
    assert {ln["contract_id"]: ln["amount"] for ln in dec["lines"]} == {
        "A": "30.00",
        "B": "30.00",
        "D": "62.00",
        "E": "62.00",
        "F": "30.00",
        "G": "30.00",
    }
    bad = erp.http.get("/api/v1/statement", params={"month": "2026-13"})
    assert bad.status_code == 422 and bad.json()["field"] == "month"
    # the operator's view is the same statement
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": stack.db_url}
    proc = subprocess.run(
        [BIN, "distributor", "statement", str(erp.distributor_id), "--month", "2026-11", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["totals"] == {"BRL": "174.06"}
