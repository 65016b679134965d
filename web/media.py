"""Recordings for the browser: a day's timeline, clips that play, originals, snapshots.

A customer reaches only the devices they own: any other device or recording
is 404, never 403, so ids reveal nothing. The portal's pages (#31) build on
these routes; `current_customer` (web/deps.py) says who is asking.

- `.mp4` clips and snapshots are read from S3 as they are, with HTTP Range
  (a `<video>` element seeks with it).
- `.dav` clips (Dahua's container) are remuxed, never re-encoded, by ffmpeg's
  dhav demuxer into fragmented MP4, which a `<video>` plays as it arrives:
  S3's bytes go into ffmpeg's stdin from a thread while its stdout is sent.
  The video is copied; G.711 audio becomes AAC (a browser plays no G.711),
  and audio ffmpeg cannot read is dropped rather than failing the clip.
  Such a stream has no length, so it cannot seek: the original is there to
  download.
- HEVC plays only in some browsers: `/probe` says so before the player tries.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import weakref
from collections.abc import AsyncIterator, Iterator
from datetime import date
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from gateway import recordings
from web.deps import CustomerDep, parts

log = logging.getLogger(__name__)
router = APIRouter(prefix="/media", tags=["recordings"])

CHUNK = 256 * 1024
PROBE_BYTES = 2 * 1024 * 1024
_TYPES = {"mp4": "video/mp4", "jpg": "image/jpeg", "jpeg": "image/jpeg"}
BROWSER_CODECS = {"h264"}  # every browser; HEVC only on some platforms
# no re-encoding of video; a fragment per key frame, the moov first and empty
REMUX = [
    "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
    "-probesize", "1000000", "-analyzeduration", "1000000",
    "-f", "dhav", "-i", "pipe:0",
    "-map", "0:v:0", "-c:v", "copy",
]  # fmt: skip
WITH_AUDIO = ["-map", "0:a:0?", "-c:a", "aac", "-ar", "16000", "-ac", "1", "-b:a", "48k"]
FRAGMENTED = ["-movflags", "frag_keyframe+empty_moov+default_base_moof", "-f", "mp4", "pipe:1"]


def _store(request: Request) -> Any:
    return parts(request).store


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _shown(name: str) -> str:
    """A name as JSON can carry it: GB2312 bytes a recorder sent become U+FFFD."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _owned(request: Request, customer_id: int, entry_id: int) -> recordings.Media:
    found = recordings.media(parts(request).engine, customer_id, entry_id)
    if found is None:
        raise HTTPException(404, "no such recording")
    return found


# --- the timeline -----------------------------------------------------------


@router.get("/devices/{device_id}/days/{day}", response_class=JSONResponse)
def timeline(request: Request, customer_id: CustomerDep, device_id: int, day: date) -> JSONResponse:
    """A device's recordings that overlap local day `day` (YYYY-MM-DD), in its time zone."""
    engine = parts(request).engine
    found = recordings.device_drive(engine, customer_id, device_id)
    if found is None:
        raise HTTPException(404, "no such device")
    zone = found.timezone or parts(request).settings.device_timezone
    events = recordings.day(engine, found.drive_id, day, zone)
    # a JSONResponse as it is: FastAPI's encoder would walk the events again
    # (30 ms for 2 000, against 4 ms for json.dumps)
    body = {
        "device_id": device_id,
        "date": day.isoformat(),
        "timezone": zone,
        "kinds": recordings.KINDS,
        "events": [
            {
                "id": e.entry_id,
                "channel": e.channel,
                "kind": e.kind,
                "start": e.start.isoformat(),
                "end": e.end.isoformat(),
                "snapshot": e.is_snapshot,
                "name": _shown(e.path.rsplit("/", 1)[-1]),
                "size": e.size,
                "play": f"/media/recordings/{e.entry_id}",
                "original": f"/media/recordings/{e.entry_id}/original",
            }
            for e in events
        ],
    }
    return JSONResponse(body)


