"""The document-storage role: uploaded identity documents, kept encrypted outside the web root.

``EncryptedFileStorage`` writes one AES-GCM blob per document under
``<INSTANCE_DIR>/uploads/documents/`` with the personal-data keyring; the file's key is bound
as associated data, so a blob renamed to another key does not decrypt. Nothing under that
directory is ever served as a static file: reviewers see a document only through the console
(a case they hold, audited). Another backend (object storage) implements the same three
methods.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9a-f]{32}$")


class DocumentStorage(Protocol):
    def put(self, data: bytes) -> str:
        """Store and return the document's key."""

    def get(self, key: str) -> bytes:
        """The document's bytes; KeyError when there is none."""

    def delete(self, key: str) -> None:
        """Remove it (no error if it is gone)."""


class EncryptedFileStorage:
    def __init__(self, root: str | Path, keyring) -> None:
        self.root = Path(root)
        self.keyring = keyring

    def _path(self, key: str) -> Path:
        if not _KEY.match(key or ""):
            raise KeyError(key)
        return self.root / key[:2] / f"{key}.bin"

    def put(self, data: bytes) -> str:
        key = secrets.token_hex(16)
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        blob = self.keyring.encrypt_bytes(data, f"document:{key}")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        return key

    def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise KeyError(key) from None
        return self.keyring.decrypt_bytes(blob, f"document:{key}")

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink(missing_ok=True)
        except KeyError:
            pass


def create_document_storage(config: dict, keyring) -> DocumentStorage:
    return EncryptedFileStorage(Path(config["INSTANCE_DIR"]) / "uploads" / "documents", keyring)
