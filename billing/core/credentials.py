"""Login secrets: random device passwords and people's chosen passwords.

Device passwords are generated here, random and about 139 bits strong, so a
fast SHA-256 digest is as safe as a slow hash (there is no dictionary to try)
and keeps a recorder's reconnect loop cheap. Passwords that people choose
(viewer logins) are hashed with argon2.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import NamedTuple

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# No 0/O, 1/l/I: installers type these into a recorder's web page by hand.
_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
DEVICE_SECRET_LENGTH = 24  # log2(55) * 24 ~ 139 bits
_argon2 = PasswordHasher()


def new_device_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(DEVICE_SECRET_LENGTH))


def new_device_username() -> str:
    """Short, unambiguous, lower case: `c2d-` and 8 random characters."""
    alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
    return "c2d-" + "".join(secrets.choice(alphabet) for _ in range(8))


def new_api_key() -> tuple[str, str]:
    """An ERP's (key id, secret): the id is public, the secret (~190 bits) is shown once.

    Random like device passwords, so the secret is stored as a fast digest
    too (`hash_device_secret`) and every API call costs one SHA-256.
    """
    key_id = "c2dk_" + "".join(secrets.choice(_ALPHABET) for _ in range(16))
    return key_id, "".join(secrets.choice(_ALPHABET) for _ in range(33))


def hash_device_secret(secret: str) -> str:
    return "sha256$" + hashlib.sha256(secret.encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    return "argon2$" + _argon2.hash(password)


def verify(stored: str, given: str) -> bool:
    """Check `given` against a hash made by either scheme; never raises."""
    scheme, _, digest = stored.partition("$")
    if scheme == "sha256":
        candidate = hashlib.sha256(given.encode("utf-8", "surrogateescape")).hexdigest()
        return hmac.compare_digest(candidate, digest)
    if scheme == "argon2":
        try:
            return _argon2.verify(digest, given)
        except (VerificationError, InvalidHashError):
            return False
    return False


class PublicKey(NamedTuple):
    """An SSH public key as a DeviceKey row stores it (its fields are the row's columns)."""

    algorithm: str
    public_key: str  # the OpenSSH line, without its comment
    fingerprint: str  # SHA256
    comment: str | None


def parse_public_key(text: str) -> PublicKey:
    """Accepts OpenSSH (`ssh-ed25519 AAAA… comment`) and RFC 4716 formats."""
    import asyncssh

    from billing.core.errors import InvalidInput

    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError) as exc:
        raise InvalidInput("not an SSH public key: %(reason)s", reason=exc) from exc
    comment = key.get_comment()
    key.set_comment(None)
    line = key.export_public_key("openssh").decode().strip()
    return PublicKey(key.get_algorithm(), line, key.get_fingerprint("sha256"), comment)
