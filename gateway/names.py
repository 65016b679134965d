"""Names kept in the bucket itself, so the bucket alone can rebuild the index.

S3 keys are opaque (`t/<customer>/d/<device>/<uuid>`) and the index names
them; lose the database and every recording would be an unnamed blob.
So each object says what it is:

* At upload, as S3 metadata (`x-amz-meta-c2d-drive`, `-c2d-device`,
  `-c2d-path`): the drive, the device and the path it was uploaded as. Every
  PutObject, streamed PutObject and multipart upload carries it
  (gateway/ingest.py, gateway/store.py).
* At each rename, in a *name record*: `<drive prefix>.names/<object id>`, a
  JSON object of ~150 bytes with the object's current path, written over at
  every later rename and deleted with its object (S3DriveStore.delete).

Why a record and not new metadata: S3 metadata changes only through
CopyObject, which copies the whole object server side (SeaweedFS rewrites
every byte), and a recorder renames every clip it sends (`x.mp4_` ->
`x.mp4`): that would double a gateway's write load. A record is one small
PutObject. Why one record per object rather than an append-only journal of
renames: records never outnumber objects (a rotated or deleted recording
takes its record along in the same DeleteObjects request), and a rebuild
reads one per renamed object instead of the whole history of a drive.

A rebuild (gateway/fsck.py) names an object by its record if it has one,
else by its metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

from billing.core.vocab import parse_drive_key

NAMES_DIR = ".names/"  # inside a drive prefix; object ids (uuid hex) never contain "/"
META_DRIVE = "c2d-drive"
META_DEVICE = "c2d-device"
META_PATH = "c2d-path"


def object_metadata(drive_id: int, device_id: int | None, path: str) -> dict[str, str]:
    """What an object carries from its upload on. S3 metadata is ASCII (HTTP
    headers): the path is percent-encoded UTF-8."""
    return {
        META_DRIVE: str(drive_id),
        META_DEVICE: "" if device_id is None else str(device_id),
        META_PATH: quote(path, safe="/"),
    }


@dataclass(frozen=True)
class Naming:
    """What an object says of itself: its drive, device and (current) path."""

    drive_id: int
    device_id: int | None
    path: str


def from_metadata(meta: dict[str, str]) -> Naming | None:
    """The naming an object got at upload, or None if it has none (older objects)."""
    try:
        drive = int(meta[META_DRIVE])
        device = int(meta[META_DEVICE]) if meta.get(META_DEVICE) else None
        path = unquote(meta[META_PATH])
    except (KeyError, ValueError):
        return None
    return Naming(drive, device, path) if path else None


def is_name_key(key: str) -> bool:
    found = parse_drive_key(key)
    return found is not None and found.rest.startswith(NAMES_DIR)


def name_key(key: str) -> str:
    """The record of object `key`'s current name: `<prefix>.names/<object id>`."""
    prefix, _, object_id = key.rpartition("/")
    return f"{prefix}/{NAMES_DIR}{object_id}"


def object_key(record_key: str) -> str:
    """The object a name record names (the inverse of `name_key`)."""
    prefix, _, object_id = record_key.rpartition("/")
    return f"{prefix.removesuffix('/' + NAMES_DIR.rstrip('/'))}/{object_id}"


def record_body(naming: Naming) -> bytearray:
    body = {
        "drive": naming.drive_id,
        "device": naming.device_id,
        "path": naming.path,
        "renamed_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return bytearray(json.dumps(body, ensure_ascii=False).encode("utf-8"))


def parse_record(body: bytes) -> Naming | None:
    try:
        data = json.loads(body.decode("utf-8"))
        return Naming(int(data["drive"]), data.get("device"), str(data["path"]))
    except (ValueError, KeyError, TypeError):
        return None
