"""The provider served on a loopback port for one test, with the issuer at the real address.

The listening socket is opened first (port 0), so that the issuer can name the real port before
the app is built; the app is plugged in once the ``app`` fixture has made it. Used by the
browser journeys (tests/browser/conftest.py) and by schemathesis (tests/integration), each
importing these fixtures into its own scope."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server


class _LateApp:
    """A WSGI callable that forwards to the app once the app fixture has built it."""

    def __init__(self) -> None:
        self.app = None

    def __call__(self, environ, start_response):
        return self.app(environ, start_response)


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs) -> None:  # one line per request only drowns failures
        pass


@pytest.fixture
def _listening():
    target = _LateApp()
    server = make_server("127.0.0.1", 0, target, threaded=True, request_handler=_QuietHandler)
    yield server, target
    server.server_close()


@pytest.fixture
def settings(settings, _listening):
    """The shared settings, with the issuer at the live server's real address."""
    server, _ = _listening
    settings["ISSUER"] = f"http://127.0.0.1:{server.server_port}"
    return settings


@pytest.fixture
def live_server(app, _listening) -> str:
    """Serves ``app`` on its loopback port for the duration of one test; yields the base URL."""
    server, target = _listening
    target.app = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield app.config["ISSUER"]
    finally:
        server.shutdown()
        thread.join(5)
