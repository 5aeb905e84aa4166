"""The WSGI layer in front of everything: /healthz, /readyz and /metrics, the request id, one
latency observation per request, the access log line and the line for each 404.

It sits outside the endpoints answered before Flask (idp.oauth.bare, idp.oauth.published), so
the busiest endpoints are measured without Flask's request context, and inside ProxyFix, so the
client address it sees is the one the trusted proxy forwarded.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import time

from idp.ops import health
from idp.ops.logs import REQUEST_ID, request_id_from

access_log = logging.getLogger("idp.access")
events_log = logging.getLogger("idp.events")

HEALTH, READY, METRICS = "/healthz", "/readyz", "/metrics"
ENDPOINT_ENVIRON_KEY = "idp.endpoint"  # the URL rule Flask matched (set by an after_request hook)
# Answered before Flask (no URL rule): their path is their endpoint label.
_BEFORE_FLASK = frozenset({"/token", "/userinfo", "/introspect", "/.well-known/openid-configuration",
                           "/jwks.json"})


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


class Operations:
    def __init__(self, app, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.metrics = app.extensions["idp.metrics"]
        cfg = app.config
        # X-Request-ID is taken only from the trusted proxy in front (the one ProxyFix
        # believes); a client talking to the server directly would choose its own log ids.
        self.trust_request_id = cfg["TRUSTED_PROXIES"] > 0
        self.access_log = cfg["ACCESS_LOG"]
        token = cfg["METRICS_TOKEN"]
        self.metrics_authorization = f"Bearer {token}".encode() if token else None

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        request_id = request_id_from(environ.get("HTTP_X_REQUEST_ID"), self.trust_request_id)
        if path in (HEALTH, READY, METRICS):
            return self._operations(path, environ, _with_request_id(start_response, request_id))
        environ["idp.request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = "500"

        def start(status_line, headers, exc_info=None):
            nonlocal status
            status = status_line[:3]
            # A new list: a layer below may keep its own (idp.oauth.published replays it).
            return start_response(status_line, [*headers, ("X-Request-ID", request_id)], exc_info)

        started = time.perf_counter()
        try:
            return self.wsgi_app(environ, start)
        finally:
            seconds = time.perf_counter() - started
            endpoint = environ.get(ENDPOINT_ENVIRON_KEY) or (path if path in _BEFORE_FLASK else "unmatched")
            self.metrics.observe_request(endpoint, status, seconds)
            if status == "404":
                events_log.info("not found", extra={"event": "not_found", "method": environ.get("REQUEST_METHOD"),
                                                    "path": path[:200]})
            if self.access_log:
                self._access_line(environ, path, status, seconds)
            REQUEST_ID.reset(token)

    def _access_line(self, environ, path, status, seconds) -> None:
        access_log.info("%s %s %s", environ.get("REQUEST_METHOD"), path[:500], status, extra={
            "client": environ.get("REMOTE_ADDR"), "method": environ.get("REQUEST_METHOD"), "path": path[:500],
            "protocol": environ.get("SERVER_PROTOCOL"), "status": int(status),
            "duration_ms": round(seconds * 1000, 3),
            "endpoint": environ.get(ENDPOINT_ENVIRON_KEY) or (path if path in _BEFORE_FLASK else None),
        })

    # -- the operators' own endpoints: no session, no access line, no latency sample ----------

    def _operations(self, path, environ, start_response):
        method = environ.get("REQUEST_METHOD")
        if method not in ("GET", "HEAD"):
            return _answer(start_response, "405 Method Not Allowed", {"error": "method_not_allowed"}, method,
                           [("Allow", "GET, HEAD")])
        if path == HEALTH:
            return _answer(start_response, "200 OK", {"status": "ok"}, method)
        if path == READY:
            checks = health.readiness(self.app)
            failed = sorted(name for name, result in checks.items() if result != "ok")
            if failed:
                return _answer(start_response, "503 Service Unavailable",
                               {"status": "unavailable", "failed": failed, "checks": checks}, method)
            return _answer(start_response, "200 OK", {"status": "ready", "checks": checks}, method)
        if not self._may_read_metrics(environ):
            # Not there for anyone else: the same answer as any unknown path.
            return _answer(start_response, "404 Not Found", {"error": "not_found"}, method)
        body = self.metrics.exposition()
        start_response("200 OK", [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"),
                                  ("Content-Length", str(len(body) if method == "GET" else 0)),
                                  ("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")])
        return [body] if method == "GET" else [b""]

    def _may_read_metrics(self, environ) -> bool:
        if _is_loopback(environ.get("REMOTE_ADDR")):
            return True
        sent = environ.get("HTTP_AUTHORIZATION", "").encode("latin-1", "replace")
        return self.metrics_authorization is not None and hmac.compare_digest(sent, self.metrics_authorization)


def _with_request_id(start_response, request_id):
    def start(status_line, headers, exc_info=None):
        return start_response(status_line, [*headers, ("X-Request-ID", request_id)], exc_info)

    return start


def _answer(start_response, status, data, method, extra_headers=()):
    body = json.dumps(data, separators=(",", ":")).encode()
    start_response(status, [("Content-Type", "application/json"), ("Cache-Control", "no-store"),
                            ("X-Content-Type-Options", "nosniff"),
                            ("Content-Length", str(len(body) if method != "HEAD" else 0)), *extra_headers])
    return [body] if method != "HEAD" else [b""]


def remember_endpoint(response):
    """Flask's after_request hook: the URL rule as the metrics' endpoint label (bounded: the
    rules, never the paths clients make up)."""
    from flask import request

    rule = request.url_rule
    if rule is not None:
        request.environ[ENDPOINT_ENVIRON_KEY] = rule.rule
    return response
