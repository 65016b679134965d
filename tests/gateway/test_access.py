"""Entitlement, tenant isolation, bad input and IP bans, over real FTP."""

from __future__ import annotations

import ftplib
import socket

import pytest

from billing.core.settings import Settings
from cli.devstack.seaweed import SeaweedServer, free_port
from tests.support.stack import Stack, passive_range, put, stack_with

# --- entitlement -------------------------------------------------------------------


def test_no_subscription_logs_in_but_cannot_write(stack: Stack) -> None:
    dev = stack.device(grant=False)
    with stack.ftp() as ftp:
        welcome = ftp.login(dev.username, dev.password)
        assert welcome.startswith("230") and "no subscription" in welcome
        with pytest.raises(ftplib.error_perm, match="^532 Uploads refused: this device has no "):
            put(ftp, "a.jpg", b"data")
        with pytest.raises(ftplib.error_perm, match="^532"):
            ftp.mkd("2026-11-22")
    stack.assert_consistent(dev)
    assert stack.entries(dev) == {}


@pytest.mark.parametrize(
    "status,reason",
    [
        ("blocked", "blocked for non-payment"),
        ("suspended", "suspended"),
        ("deleted", "drive was deleted"),
        ("pending", "waiting for the first payment"),
        ("cancelled", "cancelled"),
    ],
)
def test_inactive_subscription_refused_with_reason(stack: Stack, status: str, reason: str) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        put(ftp, "before.jpg", b"ok")
        stack.set_status(dev, status)  # changes mid-session: the next STOR sees it
        with pytest.raises(ftplib.error_perm, match=f"^532 .*{reason}"):
            put(ftp, "after.jpg", b"no")
        assert ftp.nlst() == ["before.jpg"]  # still readable
    stack.set_status(dev, "past_due")  # grace period: uploads continue
    with stack.ftp(dev) as ftp:
        assert put(ftp, "grace.jpg", b"ok").startswith("226")
    stack.assert_consistent(dev)


# --- isolation ---------------------------------------------------------------------


def test_device_cannot_see_or_touch_another_drive(stack: Stack) -> None:
    a, b = stack.device(), stack.device()
    with stack.ftp(b) as ftp:
        ftp.mkd("secret")
        put(ftp, "secret/b.jpg", b"B's recording")
    with stack.ftp(a) as ftp:
        assert ftp.nlst() == []
        for path in (
            "secret/b.jpg",
            "/secret/b.jpg",
            f"/{b.prefix}secret/b.jpg",
            f"/t/{b.customer_id}/d/{b.device_id}/secret/b.jpg",
        ):
            with pytest.raises(ftplib.error_perm, match="^55"):
                ftp.retrbinary(f"RETR {path}", lambda _: None)
            with pytest.raises(ftplib.error_perm, match="^55"):
                ftp.delete(path)
        for path in ("../secret/b.jpg", "../../t", "/../x", "a/../../x"):
            with pytest.raises(ftplib.error_perm, match="^553 Path leaves the drive"):
                put(ftp, path, b"escape")
            with pytest.raises(ftplib.error_perm, match="^553"):
                ftp.cwd(path)
        put(ftp, "/abs.jpg", b"absolute paths are inside the drive")
        assert ftp.nlst("/") == ["abs.jpg"]
    assert set(stack.entries(b)) == {"secret", "secret/b.jpg"}
    stack.assert_consistent(a)
    stack.assert_consistent(b)


# --- bad input -----------------------------------------------------------------------


