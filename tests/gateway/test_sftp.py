"""SFTP on the shared pipeline: asyncssh client, OpenSSH sftp, curl, lftp."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import asyncssh
import pytest

from tests.support.sftp import sftp_connect, sftp_run, stuck_uploader
from tests.support.stack import MiB, Stack, stack_with


@pytest.fixture
def sftp_port(stack: Stack) -> int:
    return stack.start_sftp()


def test_upload_download_list_rename_remove(stack: Stack, sftp_port: int) -> None:
    dev = stack.device()
    big, small = os.urandom(12 * MiB + 5), os.urandom(70_000)

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        await sftp.makedirs("2026-11-22/001/dav/10")
        await sftp.mkdir("2026-11-22/001/jpg")
        async with sftp.open("2026-11-22/001/dav/10/a.mp4_", "wb") as f:
            await f.write(big)
        await sftp.rename("2026-11-22/001/dav/10/a.mp4_", "2026-11-22/001/dav/10/a.mp4")
        async with sftp.open("2026-11-22/001/jpg/52[M][0@0][0].jpg", "wb") as f:
            await f.write(small)
        assert await sftp.getsize("2026-11-22/001/dav/10/a.mp4") == len(big)
        assert sorted(await sftp.listdir("2026-11-22/001")) == [".", "..", "dav", "jpg"]
        async with sftp.open("2026-11-22/001/dav/10/a.mp4", "rb") as f:
            assert await f.read() == big
        async with sftp.open("2026-11-22/001/dav/10/a.mp4", "rb") as f:
            await f.seek(5 * MiB + 3)
            assert await f.read(1000) == big[5 * MiB + 3 : 5 * MiB + 1003]
        assert await sftp.isdir("2026-11-22") and not await sftp.exists("nope")
        assert await sftp.realpath("a/../b/.") == "/b"
        await sftp.remove("2026-11-22/001/jpg/52[M][0@0][0].jpg")
        await sftp.rmdir("2026-11-22/001/jpg")
        with pytest.raises(asyncssh.SFTPFailure):
            await sftp.rmdir("2026-11-22/001/dav")  # not empty
        await sftp.mkdir("2026-11-22/001/dav")  # existing directory: fine

    sftp_run(sftp_port, dev.username, dev.password, flow)
    assert stack.drive(dev).committed_bytes == len(big)
    stack.assert_consistent(dev)


def test_requests_limited_to_one_packet_and_larger_still_served(
    stack: Stack, sftp_port: int
) -> None:
    """The gateway advertises 255 KiB reads and writes (limits@openssh.com), not
    asyncssh's 4 MiB, so a client that follows it sends no request a session
    must gather whole; a client that ignores it is still served, byte-exact."""
    dev = stack.device()
    data = os.urandom(9 * MiB + 11)

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        assert sftp.limits.max_write_len == 255 * 1024
        assert sftp.limits.max_read_len == 255 * 1024
        async with sftp.open("follows.dav", "wb") as f:  # block size from the limits
            await f.write(data)
            assert (await f.stat()).size == len(data)
        async with sftp.open("ignores.dav", "wb", block_size=4 * MiB) as f:
            await f.write(data)
        for name in ("follows.dav", "ignores.dav"):
            async with sftp.open(name, "rb", block_size=4 * MiB) as f:
                assert await f.read() == data

    sftp_run(sftp_port, dev.username, dev.password, flow)
    assert stack.drive(dev).committed_bytes == 2 * len(data)
    stack.assert_consistent(dev)


def test_out_of_order_writes_within_window_and_holes(stack: Stack, sftp_port: int) -> None:
    dev = stack.device()
    data = os.urandom(3 * MiB)

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        async with sftp.open("ooo.bin", "wb") as f:  # three blocks, sent 2, 0, 1
            await f.write(data[2 * MiB :], 2 * MiB)
            await f.write(data[:MiB], 0)
            await f.write(data[MiB : 2 * MiB], MiB)
        async with sftp.open("ooo.bin", "rb") as f:
            assert await f.read() == data
        f = await sftp.open("hole.bin", "wb")
        await f.write(b"x" * 100, 0)
        await f.write(b"y" * 100, 1000)  # bytes 100..999 never come
        with pytest.raises(asyncssh.SFTPFailure, match="hole"):
            await f.close()
        f = await sftp.open("far.bin", "wb")
        with pytest.raises(asyncssh.SFTPOpUnsupported, match="hole"):
            await f.write(b"z", 64 * MiB)
        with pytest.raises(asyncssh.SFTPError):
            await f.close()
        assert sorted(await sftp.listdir(".")) == [".", "..", "ooo.bin"]

    sftp_run(sftp_port, dev.username, dev.password, flow)
    stack.assert_consistent(dev)


def test_quota_entitlement_and_bad_paths(stack: Stack, sftp_port: int) -> None:
    dev = stack.device(capacity="1000B", on_full="reject")

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        async with sftp.open("a", "wb") as f:
            await f.write(b"x" * 900)
        f = await sftp.open("b", "wb")
        await f.write(b"y" * 200)
        with pytest.raises(asyncssh.SFTPFailure, match="Drive is full"):
            await f.close()
        for bad in ("../x", "/../../etc/passwd", "a" * 256, "bad\x01name"):
            with pytest.raises(asyncssh.SFTPFailure):
                async with sftp.open(bad, "wb") as f:
                    await f.write(b"nope")
        with pytest.raises(asyncssh.SFTPError):
            await sftp.symlink("a", "link")
        assert sorted(await sftp.listdir("/")) == [".", "..", "a"]

    sftp_run(sftp_port, dev.username, dev.password, flow)
    stack.set_status(dev, "blocked")

    async def blocked(sftp: asyncssh.SFTPClient) -> None:
        with pytest.raises(asyncssh.SFTPPermissionDenied, match="blocked"):
            async with sftp.open("c", "wb") as f:
                await f.write(b"z")
        async with sftp.open("a", "rb") as f:  # still readable
            assert await f.read() == b"x" * 900

    sftp_run(sftp_port, dev.username, dev.password, blocked)
    stack.assert_consistent(dev)


def test_viewer_sees_own_devices_read_only(stack: Stack, sftp_port: int) -> None:
    dev = stack.device()
    other = stack.device()
    with stack.ftp(dev) as ftp:
        import io

        ftp.mkd("2026")
        ftp.storbinary("STOR 2026/clip.mp4", io.BytesIO(b"recording" * 1000))
    with stack.ftp(other) as ftp:
        ftp.storbinary("STOR secret.mp4", io.BytesIO(b"other customer"))
    email, password = stack.viewer(dev)
    from sqlmodel import select

    from billing.core.db import session_scope
    from billing.core.models import Device

    with session_scope(stack.engine) as s:
        name = s.exec(select(Device).where(Device.id == dev.device_id)).one().name

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        assert sorted(await sftp.listdir("/")) == [".", "..", name]
        async with sftp.open(f"/{name}/2026/clip.mp4", "rb") as f:
            await f.seek(9 * 500)
            assert await f.read() == (b"recording" * 1000)[4500:]
        for op in (
            lambda: sftp.remove(f"/{name}/2026/clip.mp4"),
            lambda: sftp.mkdir(f"/{name}/new"),
            lambda: sftp.rename(f"/{name}/2026", f"/{name}/2027"),
            lambda: sftp.mkdir("/x"),
        ):
            with pytest.raises(asyncssh.SFTPPermissionDenied, match="Read-only login"):
                await op()
        with pytest.raises(asyncssh.SFTPPermissionDenied):
            async with sftp.open(f"/{name}/up.jpg", "wb") as f:
                await f.write(b"no")
        with pytest.raises(asyncssh.SFTPNoSuchFile):
            await sftp.stat(f"/{other.username}")

    sftp_run(sftp_port, email, password, flow)
    # over FTP, the same view and the same refusals; resume with REST
    import ftplib
    import io

    with stack.ftp() as ftp:
        ftp.login(email, password)
        assert ftp.nlst("/") == [name]
        buf = io.BytesIO()
        ftp.retrbinary(f"RETR /{name}/2026/clip.mp4", buf.write, rest=9000)
        assert buf.getvalue() == (b"recording" * 1000)[9000:]
        with pytest.raises(ftplib.error_perm, match="^550 Read-only login"):
            ftp.storbinary(f"STOR /{name}/x.jpg", io.BytesIO(b"no"))
        with pytest.raises(ftplib.error_perm, match="^550 Read-only login"):
            ftp.delete(f"/{name}/2026/clip.mp4")
    stack.assert_consistent(dev)


def test_device_login_never_sees_viewer_tree(stack: Stack, sftp_port: int) -> None:
    dev = stack.device()
    stack.viewer(dev)

    async def flow(sftp: asyncssh.SFTPClient) -> None:
        assert await sftp.listdir("/") == [".", ".."]  # its own drive, not device folders

    sftp_run(sftp_port, dev.username, dev.password, flow)


def test_public_key_login_and_cli(stack: Stack, sftp_port: int, tmp_path: Path) -> None:
    dev = stack.device()
    key = asyncssh.generate_private_key("ssh-ed25519", comment="nvr-key")
    (tmp_path / "id.pub").write_bytes(key.export_public_key())
    env = {**os.environ, "CAM2DRIVE_DATABASE_URL": stack.db_url}
    import sys

    bin_ = str(Path(sys.executable).parent / "cam2drive")
    added = subprocess.run(
        [bin_, "device", "add-key", dev.username, str(tmp_path / "id.pub"), "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr
    listed = subprocess.run(
        [bin_, "device", "keys", str(dev.device_id)], env=env, capture_output=True, text=True
    )
    assert key.get_fingerprint("sha256") in listed.stdout

    async def main() -> list[str]:
        async with asyncssh.connect(
            "127.0.0.1", sftp_port, username=dev.username, client_keys=[key], known_hosts=None
        ) as conn:
            async with conn.start_sftp_client() as sftp:
                async with sftp.open("k.jpg", "wb") as f:
                    await f.write(b"by key")
                return await sftp.listdir(".")

    assert "k.jpg" in asyncio.run(main())
    removed = subprocess.run(
        [bin_, "device", "remove-key", dev.username, key.get_fingerprint("sha256")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert removed.returncode == 0, removed.stderr
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(main())
    bad = subprocess.run(
        [bin_, "device", "add-key", dev.username, str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_no_shell_exec_or_forwarding(stack: Stack, sftp_port: int) -> None:
    dev = stack.device()

    async def main() -> None:
        async with sftp_connect(sftp_port, dev.username, dev.password) as conn:
            with pytest.raises(asyncssh.ChannelOpenError):
                await conn.create_connection(asyncssh.SSHTCPSession, "127.0.0.1", 22)
            for command in ("id", None):  # exec and shell requests are both refused
                with pytest.raises(asyncssh.ChannelOpenError, match="Session request failed"):
                    await conn.run(command, check=False)

    asyncio.run(main())


def test_client_killed_mid_upload(stack: Stack, sftp_port: int) -> None:
    import time

    dev = stack.device()
    body = """
        f = await sftp.open("killed.dav", "wb")
        await f.write(os.urandom(7 * 1024 * 1024))
    """
    proc = stuck_uploader(sftp_port, dev.username, dev.password, body)
    deadline = time.monotonic() + 10
    while stack.drive(dev).reserved_bytes == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 15
    while stack.drive(dev).reserved_bytes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stack.entries(dev) == {}
    stack.assert_consistent(dev)


def test_openssh_sftp_batch(stack: Stack, sftp_port: int, tmp_path: Path) -> None:
    dev = stack.device()
    key = asyncssh.generate_private_key("ssh-ed25519")
    keyfile = tmp_path / "id_ed25519"
    keyfile.write_bytes(key.export_private_key())
    keyfile.chmod(0o600)
    (tmp_path / "id.pub").write_bytes(key.export_public_key())
    from billing import catalog as accounts
    from billing.core.db import session_scope

    with session_scope(stack.engine) as s:
        accounts.add_device_key(s, dev.device_id, (tmp_path / "id.pub").read_text(), actor="t")
    src = tmp_path / "clip.mp4"
    src.write_bytes(os.urandom(9 * MiB))
    batch = tmp_path / "batch"
    batch.write_text(
        f"-mkdir 2026\nmkdir 2026\nput {src} 2026/clip.mp4_\n"
        "rename 2026/clip.mp4_ 2026/clip.mp4\nls -l 2026\n"
        f"get 2026/clip.mp4 {tmp_path / 'back.mp4'}\n"
    )
    proc = subprocess.run(
        [
            "sftp",
            "-b",
            str(batch),
            "-P",
            str(sftp_port),
            "-i",
            str(keyfile),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-vvv",
            f"{dev.username}@127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    # the session channel lets the client send 256 KiB packets (sftp_max_packet)
    assert re.search(r"open confirm rwindow \d+ rmax 262144\b", proc.stderr), proc.stderr[-2000:]
    assert "clip.mp4" in proc.stdout
    assert (tmp_path / "back.mp4").read_bytes() == src.read_bytes()
    stack.assert_consistent(dev)


def test_curl_sftp(stack: Stack, sftp_port: int, tmp_path: Path) -> None:
    dev = stack.device()
    src = tmp_path / "snap.jpg"
    src.write_bytes(os.urandom(3 * MiB + 17))
    base = f"sftp://{dev.username}:{dev.password}@127.0.0.1:{sftp_port}"
    up = subprocess.run(
        ["curl", "-sS", "-k", "--ftp-create-dirs", "-T", str(src), f"{base}/jpg/09/snap.jpg"],
        capture_output=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    down = subprocess.run(
        ["curl", "-sS", "-k", f"{base}/jpg/09/snap.jpg"], capture_output=True, timeout=120
    )
    assert down.stdout == src.read_bytes()
    resumed = subprocess.run(
        ["curl", "-sS", "-k", "-C", "1000", f"{base}/jpg/09/snap.jpg"],
        capture_output=True,
        timeout=120,
    )
    assert resumed.stdout == src.read_bytes()[1000:]
    stack.assert_consistent(dev)


def test_lftp_sftp_mirror(stack: Stack, sftp_port: int, tmp_path: Path) -> None:
    dev = stack.device()
    local = tmp_path / "rec"
    (local / "001").mkdir(parents=True)
    files = {f"001/{i}[M][0@0][0].jpg": os.urandom(50_000 + i) for i in range(5)}
    for name, data in files.items():
        (local / name).write_bytes(data)
    cmds = (
        f"set sftp:auto-confirm yes; open -u {dev.username},{dev.password} "
        f"sftp://127.0.0.1:{sftp_port}; mirror -R {local} /rec; cls -1 /rec/001; bye"
    )
    proc = subprocess.run(["lftp", "-c", cmds], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p for p, e in stack.entries(dev).items() if not e.is_dir) == sorted(
        f"rec/{n}" for n in files
    )
    stack.assert_consistent(dev)


def test_failed_sftp_logins_ban_the_address_everywhere(stack: Stack, sftp_port: int) -> None:
    import ftplib

    from sqlalchemy import delete

    from billing.core.models import LoginFailure

    def clear() -> None:
        with stack.engine.begin() as conn:
            conn.execute(delete(LoginFailure.__table__))  # type: ignore[attr-defined]

    clear()
    dev = stack.device()
    for _ in range(stack.settings.ban_max_failures):
        with pytest.raises(asyncssh.PermissionDenied):
            sftp_run(sftp_port, dev.username, "wrong", lambda sftp: sftp.listdir("."))
    with pytest.raises((asyncssh.DisconnectError, asyncssh.PermissionDenied)):
        sftp_run(sftp_port, dev.username, dev.password, lambda sftp: sftp.listdir("."))
    with pytest.raises(ftplib.error_temp, match="^421 Too many failed logins"):
        stack.ftp()
    clear()
    assert sftp_run(sftp_port, dev.username, dev.password, lambda sftp: sftp.listdir(".")) == [
        ".",
        "..",
    ]


def test_host_keys_persist_and_legacy_algorithms(db_url: str, seaweed, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Keys are made once and reused; legacy mode lets an old client in."""
    old_client = {
        "kex_algs": ["diffie-hellman-group14-sha1"],
        "encryption_algs": ["aes128-cbc"],
        "mac_algs": ["hmac-sha1"],
    }

    def fingerprint_and_login(legacy: bool) -> tuple[str, bool]:
        with stack_with(
            db_url, seaweed, sftp_host_key_dir=tmp_path / "keys", sftp_legacy_algorithms=legacy
        ) as stack:
            port = stack.start_sftp()
            dev = stack.device()

            async def probe() -> tuple[str, bool]:
                async with sftp_connect(
                    port, dev.username, dev.password, server_host_key_algs=["ssh-ed25519"]
                ) as conn:
                    fp = conn.get_server_host_key().get_fingerprint("sha256")
                    # OpenSSH's preference (chacha20 first) lands on AES-GCM by default
                    cipher = conn.get_extra_info("send_cipher")
                    assert legacy or (cipher.startswith("aes") and "gcm" in cipher), cipher
                try:
                    async with sftp_connect(port, dev.username, dev.password, **old_client):
                        return fp, True
                except (asyncssh.KeyExchangeFailed, asyncssh.DisconnectError):
                    return fp, False

            return asyncio.run(probe())

    fp1, old_ok_default = fingerprint_and_login(legacy=False)
    fp2, old_ok_legacy = fingerprint_and_login(legacy=True)
    assert fp1 == fp2  # same host key after a restart
    assert not old_ok_default and old_ok_legacy
    assert (tmp_path / "keys" / "ssh_host_rsa_key").exists()
    assert (tmp_path / "keys" / "ssh_host_ed25519_key").stat().st_mode & 0o077 == 0
    rsa = asyncssh.read_private_key(tmp_path / "keys" / "ssh_host_rsa_key")
    assert rsa.pyca_key.key_size >= 3072
