"""Uploading recordings as a Dahua recorder does: folders by MKD, clips as `name_` then renamed."""

from __future__ import annotations

import ftplib

from tests.support.stack import put


def mkdirs(ftp: ftplib.FTP, path: str) -> None:
    """MKD every folder of `path`'s parent; an existing one is fine."""
    parts = path.split("/")[:-1]
    for i in range(1, len(parts) + 1):
        try:
            ftp.mkd("/".join(parts[:i]))
        except ftplib.error_perm:
            pass


def upload(ftp: ftplib.FTP, path: str, data: bytes = b"x" * 100) -> None:
    """A snapshot in one STOR; a clip as `name_`, then RNFR/RNTO to `name`."""
    mkdirs(ftp, path)
    if path.endswith(".jpg"):
        put(ftp, path, data)
        return
    put(ftp, path + "_", data)
    ftp.rename(path + "_", path)
