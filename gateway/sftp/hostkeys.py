"""Persistent SSH host keys, generated on first start.

Recorders and SFTP clients pin the host key on first connection: a key that
changed at every restart would make them refuse the server. Ed25519 for
modern clients, RSA 3072 for embedded ones that know nothing newer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import asyncssh

KEYS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("ssh_host_ed25519_key", "ssh-ed25519", {}),
    ("ssh_host_rsa_key", "ssh-rsa", {"key_size": 3072}),
)


def ensure_host_keys(directory: Path) -> list[asyncssh.SSHKey]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    keys = []
    for filename, alg, opts in KEYS:
        path = directory / filename
        if not path.exists():
            key = asyncssh.generate_private_key(alg, **opts)
            tmp = path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key.export_private_key())
            os.replace(tmp, path)
            (directory / f"{filename}.pub").write_bytes(key.export_public_key())
        keys.append(asyncssh.read_private_key(path))
    return keys
