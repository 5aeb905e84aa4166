"""The development senders' outbox: each message one JSON line in a file under the instance
folder, listed newest first on the development page (/dev/sms-outbox) and read by the tests."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path


class Outbox:
    def __init__(self, path: str | Path, clock) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()

    def _write(self, to: str, template: str, params: dict, **rendered) -> str:
        message_id = "outbox-" + secrets.token_hex(8)
        line = json.dumps({"message_id": message_id, "time": self.clock.now().isoformat(), "to": to,
                           "template": template, "params": params, **rendered}, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        return message_id

    def messages(self, limit: int = 50) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-limit:]
        return [json.loads(line) for line in reversed(lines)]
