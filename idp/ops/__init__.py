"""Operations: health and readiness probes, Prometheus metrics, JSON logs with request ids
(INTERFACES.md "Operations", docs/operations.md)."""

from __future__ import annotations

from idp.ops import events, logs
from idp.ops.metrics import Metrics
from idp.ops.middleware import Operations, remember_endpoint


def install(app, wsgi_app):
    """Set up logging, metrics and the signal subscribers; returns the WSGI layer to put in
    front of ``wsgi_app`` (inside ProxyFix)."""
    logs.configure(app.config["LOG_FORMAT"])
    app.extensions["idp.metrics"] = Metrics(app)
    events.connect()
    app.after_request(remember_endpoint)
    return Operations(app, wsgi_app)
