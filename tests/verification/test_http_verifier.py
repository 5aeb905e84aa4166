"""The HTTP verifier against a small real HTTP server started by the test."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from idp.clock import SystemClock
from idp.security.signing import verify
from idp.services.verifier import HttpVerifier, VerifierUnavailable

SECRET = "test-secret"


@pytest.fixture
def server():
    state = {"mode": "match", "requests": []}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = verify(SECRET, self.headers.get("X-IDP-Timestamp"), self.headers.get("X-IDP-Signature"),
                        body, time.time())
            state["requests"].append((ok, json.loads(body)))
            mode = state["mode"]
            if mode == "timeout":
                time.sleep(0.5)
            if mode == "500":
                self.send_response(500)
                self.end_headers()
                return
            answer = {"result": "match" if mode == "match" else "mismatch", "reference": "NP-1"}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{httpd.server_port}/verify"
    yield state
    httpd.shutdown()
    httpd.server_close()


def make(server, retries=1):
    return HttpVerifier(server["url"], SECRET, 0.2, retries, SystemClock())


def test_success_sends_the_fixed_signed_request(server):
    verdict = make(server).verify_person("张三", "resident_id", "11010519491231002X")
    assert verdict.result == "match" and verdict.reference == "NP-1"
    ok, body = server["requests"][0]
    assert ok
    assert set(body) == {"request_id", "kind", "name", "document_type", "document_number"}
    assert body["kind"] == "natural"


def test_unit_request_shape(server):
    make(server).verify_unit("示例公司", "91350100M000100Y43", "王五")
    ok, body = server["requests"][0]
    assert ok and set(body) == {"request_id", "kind", "org_name", "uscc", "legal_representative"}


def test_mismatch(server):
    server["mode"] = "mismatch"
    assert make(server).verify_person("李四", "resident_id", "11010519491231002X").result == "mismatch"


def test_timeout_is_unavailable_after_the_retries(server):
    server["mode"] = "timeout"
    with pytest.raises(VerifierUnavailable):
        make(server, retries=1).verify_person("张三", "resident_id", "11010519491231002X")
    assert len(server["requests"]) == 2
    assert server["requests"][0][1]["request_id"] == server["requests"][1][1]["request_id"]


def test_500_is_unavailable(server):
    server["mode"] = "500"
    with pytest.raises(VerifierUnavailable):
        make(server, retries=2).verify_person("张三", "resident_id", "11010519491231002X")
    assert len(server["requests"]) == 3


def test_connection_refused_is_unavailable():
    verifier = HttpVerifier("http://127.0.0.1:9/verify", SECRET, 0.2, 0, SystemClock())
    with pytest.raises(VerifierUnavailable):
        verifier.verify_unit("x", "91350100M000100Y43", None)
