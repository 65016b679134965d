"""The demo records `make run` creates once: a distributor, a customer, a plan, a device."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import select

from billing import catalog
from billing.core.db import session_scope
from billing.core.models import Device, Distributor


def ensure_demo(engine: Engine) -> tuple[str, str]:
    """Create the demo records once; give the demo device a fresh password each start."""
    with session_scope(engine) as s:
        if s.exec(select(Distributor)).first() is None:
            dist = catalog.add_distributor(
                s, name="Demo Distribuidor", email="distribuidor@example.com", actor="demo"
            )
            assert dist.id is not None
            cust = catalog.add_customer(
                s,
                distributor_id=dist.id,
                email="cliente@example.com",
                name="Cliente Demo",
                actor="demo",
            )
            assert cust.id is not None
            catalog.add_plan(
                s,
                code="AC-ST-50",
                capacity="50GB",
                price="199.00",
                currency="MXN",
                on_full="rotate",
                actor="demo",
            )
            new = catalog.add_device(
                s, customer_id=cust.id, name="Demo NVR", serial="DEMO0001", actor="demo"
            )
            catalog.grant_subscription(
                s, device_ref=str(new.device.id), plan_code="AC-ST-50", actor="demo"
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
            set_wholesale_price(s, dist.id, "AC-ST-50", "49.90", actor="demo")
        secret = new_device_secret()
        key = s.exec(select(ApiKey).where(ApiKey.key_id == DEMO_KEY_ID)).first()
        if key is None:
            key = ApiKey(distributor_id=dist.id, key_id=DEMO_KEY_ID, secret_hash="")
        key.secret_hash = hash_device_secret(secret)
        s.add(key)
    return DEMO_KEY_ID, secret
