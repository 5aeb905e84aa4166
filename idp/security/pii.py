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
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class KeyringError(RuntimeError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class _State:
    """One consistent view of the keyring file; swapped as a whole when the file changes."""

    __slots__ = ("active", "index_key", "keys")

    def __init__(self, keys: dict[str, bytes], active: str, index_key: bytes) -> None:
        if active not in keys:
            raise KeyringError("the active key is not in the keyring")
        self.keys = keys
        self.active = active
        self.index_key = index_key


class Keyring:
    """Encryption keys by id, the active one, and the index key; kept as a JSON file.

    Every process (each server worker, each ``idp`` command) holds its own copy. Before it
    encrypts, decrypts or indexes, a keyring loaded from a file looks at the file's
    modification time, size and inode (at most once per ``reload_interval`` seconds, a single
    ``stat``) and reloads it when it changed, so a running server follows ``idp pii
    rotate-key`` within about a second instead of encrypting with a retired key.
    """

    reload_interval = 1.0  # seconds between two looks at the file

    def __init__(self, keys: dict[str, bytes], active: str, index_key: bytes, path: Path | None = None,
                 monotonic: Callable[[], float] = time.monotonic):
        self._state = _State(keys, active, index_key)
        self.path = Path(path) if path is not None else None
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._checked_at = monotonic()
        self._stamp = self._file_stamp()

    # The current state; attribute access keeps the keyring's simple shape for its callers.
    @property
    def keys(self) -> dict[str, bytes]:
        return self._state.keys

    @property
    def active(self) -> str:
        return self._state.active

    @property
    def index_key(self) -> bytes:
        return self._state.index_key

    @classmethod
    def load(cls, path: str | Path, create: bool,
             monotonic: Callable[[], float] = time.monotonic) -> "Keyring":
        path = Path(path)
        if not path.exists():
            if not create:
                raise KeyringError(f"personal-data keyring {path} is missing")
            ring = cls({"k1": AESGCM.generate_key(256)}, "k1", secrets.token_bytes(32), path, monotonic)
            ring.save()
            return ring
        state = cls._read(path)
        return cls(state.keys, state.active, state.index_key, path, monotonic)

    @staticmethod
    def _read(path: Path) -> _State:
        try:
            data = json.loads(path.read_text())
            return _State(
                {kid: _unb64(k) for kid, k in data["keys"].items()},
                data["active"],
                _unb64(data["index_key"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise KeyringError(f"personal-data keyring {path} is malformed") from exc

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.path is None:
            return None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def refresh(self, force: bool = False) -> bool:
        """Reload the file if it changed since it was read; True when it did.

        Cheap: without ``force`` it looks at the file at most once per ``reload_interval``.
        A file that vanished or cannot be parsed keeps the keys in memory (and the next look
        tries again): a half-copied keyring must not take the server down.
        """
        if self.path is None:
            return False
        now = self._monotonic()
        if not force and now - self._checked_at < self.reload_interval:
            return False
        with self._lock:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp is None or stamp == self._stamp:
                return False
            try:
                state = self._read(self.path)
            except (OSError, KeyringError):
                return False
            self._state = state
            self._stamp = stamp
            return True

    def save(self) -> None:
        if self.path is None:  # not an assert: those go under python -O
            raise KeyringError("this keyring has no file to be saved to")
        state = self._state
        data = {
            "active": state.active,
            "keys": {kid: _b64(k) for kid, k in state.keys.items()},
            "index_key": _b64(state.index_key),
        }
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle)
        tmp.replace(self.path)
        with self._lock:
            self._stamp = self._file_stamp()
            self._checked_at = self._monotonic()

    def add_key(self) -> str:
        """Create a new key and make it active; older keys still decrypt."""
        state = self._state
        number = 1 + max(int(kid.lstrip("k")) for kid in state.keys)
        kid = f"k{number}"
        self._state = _State({**state.keys, kid: AESGCM.generate_key(256)}, kid, state.index_key)
        return kid

    def retire_inactive(self) -> list[str]:
        state = self._state
        retired = [kid for kid in state.keys if kid != state.active]
        self._state = _State({state.active: state.keys[state.active]}, state.active, state.index_key)
        return retired

    # -- encryption ------------------------------------------------------------------

    def encrypt(self, plaintext: str, context: str) -> str:
        """``context`` (table.column) is bound as associated data: a value moved to another
        column does not decrypt."""
        self.refresh()
        state = self._state
        nonce = secrets.token_bytes(12)
        ct = AESGCM(state.keys[state.active]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"v1.{state.active}.{_b64(nonce + ct)}"

    def decrypt(self, token: str, context: str) -> str:
        self.refresh()
        try:
            version, kid, body = token.split(".", 2)
            raw = _unb64(body)
        except (ValueError, AttributeError) as exc:
            raise KeyringError("undecryptable personal data (unknown key or format)") from exc
        key = self._state.keys.get(kid)
        if key is None and self.refresh(force=True):
            # Written by a process that already uses a newer keyring: look again at once.
            key = self._state.keys.get(kid)
        if key is None:
            raise KeyringError("undecryptable personal data (unknown key or format)")
        if version != "v1":
            raise KeyringError("unknown ciphertext version")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode()).decode()
        except InvalidTag as exc:
            raise KeyringError("personal data failed authentication (tampered or moved)") from exc

    def encrypt_bytes(self, data: bytes, context: str) -> bytes:
        """Files (uploaded documents): ``v1.<key id>.`` then nonce and ciphertext, raw."""
        self.refresh()
        state = self._state
        nonce = secrets.token_bytes(12)
        ct = AESGCM(state.keys[state.active]).encrypt(nonce, data, context.encode())
        return f"v1.{state.active}.".encode() + nonce + ct

    def decrypt_bytes(self, blob: bytes, context: str) -> bytes:
        self.refresh()
        try:
            version, kid, raw = blob.split(b".", 2)
            kid = kid.decode()
        except (ValueError, UnicodeDecodeError) as exc:
            raise KeyringError("undecryptable document (unknown key or format)") from exc
        key = self._state.keys.get(kid)
        if key is None and self.refresh(force=True):
            key = self._state.keys.get(kid)
        if key is None or version != b"v1":
            raise KeyringError("undecryptable document (unknown key or format)")
        try:
            return AESGCM(key).decrypt(raw[:12], raw[12:], context.encode())
        except InvalidTag as exc:
            raise KeyringError("document failed authentication (tampered or moved)") from exc

    def key_id_of(self, token: str) -> str:
        return token.split(".", 2)[1]

    # -- blind index -----------------------------------------------------------------

    def index(self, normalised: str, kind: str) -> str:
        """Keyed hash of a normalised value; ``kind`` separates phones from documents."""
        self.refresh()
        mac = hmac.new(self._state.index_key, f"{kind}:{normalised}".encode(), hashlib.sha256)
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
