"""How the gateway talks to S3: what it signs, against the real SeaweedFS."""

from __future__ import annotations

import hashlib
import io
import os
from typing import Any

import pytest

from billing.core.settings import Settings
from gateway.store import sign_payload
from tests.support.stack import MiB, Stack, put, stack_with


@pytest.mark.parametrize(
    ("endpoint", "mode", "signed"),
    [
        (None, "auto", False),  # AWS: HTTPS
        ("https://s3.example.net", "auto", False),
        ("http://127.0.0.1:8333", "auto", False),
        ("http://[::1]:8333", "auto", False),
        ("http://localhost:8333", "auto", False),
        ("http://10.0.0.5:8333", "auto", True),  # plain HTTP across a network
        ("http://seaweed.internal:8333", "auto", True),
        ("http://127.0.0.1:8333", "on", True),
        ("http://10.0.0.5:8333", "off", False),
    ],
)
def test_payload_signing_only_where_nothing_else_protects_the_bytes(
    endpoint: str | None, mode: str, signed: bool
) -> None:
    assert sign_payload(Settings(s3_endpoint_url=endpoint, s3_payload_signing=mode)) is signed


def _sent_hashes(stack: Stack) -> list[tuple[str, str]]:
    """(claimed payload hash, actual hash) of every body the gateway sends from now on."""
    seen: list[tuple[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        body = request.body
        digest = hashlib.sha256(body if isinstance(body, bytes | bytearray) else b"").hexdigest()
        claimed = request.headers["X-Amz-Content-SHA256"]
        seen.append((claimed if isinstance(claimed, str) else claimed.decode(), digest))

    events = stack.pipeline.store.client.meta.events
    for op in ("PutObject", "UploadPart"):
        events.register(f"before-send.s3.{op}", record)
    return seen


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_uploads_signed_or_not_are_accepted_and_whole(db_url: str, seaweed: Any, mode: str) -> None:
    """On loopback the bodies go unhashed (UNSIGNED-PAYLOAD); "on" hashes each
    one into its signature. SeaweedFS checks the signatures either way."""
    with stack_with(db_url, seaweed, s3_payload_signing=mode) as stack:
        seen = _sent_hashes(stack)
        dev = stack.device()
        small, big = os.urandom(100_000), os.urandom(6 * MiB)
        with stack.ftp(dev) as ftp:
            assert put(ftp, "snap.jpg", small).startswith("226")
            assert put(ftp, "clip.dav", big).startswith("226")
            for name, data in (("snap.jpg", small), ("clip.dav", big)):
                got = io.BytesIO()
                ftp.retrbinary(f"RETR {name}", got.write)
                assert got.getvalue() == data
        assert len(seen) == 3  # one PutObject, two parts
        if mode == "auto":
            assert {claimed for claimed, _ in seen} == {"UNSIGNED-PAYLOAD"}
        else:
            assert all(claimed == digest for claimed, digest in seen)
        stack.assert_consistent(dev)


def test_nodes_starting_together_both_get_the_bucket(seaweed: Any) -> None:
    """Two gateways starting at once both find the bucket missing and both
    create it; the one that loses the race must still start."""
    import uuid

    from gateway.store import S3DriveStore

    settings = Settings(s3_endpoint_url=seaweed.endpoint, s3_bucket=f"race-{uuid.uuid4().hex[:8]}")
    first, second = S3DriveStore(settings), S3DriveStore(settings)

    def other_node_wins(**_: Any) -> None:
        first.client.create_bucket(Bucket=settings.s3_bucket)

    second.client.meta.events.register("before-call.s3.CreateBucket", other_node_wins)
    second.ensure_bucket()  # HeadBucket 404, the other node creates it, then ours
    first.ensure_bucket()
    assert (
        first.client.head_bucket(Bucket=settings.s3_bucket)["ResponseMetadata"]["HTTPStatusCode"]
        == 200
    )


def test_stores_share_the_s3_model_but_each_resolves_its_own_credentials(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One parsed S3 model per process (what gateway workers inherit), yet a
    store made after the credentials change signs with the new ones."""
    from gateway.store import S3DriveStore

    first = S3DriveStore(stack.settings)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "someone-else")
    second = S3DriveStore(stack.settings)
    assert first.client.meta.service_model is not None
    assert first.client._loader is second.client._loader  # noqa: SLF001
    assert first.client._request_signer._credentials.access_key != "someone-else"  # noqa: SLF001
    assert second.client._request_signer._credentials.access_key == "someone-else"  # noqa: SLF001
    first.ensure_bucket()  # the first still works against the real SeaweedFS