# --- bytes as stored, with Range --------------------------------------------

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single `Range: bytes=` header, None for the whole
    file; 416 for one that cannot be served. Several ranges get the whole file."""
    if header is None or "," in header:
        return None
    m = _RANGE.fullmatch(header.strip())
    if m is None or not (m[1] or m[2]):
        raise _unsatisfiable(size)
    if not m[1]:  # the last N bytes
        n = int(m[2])
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - n), size - 1
    first = int(m[1])
    last = min(int(m[2]), size - 1) if m[2] else size - 1
    if first >= size or last < first:
        raise _unsatisfiable(size)
    return first, last


def _unsatisfiable(size: int) -> HTTPException:
    return HTTPException(416, "range not satisfiable", headers={"Content-Range": f"bytes */{size}"})


def _stored(
    request: Request, found: recordings.Media, media_type: str, download: bool = False
) -> StreamingResponse:
    rng = byte_range(request.headers.get("range"), found.size)
    first, last = rng if rng is not None else (0, found.size - 1)
    headers = {
        "Accept-Ranges": "bytes",
        "Content-Length": str(max(0, last - first + 1)),
        "Cache-Control": "private, max-age=300",
    }
    if rng is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
    if download:
        headers["Content-Disposition"] = _attachment(found.name)
    body = _store(request).open_range(found.key, first, last) if found.size else None
    return StreamingResponse(
        _chunks(body), status_code=206 if rng else 200, media_type=media_type, headers=headers
    )


def _chunks(body: Any) -> Iterator[bytes]:
    if body is None:
        return
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()


def _attachment(name: str) -> str:
    """Content-Disposition for any name a recorder wrote (brackets, GB2312 bytes)."""
    raw = name.encode("utf-8", "surrogateescape")
    ascii_name = re.sub(r"[^A-Za-z0-9._\-\[\]@]", "_", name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(raw, safe='')}"


@router.get("/recordings/{entry_id}/original")
def original(request: Request, customer_id: CustomerDep, entry_id: int) -> StreamingResponse:
    """The file exactly as the recorder uploaded it (a `.dav` plays in Dahua's player)."""
    found = _owned(request, customer_id, entry_id)
    kind = _TYPES.get(_extension(found.name), "application/octet-stream")
    return _stored(request, found, kind, download=True)


# --- playback ---------------------------------------------------------------


@router.get("/recordings/{entry_id}")
async def play(
    request: Request,
    customer_id: CustomerDep,
    entry_id: int,
    audio: Annotated[bool, Query(description="false drops the sound")] = True,
) -> StreamingResponse:
    """What a `<video>` (or an `<img>`, for a snapshot) opens."""
    found = await anyio.to_thread.run_sync(_owned, request, customer_id, entry_id)
    ext = _extension(found.name)
    if ext != "dav":  # the ranged GET to S3 waits for its headers: not on the event loop
        kind = _TYPES.get(ext, "application/octet-stream")
        return await anyio.to_thread.run_sync(_stored, request, found, kind)
    if shutil.which("ffmpeg") is None:
        raise HTTPException(503, "ffmpeg is not installed: download the original instead")
    if not Remux.admit():
        raise HTTPException(
            503,
            "too many clips playing on this server; retry shortly",
            headers={"Retry-After": "5"},
        )
    stream = await Remux.start(_store(request), found.key, audio)
    if stream is None and audio:  # audio ffmpeg cannot read: the picture alone
        stream = await Remux.start(_store(request), found.key, False)
    if stream is None:
        raise HTTPException(415, "this .dav cannot be played here: download the original")
    return StreamingResponse(
        stream.chunks(), media_type="video/mp4", headers={"Cache-Control": "no-store"}
    )


class Remux:
    """One ffmpeg process turning a `.dav` object into fragmented MP4.

    Each costs a process and a thread for as long as its viewer watches, so
    a server starts no more than MAX_RUNNING. The process is reaped when the
    response ends, and also when a response that never started is collected
    (weakref.finalize): nothing else holds the object, the feeding thread
    included, so a viewer who leaves early leaves no ffmpeg behind.
    """

    MAX_RUNNING = 4 * (os.cpu_count() or 1)
    running = 0
    _lock = threading.Lock()

    @classmethod
    def admit(cls) -> bool:
        with cls._lock:
            return cls.running < cls.MAX_RUNNING

    def __init__(self, store: Any, key: str, audio: bool) -> None:
        errors = tempfile.TemporaryFile()
        cmd = [*REMUX, *(WITH_AUDIO if audio else ["-an"]), *FRAGMENTED]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors
        )
        with Remux._lock:
            Remux.running += 1
        self.key = key
        self.first = b""
        self._reap = weakref.finalize(self, _reap, self.proc, errors, key)
        threading.Thread(
            target=_feed, args=(store, key, self.proc.stdin), daemon=True, name="dav-feed"
        ).start()

    @classmethod
    async def start(cls, store: Any, key: str, audio: bool) -> Remux | None:
        """A running remux with its first bytes read, or None if ffmpeg made none."""
        remux = await anyio.to_thread.run_sync(cls, store, key, audio)
        first = await anyio.to_thread.run_sync(remux._read)
        if not first:
            await anyio.to_thread.run_sync(remux.close)
            return None
        remux.first = first
        return remux

    def _read(self) -> bytes:
        assert self.proc.stdout is not None
        return os.read(self.proc.stdout.fileno(), CHUNK)  # what ffmpeg has written, at once

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            yield self.first
            while chunk := await anyio.to_thread.run_sync(self._read):
                yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.close)

    def close(self) -> None:
        self._reap()  # once: later calls do nothing


