"""Recordings in the browser: a day's timeline, .dav remuxed to fragmented MP4, Range, isolation."""

from __future__ import annotations

import json
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from billing import catalog
from billing.core.db import session_scope
from tests.support.dhav import make_dav, make_mp4
from tests.support.portal import csrf_of, customer_of, sign_in_http
from tests.support.recordings import upload
from tests.support.stack import DeviceLogin, Stack
from tests.support.wait import wait_for
from tests.support.web import WebServer
from web.media import Remux

DAY = "2026-12-06"
DAV = f"{DAY}/001/dav/15/15.00.00-15.00.03[M][0@0][0].dav"
MP4 = f"{DAY}/002/dav/16/16.00.00-16.00.03[A][0@0][0].mp4"
JPG = f"{DAY}/001/jpg/15/00/01[M][0@0][0].jpg"
NIGHT = f"{DAY}/001/dav/23/23.59.58-00.00.01[R][0@0][0].dav"


def ffprobe(data: bytes, *args: str) -> dict:  # type: ignore[type-arg]
    """What ffprobe reads in `data`, from a file: from a pipe it would see only
    the first fragment of a fragmented MP4 when it sums the duration."""
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        out = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                *args,
                "-show_streams",
                "-show_format",
                "-of",
                "json",
                f.name,
            ],
            capture_output=True,
            check=True,
        )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def boxes(data: bytes) -> list[str]:
    """The top-level MP4 boxes, in order."""
    found, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        found.append(kind.decode("latin-1"))
        if size < 8:
            break
        at += size
    return found


def test_the_helper_writes_dav_ffmpeg_reads() -> None:
    dav = make_dav(2, audio=True)
    assert dav[:4] == b"DHAV" and dav[-8:-4] == b"dhav"
    info = ffprobe(dav, "-f", "dhav", "-count_frames")
    codecs = {s["codec_type"]: s for s in info["streams"]}
    assert codecs["video"]["codec_name"] == "h264"
    assert (codecs["video"]["width"], codecs["video"]["height"]) == (320, 240)
    assert int(codecs["video"]["nb_read_frames"]) == 50
    assert codecs["audio"]["codec_name"] == "pcm_mulaw"
    assert int(codecs["audio"]["sample_rate"]) == 8000
    hevc = ffprobe(make_dav(1, codec="hevc", audio=False), "-f", "dhav")
    assert [s["codec_name"] for s in hevc["streams"]] == ["hevc"]


class Viewer:
    """`dev`'s customer, signed in to the portal: the media routes take its session cookie."""

    def __init__(self, stack: Stack, web: WebServer, dev: DeviceLogin) -> None:
        self.dev, self.who = dev, customer_of(stack, dev)
        self.http = httpx.Client(base_url=web.url, timeout=60)
        assert sign_in_http(self.http, self.who.email, self.who.password).status_code == 303

    def events(self, day: str = DAY) -> list[dict]:  # type: ignore[type-arg]
        r = self.http.get(f"/media/devices/{self.dev.device_id}/days/{day}")
        assert r.status_code == 200, r.text
        return r.json()["events"]  # type: ignore[no-any-return]

    def id_of(self, path: str) -> int:
        name = path.rsplit("/", 1)[-1]
        [event] = [e for e in self.events() if e["name"] == name]
        return int(event["id"])


@pytest.fixture
def recorded(stack: Stack, web: WebServer) -> Iterator[tuple[Viewer, dict[str, bytes]]]:
    dev = stack.device()
    files = {
        DAV: make_dav(3),
        MP4: make_mp4(3),
        JPG: make_dav(1)[:5000],  # any bytes: served as stored
        NIGHT: make_dav(3, start=datetime(2026, 12, 6, 23, 59, 58)),
    }
    with stack.ftp(dev) as ftp:
        for path, data in files.items():
            upload(ftp, path, data)
    viewer = Viewer(stack, web, dev)
    yield viewer, files
    viewer.http.close()


