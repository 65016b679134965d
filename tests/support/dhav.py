"""Real Dahua `.dav` files for tests: ffmpeg's H.264 (or HEVC) and G.711, in DHAV frames.

No sample recording can ship with the tests, so this writes the container
the way libavformat's dhav demuxer reads it (libavformat/dhav.c):

    'DHAV' type subtype channel subnumber   type 0xfd key frame, 0xfc other
    u32 frame number, u32 frame length        video frame, 0xf0 audio
    u32 date (sec | min<<6 | hour<<12 | day<<17 | month<<22 | (year-2000)<<26)
    u16 milliseconds (wraps), u8 extension length, u8 checksum
    extension: 0x80 (-, w/8, h/8), 0x81 (-, codec, fps) on key frames;
               0x83 (channels, codec, rate index) on audio
    payload, then 'dhav' u32 frame length (a reader walks back with it)

all little-endian; the frame length counts the header, extension, payload and
trailer. The demuxer dates each packet from the date field, adding the
millisecond field's steps within one second.
"""

from __future__ import annotations

import struct
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import datetime, timedelta

VIDEO_CODECS = {"h264": (0x02, "libx264"), "hevc": (0x0C, "libx265")}
AUDIO_MULAW, AUDIO_ALAW = 0x0A, 0x0E
KEY, FRAME, AUDIO = 0xFD, 0xFC, 0xF0
AUDIO_CHUNK = 320  # 40 ms of 8 kHz G.711


def dahua_date(t: datetime) -> int:
    return (
        t.second
        | t.minute << 6
        | t.hour << 12
        | t.day << 17
        | t.month << 22
        | (t.year - 2000) << 26
    )


def frame(
    kind: int, number: int, at: datetime, ms: int, ext: bytes, payload: bytes, channel: int = 0
) -> bytes:
    length = 24 + len(ext) + len(payload) + 8
    head = b"DHAV" + bytes([kind, 0, channel, 0])
    head += struct.pack("<III", number, length, dahua_date(at))
    head += struct.pack("<HB", ms & 0xFFFF, len(ext))
    head += bytes([sum(head) & 0xFF])  # a checksum the demuxer skips
    return head + ext + payload + b"dhav" + struct.pack("<I", length)


def encode(
    seconds: float, fps: int, size: tuple[int, int], codec: str, bitrate: str | None
) -> bytes:
    """An Annex B elementary stream from ffmpeg's test pattern, an AUD before each picture."""
    _, encoder = VIDEO_CODECS[codec]
    w, h = size
    rate = _cbr(bitrate, codec) if bitrate else []
    aud = ["-bsf:v", "h264_metadata=aud=insert"] if codec == "h264" else []
    params = ["-x265-params", "aud=1:log-level=error"] if codec == "hevc" else []
    cmd = [
        "ffmpeg", "-v", "error", "-f", "lavfi",
        "-i", f"testsrc=size={w}x{h}:rate={fps}", "-t", str(seconds),
        "-c:v", encoder, "-preset", "ultrafast", "-g", str(fps), "-bf", "0",
        "-pix_fmt", "yuv420p", *rate, *params, *aud,
        "-f", codec, "pipe:",
    ]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def _cbr(bitrate: str, codec: str) -> list[str]:
    """Constant bit rate, as recorders send (a test pattern alone compresses to little)."""
    rate = ["-b:v", bitrate, "-minrate", bitrate, "-maxrate", bitrate, "-bufsize", bitrate]
    return [*rate, "-x264-params", "nal-hrd=cbr"] if codec == "h264" else rate


def access_units(stream: bytes, codec: str) -> Iterator[tuple[bool, bytes]]:
    """(is key frame, bytes) per picture, split at the access unit delimiters."""
    aud = b"\x00\x00\x00\x01\x09" if codec == "h264" else b"\x00\x00\x00\x01\x46"
    starts = [i for i in _find_all(stream, aud)]
    for a, b in zip(starts, [*starts[1:], len(stream)], strict=True):
        unit = stream[a:b]
        if codec == "h264":
            key = b"\x00\x00\x01\x65" in unit or b"\x00\x00\x01\x25" in unit
        else:
            key = any(
                unit[i + 3] >> 1 in (19, 20, 21)
                for i in _find_all(unit, b"\x00\x00\x01")
                if i + 3 < len(unit)
            )
        yield key, unit


def _find_all(data: bytes, needle: bytes) -> Iterator[int]:
    i = data.find(needle)
    while i >= 0:
        yield i
        i = data.find(needle, i + 1)


def g711(seconds: float) -> bytes:
    cmd = [
        "ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000",
        "-t", str(seconds), "-ac", "1", "-f", "mulaw", "pipe:",
    ]  # fmt: skip
    return subprocess.run(cmd, check=True, capture_output=True).stdout


def make_dav(
    seconds: float = 3,
    *,
    fps: int = 25,
    size: tuple[int, int] = (320, 240),
    codec: str = "h264",
    audio: bool = True,
    start: datetime = datetime(2026, 12, 6, 15, 0, 0),
    bitrate: str | None = None,
    channel: int = 0,
    audio_codec: int = AUDIO_MULAW,
) -> bytes:
    """A `.dav` recording as a Dahua recorder writes it: video, and G.711 mu-law
    audio interleaved by time."""
    code, _ = VIDEO_CODECS[codec]
    w, h = size
    video_ext = bytes([0x80, 0, w // 8, h // 8, 0x81, 0, code, fps])
    audio_ext = bytes([0x83, 1, audio_codec, 0])  # mono, rate index 0: 8000 Hz
    sound = g711(seconds) if audio else b""
    out = bytearray()
    number = 0
    sent_audio = 0
    for i, (key, unit) in enumerate(
        access_units(encode(seconds, fps, size, codec, bitrate), codec)
    ):
        ms = i * 1000 // fps
        # the audio that plays up to this picture goes first
        while audio and sent_audio < len(sound) and sent_audio // 8 <= ms:
            chunk = sound[sent_audio : sent_audio + AUDIO_CHUNK]
            a_ms = sent_audio // 8
            at = start + timedelta(milliseconds=a_ms)
            out += frame(AUDIO, number, at, a_ms, audio_ext, chunk, channel)
            sent_audio += AUDIO_CHUNK
            number += 1
        at = start + timedelta(milliseconds=ms)
        out += frame(
            KEY if key else FRAME, number, at, ms, video_ext if key else b"", unit, channel
        )
        number += 1
    return bytes(out)


def make_mp4(
    seconds: float = 3, *, size: tuple[int, int] = (320, 240), bitrate: str | None = None
) -> bytes:
    """A plain (not fragmented) H.264 MP4 with its moov first, as newer firmwares upload."""
    w, h = size
    rate = _cbr(bitrate, "h264") if bitrate else []
    with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
        cmd = [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate=25",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "25",
            "-pix_fmt", "yuv420p", *rate, "-movflags", "+faststart", f.name,
        ]  # fmt: skip
        subprocess.run(cmd, check=True, capture_output=True)
        return f.read()
