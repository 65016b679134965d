"""The demo records `make run` creates once (a distributor, a customer, a plan, a
device), and the seeding steps the benches share with it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlmodel import Session, select

from billing import catalog
from billing.core.db import session_scope
from billing.core.models import Device, Distributor, Plan

DEMO_PLAN = catalog.PlanTerms("AC-ST-50", "50GB", "199.00")


@dataclass(frozen=True)
class Seller:
    """A distributor, the plan it sells, and the actor its records are audited under."""

    distributor: Distributor
    plan: Plan
    actor: str

    def add_recorder(
        self, s: Session, email: str, nvr: str, name: str | None = None, serial: str | None = None
    ) -> catalog.NewDevice:
        """A new customer (`email`, `name`) with one recorder (`nvr`, `serial`) on a
        courtesy subscription to the plan."""
        assert self.distributor.id is not None
        cust = catalog.add_customer(
            s, distributor_id=self.distributor.id, email=email, name=name, actor=self.actor
        )
        assert cust.id is not None
        new = catalog.add_device(s, customer_id=cust.id, name=nvr, serial=serial, actor=self.actor)
        device = str(new.device.id)
        catalog.grant_subscription(s, device_ref=device, plan_code=self.plan.code, actor=self.actor)
        return new


def add_seller(s: Session, name: str, email: str, plan: catalog.PlanTerms, actor: str) -> Seller:
    """A distributor and the plan it sells."""
    dist = catalog.add_distributor(s, name=name, email=email, actor=actor)
    return Seller(dist, catalog.add_plan(s, plan, actor=actor), actor)


def ensure_demo(engine: Engine) -> tuple[str, str]:
    """Create the demo records once; give the demo device a fresh password each start."""
    with session_scope(engine) as s:
        if s.exec(select(Distributor)).first() is None:
            seller = add_seller(
                s, "Demo Distribuidor", "distribuidor@example.com", DEMO_PLAN, "demo"
            )
            seller.add_recorder(
                s, "cliente@example.com", "Demo NVR", name="Cliente Demo", serial="DEMO0001"
            )
        device = s.exec(select(Device).order_by(Device.id)).first()  # type: ignore[arg-type]
        assert device is not None
        _, password = catalog.reset_device_password(s, str(device.id), actor="demo")
        return device.username, password


DEMO_KEY_ID = "c2dk_demo"


def ensure_demo_erp(engine: Engine) -> tuple[str, str]:
    """The demo distributor sells AC-ST-50 through its ERP; its API key gets a fresh
    secret at every start (printed once, like the demo device's password), so no
    fixed secret ever opens a `make run` that someone exposed."""
    from billing.contracts import products, set_wholesale_price
    from billing.core.credentials import hash_device_secret, new_device_secret
    from billing.core.models import ApiKey

    with session_scope(engine) as s:
        dist = s.exec(select(Distributor).order_by(Distributor.id)).first()  # type: ignore[arg-type]
        assert dist is not None and dist.id is not None
        if not products(s, dist.id):
            set_wholesale_price(s, dist.id, DEMO_PLAN.code, "49.90", actor="demo")
        secret = new_device_secret()
        key = s.exec(select(ApiKey).where(ApiKey.key_id == DEMO_KEY_ID)).first()
        if key is None:
            key = ApiKey(distributor_id=dist.id, key_id=DEMO_KEY_ID, secret_hash="")
        key.secret_hash = hash_device_secret(secret)
        s.add(key)
    return DEMO_KEY_ID, secret