def test_a_day_in_the_device_zone(stack: Stack, recorded: tuple[Viewer, dict[str, bytes]]) -> None:
    viewer, _ = recorded
    body = viewer.http.get(f"/media/devices/{viewer.dev.device_id}/days/{DAY}").json()
    assert body["timezone"] == "America/Mexico_City"
    assert body["kinds"]["M"] == "motion"
    got = [(e["channel"], e["kind"], e["start"], e["end"], e["snapshot"]) for e in body["events"]]
    assert got == [
        (1, "M", "2026-12-06T15:00:00-06:00", "2026-12-06T15:00:03-06:00", False),
        (1, "M", "2026-12-06T15:00:01-06:00", "2026-12-06T15:00:01-06:00", True),
        (2, "A", "2026-12-06T16:00:00-06:00", "2026-12-06T16:00:03-06:00", False),
        (1, "R", "2026-12-06T23:59:58-06:00", "2026-12-07T00:00:01-06:00", False),
    ]
    # the clip across midnight opens the next day too
    assert [e["kind"] for e in viewer.events("2026-12-07")] == ["R"]
    bad = viewer.http.get(f"/media/devices/{viewer.dev.device_id}/days/2026-13-01")
    assert bad.status_code == 422 and "day" in bad.text
    # the same names read in the zone the device's clock keeps
    with session_scope(stack.engine) as s:
        catalog.set_device_timezone(s, viewer.dev.device_id, "America/Sao_Paulo", actor="test")
    body = viewer.http.get(f"/media/devices/{viewer.dev.device_id}/days/{DAY}").json()
    assert body["timezone"] == "America/Sao_Paulo"
    assert body["events"][0]["start"] == "2026-12-06T15:00:00-03:00"


def test_dav_plays_as_fragmented_mp4(recorded: tuple[Viewer, dict[str, bytes]]) -> None:
    viewer, _ = recorded
    r = viewer.http.get(f"/media/recordings/{viewer.id_of(DAV)}")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "video/mp4"
    top = boxes(r.content)
    assert top[:2] == ["ftyp", "moov"]
    assert "moof" in top and "mdat" in top
    assert top.index("moof") < top.index("mdat")
    info = ffprobe(r.content, "-count_frames")
    codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}  # G.711 became AAC
    assert float(info["format"]["duration"]) > 2.9
    [video] = [s for s in info["streams"] if s["codec_type"] == "video"]
    assert int(video["nb_read_frames"]) == 75  # every picture of the 3 s clip
    # decodes to the end
    frames = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", "-", "-map", "0:v", "-f", "null", "-"],
        input=r.content,
        capture_output=True,
    )
    assert frames.returncode == 0 and frames.stderr == b""
    silent = viewer.http.get(f"/media/recordings/{viewer.id_of(DAV)}", params={"audio": "false"})
    assert [s["codec_type"] for s in ffprobe(silent.content)["streams"]] == ["video"]


def test_unreadable_audio_is_dropped_and_garbage_refused(stack: Stack, web: WebServer) -> None:
    dev = stack.device()
    odd = f"{DAY}/001/dav/10/10.00.00-10.00.02[M][0@0][0].dav"
    junk = f"{DAY}/001/dav/11/11.00.00-11.00.02[M][0@0][0].dav"
    with stack.ftp(dev) as ftp:
        upload(ftp, odd, make_dav(2, audio_codec=0x99))  # a codec the demuxer does not know
        upload(ftp, junk, b"not a dav file " * 1000)
    viewer = Viewer(stack, web, dev)
    r = viewer.http.get(f"/media/recordings/{viewer.id_of(odd)}")
    assert r.status_code == 200
    assert [s["codec_name"] for s in ffprobe(r.content)["streams"]] == ["h264"]
    r = viewer.http.get(f"/media/recordings/{viewer.id_of(junk)}")
    assert r.status_code == 415 and "original" in r.json()["detail"]
    original = viewer.http.get(f"/media/recordings/{viewer.id_of(junk)}/original")
    assert original.content == b"not a dav file " * 1000


