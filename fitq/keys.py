"""API keys: ``fitq_<prefix>_<secret>``. The store keeps the prefix (to find the key in one
lookup) and the SHA-256 of the secret (a 256-bit random secret needs no slow hash); the key
itself is shown once, when it is made."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

_KEY = re.compile(r"^fitq_([a-z0-9]{10})_([A-Za-z0-9_-]{43})$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


class Role(StrEnum):
    user = "user"
    admin = "admin"


@dataclass(frozen=True)
class NewKey:
    key: str  # shown once
    prefix: str
    secret_sha256: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate() -> NewKey:
    prefix = "".join(secrets.choice(_ALPHABET) for _ in range(10))
    secret = secrets.token_urlsafe(32)  # 43 characters
    return NewKey(f"fitq_{prefix}_{secret}", prefix, hash_secret(secret))


def parse(key: str) -> tuple[str, str] | None:
    """The prefix and secret of a well-formed key, else None."""
    match = _KEY.match(key)
    return (match.group(1), match.group(2)) if match else None


def matches(secret: str, secret_sha256: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_sha256)