def raw_session(stack: Stack, username: str, password: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", stack.port), timeout=10)
    sock.recv(1024)
    for line in (f"USER {username}\r\n", f"PASS {password}\r\n"):
        sock.sendall(line.encode())
        assert sock.recv(1024)[:1] in (b"3", b"2")
    return sock


def command(sock: socket.socket, raw: bytes) -> str:
    sock.sendall(raw + b"\r\n")
    return sock.recv(4096).decode("utf-8", "replace")


def test_bad_paths_get_clear_replies_and_change_nothing(stack: Stack) -> None:
    dev = stack.device()
    sock = raw_session(stack, dev.username, dev.password)
    assert command(sock, b"MKD " + b"a" * 256).startswith("553 A path component is longer than 255")
    assert command(sock, b"MKD " + b"/".join([b"d" * 200] * 6)).startswith(
        "553 Path is longer than 1024"
    )
    assert command(sock, b"MKD bad\x01name").startswith("553 Path contains a control character")
    assert command(sock, b"MKD bad\x00name").startswith("553 Path contains a NUL")
    assert command(sock, b"MKD ../up").startswith("553 Path leaves the drive")
    assert command(sock, b"CWD /../..").startswith("553")
    # GB2312 bytes (a Chinese-locale firmware): decoded with the GB18030 fallback
    assert command(sock, "MKD 通道一".encode("gb2312")).startswith('257 "/通道一" created')
    assert command(sock, b"NOOP").startswith("200")
    sock.close()
    assert set(stack.entries(dev)) == {"通道一"}


def test_invalid_utf8_refused_when_no_fallback(db_url: str, seaweed: SeaweedServer) -> None:
    with stack_with(db_url, seaweed, path_fallback_encoding="refuse") as stack:
        dev = stack.device()
        sock = raw_session(stack, dev.username, dev.password)
        assert command(sock, b"MKD \xff\xfe").startswith(
            "501 Command refused: path is not valid UTF-8"
        )
        assert command(sock, b"PWD").startswith('257 "/"')  # the session goes on
        sock.close()
        assert stack.entries(dev) == {}


def test_ftp_bounce_is_refused(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp(dev) as ftp:
        with pytest.raises(ftplib.error_perm, match="^501 Rejected data connection to foreign"):
            ftp.sendcmd("PORT 10,0,0,1,200,10")
        with pytest.raises(ftplib.error_perm, match="^501"):
            ftp.sendcmd("EPRT |1|192.0.2.7|4000|")
        with pytest.raises(ftplib.error_perm, match="^501 .*privileged"):
            ftp.sendcmd("PORT 127,0,0,1,0,25")


def test_wrong_password_and_unknown_user(stack: Stack) -> None:
    dev = stack.device()
    with stack.ftp() as ftp:
        with pytest.raises(ftplib.error_perm, match="^530 Login incorrect"):
            ftp.login(dev.username, "wrong")
    with stack.ftp() as ftp:
        with pytest.raises(ftplib.error_perm, match="^530"):
            ftp.login("nobody", dev.password)


def test_ip_ban_is_shared_by_every_node(stack: Stack) -> None:
    from sqlalchemy import delete

    from billing.core.models import LoginFailure

    def clear_bans() -> None:
        with stack.engine.begin() as conn:
            conn.execute(delete(LoginFailure.__table__))  # type: ignore[attr-defined]

    clear_bans()  # earlier tests failed logins from 127.0.0.1 too
    dev = stack.device()
    st = Settings(
        **{
            **stack.settings.model_dump(),
            "ban_max_failures": 3,
            "ftp_port": free_port(),
            "ftp_passive_ports": passive_range(),
        }
    )
    node_b = stack.start_gateway(st)
    # the ban threshold is per node's setting: node B bans after 3 failures
    for _ in range(3):
        with stack.ftp(port=node_b) as ftp:
            with pytest.raises(ftplib.error_perm):
                ftp.login(dev.username, "wrong")
    # node A (same database) refuses the address at once, even with the right password
    with pytest.raises(ftplib.error_temp, match="^421 Too many failed logins from 127.0.0.1"):
        stack.ftp()
    with pytest.raises(ftplib.error_temp, match="^421"):  # node B too, of course
        stack.ftp(port=node_b)
    # clearing the ban (operator or expiry) lets the device in again
    clear_bans()
    with stack.ftp(dev) as ftp:
        assert ftp.pwd() == "/"