def test_mp4_snapshot_and_original_with_range(recorded: tuple[Viewer, dict[str, bytes]]) -> None:
    viewer, files = recorded
    mp4, url = files[MP4], f"/media/recordings/{viewer.id_of(MP4)}"
    whole = viewer.http.get(url)
    assert (whole.status_code, whole.headers["content-type"]) == (200, "video/mp4")
    assert whole.headers["accept-ranges"] == "bytes" and whole.content == mp4
    part = viewer.http.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 100-199/{len(mp4)}"
    assert part.content == mp4[100:200]
    tail = viewer.http.get(url, headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, mp4[-10:])
    rest = viewer.http.get(url, headers={"Range": f"bytes={len(mp4) - 5}-"})
    assert rest.content == mp4[-5:]
    for bad in (f"bytes={len(mp4)}-", "bytes=9-3", "bytes=-0", "pages=1-2"):
        r = viewer.http.get(url, headers={"Range": bad})
        assert r.status_code == 416, bad
        assert r.headers["content-range"] == f"bytes */{len(mp4)}"
    snap = viewer.http.get(f"/media/recordings/{viewer.id_of(JPG)}")
    assert (snap.headers["content-type"], snap.content) == ("image/jpeg", files[JPG])
    dav = viewer.http.get(f"/media/recordings/{viewer.id_of(DAV)}/original")
    assert dav.content == files[DAV]
    assert dav.headers["content-disposition"].startswith(
        'attachment; filename="15.00.00-15.00.03[M][0@0][0].dav"'
    )


def test_hevc_is_flagged(stack: Stack, web: WebServer) -> None:
    dev = stack.device()
    hevc = f"{DAY}/001/dav/12/12.00.00-12.00.02[M][0@0][0].dav"
    with stack.ftp(dev) as ftp:
        upload(ftp, hevc, make_dav(2, codec="hevc"))
        upload(ftp, DAV, make_dav(2))
    viewer = Viewer(stack, web, dev)
    assert viewer.http.get(f"/media/recordings/{viewer.id_of(hevc)}/probe").json() == {
        "video": "hevc",
        "audio": "pcm_mulaw",
        "plays_in_browser": False,
    }
    assert viewer.http.get(f"/media/recordings/{viewer.id_of(DAV)}/probe").json()[
        "plays_in_browser"
    ]


def test_customers_reach_only_their_own(
    stack: Stack, web: WebServer, recorded: tuple[Viewer, dict[str, bytes]]
) -> None:
    a, _ = recorded
    b = Viewer(stack, web, stack.device())
    clip = a.id_of(DAV)
    for url in (
        f"/media/devices/{a.dev.device_id}/days/{DAY}",
        f"/media/recordings/{clip}",
        f"/media/recordings/{clip}/original",
        f"/media/recordings/{clip}/probe",
        f"/media/recordings/{a.id_of(JPG)}",
    ):
        assert b.http.get(url).status_code == 404, url
        assert a.http.get(url).status_code == 200, url
        assert httpx.get(web.url + url).status_code == 401
    assert b.events() == []
    b.http.close()
    # only the portal's session opens media: not the owner's own email and password
    # over HTTP Basic, not a made-up cookie, not a session that signed out
    url = f"/media/recordings/{clip}/original"
    basic = httpx.get(web.url + url, auth=(a.who.email, a.who.password))
    assert basic.status_code == 401 and "www-authenticate" not in basic.headers
    forged = httpx.get(web.url + url, cookies={"c2d_session": "made-up-token"})
    assert forged.status_code == 401
    old = a.http.cookies["c2d_session"]
    page = a.http.get("/portal/devices")
    assert a.http.post("/signout", data={"csrf": csrf_of(page)}).status_code == 303
    assert httpx.get(web.url + url, cookies={"c2d_session": old}).status_code == 401


def test_a_viewer_who_leaves_stops_ffmpeg(stack: Stack, web: WebServer) -> None:
    dev = stack.device()
    long = f"{DAY}/001/dav/13/13.00.00-13.00.20[M][0@0][0].dav"
    with stack.ftp(dev) as ftp:
        upload(ftp, long, make_dav(20, size=(640, 480), bitrate="4M"))  # ~10 MB
    viewer = Viewer(stack, web, dev)
    with viewer.http.stream("GET", f"/media/recordings/{viewer.id_of(long)}") as r:
        assert r.status_code == 200
        next(r.iter_raw(65536))
        assert Remux.running == 1  # ffmpeg waits for this viewer to read on
    viewer.http.close()  # gone after the first bytes of 10 MB
    wait_for(lambda: Remux.running == 0, what="the remux to be reaped")
