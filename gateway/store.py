"""The S3 drive store: the only module that talks to S3.

Every key handled here must sit under a drive prefix (`t/<customer>/d/<device>/`):
the store refuses anything else, a second fence behind the drive view.
Every S3 or network failure becomes StorageUnavailable, which frontends
answer as a transient error (FTP 451) so recorders retry later.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from billing.core.errors import NotFound, StorageUnavailable
from billing.core.settings import Settings
from billing.core.vocab import DRIVE_ROOT, parse_drive_key, parse_drive_prefix
from gateway.names import is_name_key, name_key


def _check_key(key: str) -> str:
    if parse_drive_key(key) is None:
        raise ValueError(f"refusing S3 key outside a drive prefix: {key!r}")
    return key


def _check_prefix(prefix: str) -> str:
    if parse_drive_prefix(prefix) is None:
        raise ValueError(f"refusing S3 prefix that is not a drive prefix: {prefix!r}")
    return prefix


def _check_document_prefix(prefix: str) -> str:
    """Invoices live outside every drive: a drive deletion must never reach them."""
    if not prefix.endswith("/") or prefix.startswith((DRIVE_ROOT, "/")) or ".." in prefix:
        raise ValueError(f"invoice prefix must end in '/' and lie outside t/: {prefix!r}")
    return prefix


def _metadata(meta: dict[str, str] | None) -> dict[str, Any]:
    return {"Metadata": meta} if meta else {}


def sign_payload(settings: Settings) -> bool:
    """Whether request bodies are hashed into their signatures.

    Only worth its cost where nothing else protects the bytes: plain HTTP
    to another machine. AWS itself (no endpoint) is HTTPS.
    """
    if settings.s3_payload_signing != "auto":
        return settings.s3_payload_signing == "on"
    url = urlsplit(settings.s3_endpoint_url or "https://s3.amazonaws.com")
    if url.scheme == "https":
        return False
    host = url.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost
        return True


def client_config(
    settings: Settings, max_pool_connections: int = 10, attempts: int | None = None
) -> Config:
    """The botocore settings of every S3 client cam2drive makes (and its benches)."""
    return Config(
        s3={"addressing_style": "path", "payload_signing_enabled": sign_payload(settings)},
        connect_timeout=settings.s3_connect_timeout,
        read_timeout=settings.s3_read_timeout,
        retries={"max_attempts": attempts or settings.s3_max_attempts, "mode": "standard"},
        max_pool_connections=max_pool_connections,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )


@functools.cache
def _model_loader() -> Any:
    return botocore.session.get_session().get_component("data_loader")


def _session() -> boto3.session.Session:
    """A session of its own (credentials are resolved per session, so a
    store made after they change sees them) over one process-wide model
    loader: the loader keeps the parsed S3 model (~12 MB), so a second store
    costs nothing more, and gateway workers forked after a first store share
    it with their supervisor (gateway/workers.py)."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _model_loader())
    return boto3.session.Session(botocore_session=core)


