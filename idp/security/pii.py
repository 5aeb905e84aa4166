"""Personal data protection (PIPL): AES-GCM encryption at rest, keyed-hash index, masking.

Ciphertexts name the key that made them (``v1.<key id>.<base64 nonce+ct>``) so the key can be
rotated: a new key becomes active, ``idp pii rotate-key`` re-encrypts every row, and older keys
can then be retired. Look-ups and uniqueness never decrypt: they use an HMAC-SHA256 of the
normalised value under a separate index key, which is not rotated with the encryption key
(changing it would mean recomputing every index at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyringError(RuntimeError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Keyring:
    """Encryption keys by id, the active one, and the index key; kept as a JSON file."""

    def __init__(self, keys: dict[str, bytes], active: str, index_key: bytes, path: Path | None = None):
        if active not in keys:
            raise KeyringError("the active key is not in the keyring")
        self.keys = keys
        self.active = active
        self.index_key = index_key
        self.path = path

    @classmethod
    def load(cls, path: str | Path, create: bool) -> "Keyring":
        path = Path(path)
        if not path.exists():
            if not create:
                raise KeyringError(f"personal-data keyring {path} is missing")
            ring = cls({"k1": AESGCM.generate_key(256)}, "k1", secrets.token_bytes(32), path)
            ring.save()
            return ring
        data = json.loads(path.read_text())
        return cls(
            {kid: _unb64(k) for kid, k in data["keys"].items()},
            data["active"],
            _unb64(data["index_key"]),
            path,
        )

    def save(self) -> None:
        assert self.path is not None
        data = {
            "active": self.active,
            "keys": {kid: _b64(k) for kid, k in self.keys.items()},
            "index_key": _b64(self.index_key),
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        tmp.replace(self.path)

    def add_key(self) -> str:
        """Create a new key and make it active; older keys still decrypt."""
        number = 1 + max(int(kid.lstrip("k")) for kid in self.keys)
        kid = f"k{number}"
        self.keys[kid] = AESGCM.generate_key(256)
        self.active = kid
        return kid

    def retire_inactive(self) -> list[str]:
        retired = [kid for kid in self.keys if kid != self.active]
        for kid in retired:
            del self.keys[kid]
        return retired

    # -- encryption ------------------------------------------------------------------

    def encrypt(self, plaintext: str, context: str) -> str:
        """``context`` (table.column) is bound as associated data: a value moved to another
        column does not decrypt."""
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self.keys[self.active]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"v1.{self.active}.{_b64(nonce + ct)}"

    def decrypt(self, token: str, context: str) -> str:
        try:
            version, kid, body = token.split(".", 2)
            raw = _unb64(body)
            key = self.keys[kid]
        except (ValueError, KeyError) as exc:
            raise KeyringError("undecryptable personal data (unknown key or format)") from exc
        if version != "v1":
            raise KeyringError("unknown ciphertext version")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise KeyringError("personal data failed authentication (tampered or moved)") from exc

    def key_id_of(self, token: str) -> str:
        return token.split(".", 2)[1]

    # -- blind index -----------------------------------------------------------------

    def index(self, normalised: str, kind: str) -> str:
        """Keyed hash of a normalised value; ``kind`` separates phones from documents."""
        mac = hmac.new(self.index_key, f"{kind}:{normalised}".encode(), hashlib.sha256)
        return mac.hexdigest()


# -- masking (what is shown wherever personal data appears) --------------------------


def mask_middle(value: str | None, keep_start: int, keep_end: int) -> str:
    if not value:
        return ""
    if len(value) <= keep_start + keep_end:
        return value[0] + "*" * (len(value) - 1)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]


def mask_document(value: str | None) -> str:
    """110105********1234 for an 18-character ID; shorter documents keep 2 + 2."""
    if value and len(value) >= 15:
        return mask_middle(value, 6, 4)
    return mask_middle(value, 2, 2)


def mask_phone(value: str | None) -> str:
    if value and value.startswith("+"):
        return mask_middle(value, 4, 4)
    return mask_middle(value, 3, 4)


def mask_email(value: str | None) -> str:
    if not value or "@" not in value:
        return mask_middle(value, 1, 0)
    local, domain = value.rsplit("@", 1)
    return f"{local[0]}***@{domain}"


def mask_date(value) -> str:
    if not value:
        return ""
    return f"{str(value)[:4]}-**-**"


def mask_text(value: str | None) -> str:
    """Addresses and similar free text: the first few characters only."""
    if not value:
        return ""
    keep = min(6, max(1, len(value) // 3))
    return value[:keep] + "****"
