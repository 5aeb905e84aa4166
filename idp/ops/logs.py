"""Log lines for operators: plain text, or one JSON object per line (IDP_LOG_FORMAT=json),
each carrying the request id of the request it was written in."""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import secrets
import sys
import time
from contextvars import ContextVar

# The id of the request being answered in this thread (set by idp.ops.middleware).
REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

# What a proxy may hand over as X-Request-ID: nginx's $request_id (32 hex), UUIDs, ULIDs,
# base64 ids. Nothing that could break a log line or a header (no spaces, quotes, controls).
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


def request_id_from(header: str | None, trusted: bool) -> str:
    """The proxy's id when it is trusted and the id is sane; otherwise a new one."""
    if trusted and header and _SANE_REQUEST_ID.fullmatch(header):
        return header
    return f"{_ids.prefix}{next(_ids.counter):016x}"


class _Ids:
    """New ids: 32 hex characters like nginx's $request_id, a random prefix per process and a
    counter. An id only has to be unique, not secret; a random one per request (a system call)
    cost 2.8 µs, this 0.3 (docs/operations.md)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)


_ids = _Ids()
os.register_at_fork(after_in_child=_ids.reset)  # a forked worker (gunicorn) gets its own prefix


_STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "request_id", "color_message", "taskName"}


def _extras(record: logging.LogRecord) -> dict:
    return {key: value for key, value in record.__dict__.items() if key not in _STANDARD_ATTRIBUTES}


def _request_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, request_id when
    the line was written for a request, and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                  + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = _request_id(record)
        if request_id:
            data["request_id"] = request_id
        data.update(_extras(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """``[time] LEVEL logger: message key=value …``; values JSON-quoted when they hold
    anything but plain characters, so a path sent by a client cannot forge a line."""

    def __init__(self) -> None:
        super().__init__("[%(asctime)s] %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S %z")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _extras(record)
        request_id = _request_id(record)
        if request_id:
            fields["request_id"] = request_id
        return line + "".join(f" {key}={_quoted(value)}" for key, value in fields.items())


_PLAIN = re.compile(r"[A-Za-z0-9._:/@+=-]*")


def _quoted(value) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text, ensure_ascii=False)


class AccessFormatter(logging.Formatter):
    """The access line: the familiar shape in text, one object in JSON."""

    def __init__(self, log_format: str) -> None:
        super().__init__()
        self.json = JsonFormatter() if log_format == "json" else None

    def format(self, record: logging.LogRecord) -> str:
        if self.json is not None:
            return self.json.format(record)
        f = record.__dict__
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(record.created))
        return (f'{f["client"]} - - [{when}] "{f["method"]} {_escaped(f["path"])} {f["protocol"]}" '
                f'{f["status"]} {f["duration_ms"]:.3f} request_id={_request_id(record)}')


def _escaped(text: str) -> str:
    return text.encode("unicode_escape").decode("ascii").replace('"', '\\"')


class _CurrentStream(logging.StreamHandler):
    """Writes to whatever sys.stdout / sys.stderr is at the time (tests capture them)."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name_of_stream = name

    @property
    def stream(self):
        return getattr(sys, self.name_of_stream)

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ sets it
        pass


_HANDLER_MARK = "_idp_ops_handler"


def configure(log_format: str) -> None:
    """Application events (logger ``idp``) on stderr, access lines (``idp.access``) on stdout,
    in the chosen format. Idempotent: each app built in a process replaces the handlers."""
    for name, stream, formatter in (
        ("idp", "stderr", JsonFormatter() if log_format == "json" else TextFormatter()),
        ("idp.access", "stdout", AccessFormatter(log_format)),
    ):
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, _HANDLER_MARK, False)]:
            logger.removeHandler(handler)
        handler = _CurrentStream(stream)
        setattr(handler, _HANDLER_MARK, True)
        handler.setFormatter(formatter)
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    logging.getLogger("idp.access").propagate = False
    # Alembic's fileConfig (idp/migrations/env.py) disables every logger that existed before
    # it ran; an app built after a migration in the same process logs again.
    for name, logger in logging.root.manager.loggerDict.items():
        if (name == "idp" or name.startswith("idp.")) and isinstance(logger, logging.Logger):
            logger.disabled = False


def server_dictconfig(loggers: dict[str, str]) -> dict:
    """A ``logging.config`` dictionary that writes the server's own loggers (name → stream) as
    JSON lines: granian's ``_granian`` and gunicorn's ``gunicorn.error``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "idp.ops.logs.JsonFormatter"}},
        "handlers": {
            name: {"class": "logging.StreamHandler", "formatter": "json", "stream": f"ext://sys.{stream}"}
            for name, stream in loggers.items()
        },
        "loggers": {name: {"handlers": [name], "level": "INFO", "propagate": False} for name in loggers},
    }