class S3DriveStore:
    """Thin, typed wrapper over one boto3 client and one bucket."""

    def __init__(self, settings: Settings, *, max_pool_connections: int = 64) -> None:
        self.bucket = settings.s3_bucket
        self.document_prefix = _check_document_prefix(settings.invoice_prefix)
        self._settings, self._pool = settings, max_pool_connections
        self.client = self._client()
        # a signature hashes the whole body before the first byte is sent
        self.can_stream = not sign_payload(settings)

    def _client(self, attempts: int | None = None, pool: int | None = None) -> Any:
        s = self._settings
        return _session().client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name=s.s3_region or None,
            config=client_config(s, pool or self._pool, attempts),
        )

    @functools.cached_property
    def _stream_client(self) -> Any:
        """Made on the first streamed upload: a client that never retries, since
        a streamed body is read once (a retry could only fail, after a backoff).
        Each stream holds a connection for as long as its recorder takes, so
        the pool keeps as many as a node has sessions: a smaller pool opens
        the rest anyway and drops them after one use, logging each drop."""
        return self._client(1, max(self._pool, self._settings.ftp_max_connections))

    def _call(self, op: str, client: Any = None, **kwargs: Any) -> Any:
        try:
            return getattr(client or self.client, op)(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFound("object not found in storage") from exc
            raise StorageUnavailable(f"storage error ({code or 'unknown'})") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable("storage is unreachable") from exc

    # --- setup ----------------------------------------------------------

    def ping(self) -> None:
        """One HeadBucket: does the store answer (the HTTP service's /readyz)?"""
        self._call("head_bucket")

    def ensure_bucket(self) -> None:
        """Create the bucket if missing. Several nodes starting at once all
        see it missing and all create it: the losers' "already yours" is fine."""
        try:
            try:
                self.client.head_bucket(Bucket=self.bucket)
                return
            except ClientError:
                pass  # missing: create it
            self.client.create_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code != "BucketAlreadyOwnedByYou":
                raise StorageUnavailable(f"cannot create bucket {self.bucket}: {code}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"storage is unreachable: {exc}") from exc

    # --- writes ---------------------------------------------------------

    def put(self, key: str, body: bytearray, meta: dict[str, str] | None = None) -> None:
        """One PutObject. The body is a bytearray on purpose: botocore wraps a
        `bytes` body in a BytesIO, and any file-like body gets
        `Expect: 100-continue` (a round trip to S3 before the first byte) and
        is sent in 8 KiB reads. A bytearray goes out in one send: a 200 KB
        snapshot costs 2.3 instead of 2.8 ms (BENCHMARKS.md, ingest).
        `meta`: the object's naming (gateway/names.py), on every recording."""
        self._call("put_object", Key=_check_key(key), Body=body, **_metadata(meta))

    def put_stream(
        self, key: str, body: Any, length: int, meta: dict[str, str] | None = None
    ) -> None:
        """One PutObject of `length` bytes read from `body` as they arrive
        (gateway/stream.py). Only where payloads are not signed
        (`can_stream`): a signature would need the whole body first."""
        if not self.can_stream:
            raise ValueError("streamed uploads need unsigned payloads")
        self._call(
            "put_object",
            client=self._stream_client,
            Key=_check_key(key),
            Body=body,
            ContentLength=length,
            **_metadata(meta),
        )

    def create_multipart(self, key: str, meta: dict[str, str] | None = None) -> str:
        resp = self._call("create_multipart_upload", Key=_check_key(key), **_metadata(meta))
        return str(resp["UploadId"])

    def upload_part(self, key: str, upload_id: str, number: int, body: bytes | bytearray) -> str:
        resp = self._call(
            "upload_part", Key=_check_key(key), UploadId=upload_id, PartNumber=number, Body=body
        )
        return str(resp["ETag"])

    def complete_multipart(self, key: str, upload_id: str, etags: list[str]) -> None:
        parts = [{"PartNumber": i + 1, "ETag": etag} for i, etag in enumerate(etags)]
        self._call(
            "complete_multipart_upload",
            Key=_check_key(key),
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )

    def abort_multipart(self, key: str, upload_id: str) -> None:
        try:
            self._call("abort_multipart_upload", Key=_check_key(key), UploadId=upload_id)
        except NotFound:
            pass

    def delete(self, keys: list[str]) -> None:
        """Delete keys in batches of 1000 (a missing key is not an error).

        A recording's name record (gateway/names.py) goes with it, in the
        same request: records never outlive their objects."""
        keys = [*keys, *(name_key(k) for k in keys if not is_name_key(k))]
        for i in range(0, len(keys), 1000):
            batch = [{"Key": _check_key(k)} for k in keys[i : i + 1000]]
            resp = self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StorageUnavailable(
                    f"storage refused to delete {first.get('Key')}: {first.get('Code')}"
                )

    def delete_prefix(self, prefix: str) -> tuple[int, int]:
        """Delete everything under a drive prefix, a page at a time; (objects, bytes).

        Safe to repeat: an interrupted run leaves the rest for the next one.
        """
        objects = size = 0
        while True:
            page = []
            for key, length in self.list_keys(prefix):
                page.append(key)
                size += length
                if len(page) == 1000:
                    break
            if not page:
                return objects, size
            self.delete(page)
            objects += len(page)

    # --- documents (invoices), outside every drive prefix -----------------

    def _document_key(self, key: str) -> str:
        if not key.startswith(self.document_prefix) or "/../" in key or "//" in key:
            raise ValueError(f"refusing document key outside {self.document_prefix}: {key!r}")
        return key

    def put_document(self, key: str, body: bytes, content_type: str) -> None:
        self._call("put_object", Key=self._document_key(key), Body=body, ContentType=content_type)

    def get_document(self, key: str) -> bytes:
        body = self._call("get_object", Key=self._document_key(key))["Body"]
        try:
            return bytes(body.read())
        except BotoCoreError as exc:
            raise StorageUnavailable("storage is unreachable") from exc

    # --- reads ----------------------------------------------------------

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Any:
        """A streaming body from byte `start` to `end` (inclusive) or the end (ranged GET)."""
        kwargs: dict[str, Any] = {"Key": _check_key(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        return self._call("get_object", **kwargs)["Body"]

    def list_keys(self, prefix: str) -> Iterator[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=_check_prefix(prefix)):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"])
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("storage is unreachable") from exc

    def list_objects(self, prefix: str) -> Iterator[tuple[str, int, Any]]:
        """(key, size, last modified) of everything under a drive prefix."""
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=_check_prefix(prefix)):
                for obj in page.get("Contents", []):
                    yield obj["Key"], int(obj["Size"]), obj.get("LastModified")
        except (ClientError, BotoCoreError) as exc:
            raise StorageUnavailable("storage is unreachable") from exc

    def head(self, key: str) -> dict[str, str]:
        """An object's user metadata (`x-amz-meta-*`, names without the prefix)."""
        return dict(self._call("head_object", Key=_check_key(key)).get("Metadata") or {})

    def list_multipart(self, prefix: str = DRIVE_ROOT) -> list[tuple[str, str, Any]]:
        """(key, upload_id, initiated) of multipart uploads started under `prefix`."""
        out: list[tuple[str, str, Any]] = []
        kwargs: dict[str, Any] = {"Prefix": prefix}
        while True:
            resp = self._call("list_multipart_uploads", **kwargs)
            out += [(u["Key"], u["UploadId"], u.get("Initiated")) for u in resp.get("Uploads", [])]
            if not resp.get("IsTruncated"):
                return out
            kwargs.update(
                KeyMarker=resp.get("NextKeyMarker"), UploadIdMarker=resp.get("NextUploadIdMarker")
            )
