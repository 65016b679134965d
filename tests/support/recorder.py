"""A Dahua recorder emulator: replays the FTP session of ../shared/recorders.md.

Raw commands over a socket (not ftplib's helpers) so the exact sequence a
recorder sends is what the gateway sees: the CWD/PWD dance, SIZE of the
DVRWorkDirectory marker, CWD-fails-then-MKD chains, PASV, ALLO, REST 0,
STOR to `name.mp4_`, RNFR/RNTO to `name.mp4`, snapshot bursts, and a
connection that may be dropped without QUIT.
"""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field


class RecorderError(Exception):
    pass


@dataclass
class DahuaRecorder:
    host: str
    port: int
    username: str
    password: str
    remote_dir: str = "NVR01"
    device_name: str = "AMC0009L_M35704"
    sent: list[str] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = b""

    # --- wire ---------------------------------------------------------------

    def _line(self) -> str:
        assert self.sock is not None
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise RecorderError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def reply(self) -> str:
        line = self._line()
        if line[3:4] == "-":  # multi-line reply
            code = line[:3]
            while not (line.startswith(code) and line[3:4] == " "):
                line = self._line()
        self.replies.append(line)
        return line

    def cmd(self, text: str) -> str:
        assert self.sock is not None
        self.sent.append(text)
        self.sock.sendall(text.encode("utf-8") + b"\r\n")
        return self.reply()

    def expect(self, text: str, *codes: str) -> str:
        resp = self.cmd(text)
        if resp[:3] not in codes:
            raise RecorderError(f"{text!r} -> {resp!r}")
        return resp

    # --- session --------------------------------------------------------------

    def connect(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.buf = b""
        greeting = self.reply()
        if not greeting.startswith("220"):
            raise RecorderError(greeting)
        self.expect(f"USER {self.username}", "331")
        self.expect(f"PASS {self.password}", "230")
        self.expect("CWD /", "250")
        self.expect("PWD", "257")
        self.cmd(f"CWD /{self.remote_dir}")  # may fail on the first run
        self.expect("TYPE I", "200")
        self.expect("PWD", "257")
        self.expect("CWD /", "250")
        self.expect("CWD /", "250")
        self.expect("PWD", "257")
        self.cmd(f"SIZE /{self.remote_dir}/DVRWorkDirectory")  # 550 when missing is fine

    def ensure_dirs(self, path: str) -> None:
        """For each level: CWD fails -> MKD -> CWD (an existing dir must not break it)."""
        self.expect("CWD /", "250")
        for part in path.strip("/").split("/"):
            if not self.cmd(f"CWD {part}").startswith("250"):
                self.expect(f"MKD {part}", "257")
                self.expect(f"CWD {part}", "250")

    def _pasv(self) -> socket.socket:
        resp = self.expect("PASV", "227")
        nums = [int(n) for n in re.search(r"(\d+,\d+,\d+,\d+,\d+,\d+)", resp).group(1).split(",")]  # type: ignore[union-attr]
        return socket.create_connection(
            (".".join(map(str, nums[:4])), nums[4] * 256 + nums[5]), timeout=30
        )

    def upload(self, directory: str, name: str, data: bytes, *, temp_suffix: bool) -> str:
        """STOR (optionally as `name_` then rename), the way the firmware does it."""
        self.ensure_dirs(directory)
        target = name + "_" if temp_suffix else name
        data_sock = self._pasv()
        self.expect(f"ALLO {len(data)}", "200")
        self.expect("REST 0", "350")
        self.expect(f"STOR {target}", "150", "125")
        data_sock.sendall(data)
        data_sock.close()
        started = time.perf_counter()
        final = self.reply()
        self.last_commit = time.perf_counter() - started  # end of data -> 226 (bench/fleet.py)
        if not final.startswith("226"):
            return final
        if temp_suffix:
            self.expect(f"RNFR {target}", "350")
            self.expect(f"RNTO {name}", "250")
        return final

    def video_clip(
        self, day: str, channel: int, start: str, end: str, size: int, flag: str = "M"
    ) -> str:
        directory = f"/{self.remote_dir}/{self.device_name}/{day}/{channel:03d}/dav/{start[:2]}"
        name = f"{start}-{end}[{flag}][0@0][0].mp4"
        return self.upload(directory, name, os.urandom(size), temp_suffix=True)

    def snapshot_burst(
        self, day: str, channel: int, hhmmss: str, count: int, size: int
    ) -> list[str]:
        hh, mm, ss = hhmmss.split(".")
        directory = f"/{self.remote_dir}/{self.device_name}/{day}/{channel:03d}/jpg/{hh}/{mm}"
        return [
            self.upload(directory, f"{ss}[M][0@0][{n}].jpg", os.urandom(size), temp_suffix=False)
            for n in range(count)
        ]

    def drop(self) -> None:
        """Recorders often just drop the connection: no QUIT."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def quit(self) -> None:
        self.cmd("QUIT")
        self.drop()


class DahuaSftpRecorder:
    """The same recorder over SFTP: stat/mkdir each level, write `name_`, rename."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        remote_dir: str = "NVR01",
        device_name: str = "AMC0009L_M35704",
    ) -> None:
        self.port, self.username, self.password = port, username, password
        self.remote_dir, self.device_name = remote_dir, device_name

    async def _ensure_dirs(self, sftp, path: str) -> None:  # type: ignore[no-untyped-def]
        import asyncssh

        current = ""
        for part in path.strip("/").split("/"):
            current += "/" + part
            try:
                await sftp.stat(current)
            except asyncssh.SFTPNoSuchFile:
                await sftp.mkdir(current)

    async def session(self, clips: list[tuple[str, int, str, str, int]]) -> list[str]:
        """Upload (day, channel, start, end, size) clips; returns 'ok' or the error per clip."""
        import asyncssh

        results = []
        async with asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=self.username,
            password=self.password,
            known_hosts=None,
            client_keys=None,
        ) as conn:
            async with conn.start_sftp_client() as sftp:
                for day, channel, start, end, size in clips:
                    directory = (
                        f"/{self.remote_dir}/{self.device_name}/{day}/{channel:03d}/dav/{start[:2]}"
                    )
                    name = f"{directory}/{start}-{end}[M][0@0][0].mp4"
                    try:
                        await self._ensure_dirs(sftp, directory)
                        async with sftp.open(name + "_", "wb") as f:
                            await f.write(os.urandom(size))
                        await sftp.rename(name + "_", name)
                        results.append("ok")
                    except asyncssh.SFTPError as exc:
                        results.append(f"{exc.__class__.__name__}: {exc.reason}")
        return results