def _feed(store: Any, key: str, stdin: Any) -> None:
    """S3's bytes into ffmpeg until the end, or until ffmpeg is gone."""
    body = None
    try:
        body = store.open_range(key)
        for chunk in body.iter_chunks(CHUNK):
            stdin.write(chunk)
    except Exception as exc:  # noqa: BLE001 - ffmpeg gone (client left), or S3 failed
        if not isinstance(exc, BrokenPipeError | ValueError):
            log.warning("reading %s for a remux failed: %s", key, type(exc).__name__)
    finally:
        if body is not None:
            body.close()
        try:
            stdin.close()
        except OSError:
            pass


def _reap(proc: subprocess.Popen[bytes], errors: Any, key: str) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    assert proc.stdout is not None
    proc.stdout.close()
    if proc.returncode not in (0, -9):
        errors.seek(0)
        text = errors.read(500).decode("utf-8", "replace").replace("\n", " | ")
        log.info("remux of %s ended %s: %r", key, proc.returncode, text)
    errors.close()
    with Remux._lock:
        Remux.running -= 1


@router.get("/recordings/{entry_id}/probe")
def probe(request: Request, customer_id: CustomerDep, entry_id: int) -> Any:
    """The clip's codecs and whether a browser can play its video (HEVC: only some)."""
    found = _owned(request, customer_id, entry_id)
    if found.is_snapshot:
        return {"video": "mjpeg", "audio": None, "plays_in_browser": True}
    if shutil.which("ffprobe") is None:
        raise HTTPException(503, "ffprobe is not installed")
    last = min(found.size, PROBE_BYTES) - 1
    head = _store(request).open_range(found.key, 0, last).read() if last >= 0 else b""
    fmt = ["-f", "dhav"] if _extension(found.name) == "dav" else []
    out = subprocess.run(
        ["ffprobe", "-v", "error", *fmt, "-show_entries", "stream=codec_type,codec_name",
         "-of", "json", "pipe:0"],
        input=head, capture_output=True, timeout=30, check=False,
    ).stdout  # fmt: skip
    streams: dict[str, str] = {}
    for stream in json.loads(out or b"{}").get("streams", []):
        streams.setdefault(stream.get("codec_type", "?"), stream.get("codec_name", "?"))
    video = streams.get("video")
    return {
        "video": video,
        "audio": streams.get("audio"),
        # None: not found in the first bytes (an MP4 with its moov at the end)
        "plays_in_browser": video in BROWSER_CODECS if video else None,
    }
