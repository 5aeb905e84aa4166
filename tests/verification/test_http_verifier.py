"""The HTTP verifier against a small real HTTP server started by the test, which signs its
answers as the interface does (docs/verification.md)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from idp.clock import SystemClock
from idp.security.outbound import Policy
from idp.security.signing import signed_headers, verify
from idp.services.verifier import HttpVerifier, VerifierUnavailable

SECRET = "test-secret"
# Development with the loopback allowance: the test server listens on 127.0.0.1.
DEVELOPMENT = Policy(production=False, allow_loopback_http=True)


@pytest.fixture
def server():
    state = {"mode": "match", "requests": [], "sign": "good"}

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
            if mode == "redirect":
                self.send_response(307)
                self.send_header("Location", "/verify-again")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if mode == "500":
                self.send_response(500)
                self.end_headers()
                return
            answer = {"result": "match" if mode == "match" else "mismatch", "reference": "NP-1"}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            sign = state["sign"]
            if sign != "none":
                now = int(time.time()) - (301 if sign == "stale" else 0)
                secret = "another-secret" if sign == "wrong_secret" else SECRET
                signed = data + b" " if sign == "other_body" else data
                for name, value in signed_headers(secret, now, signed).items():
                    self.send_header(name, value)
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
    return HttpVerifier(server["url"], SECRET, 0.2, retries, SystemClock(), policy=DEVELOPMENT)


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
    verifier = HttpVerifier("http://127.0.0.1:9/verify", SECRET, 0.2, 0, SystemClock(), policy=DEVELOPMENT)
    with pytest.raises(VerifierUnavailable):
        verifier.verify_unit("x", "91350100M000100Y43", None)


@pytest.mark.parametrize("sign", ["none", "wrong_secret", "other_body", "stale"])
def test_an_unsigned_badly_signed_or_stale_answer_is_unavailable_never_a_verdict(server, sign):
    server["sign"] = sign  # a "match" that someone between us and the interface could have written
    with pytest.raises(VerifierUnavailable, match="unsigned_answer"):
        make(server).verify_person("张三", "resident_id", "11010519491231002X")
    assert len(server["requests"]) == 1  # not asked again: the same answer would come back


def test_production_refuses_a_plain_http_verifier_before_sending_anything(server):
    verifier = HttpVerifier(server["url"], SECRET, 0.2, 1, SystemClock(), policy=Policy(production=True))
    with pytest.raises(VerifierUnavailable, match="outbound_refused"):
        verifier.verify_person("张三", "resident_id", "11010519491231002X")
    assert server["requests"] == []


def test_a_verifier_that_redirects_is_unavailable_and_the_redirect_is_not_followed(server):
    server["mode"] = "redirect"
    with pytest.raises(VerifierUnavailable, match="redirect_not_followed"):
        make(server).verify_person("张三", "resident_id", "11010519491231002X")
    assert [body["kind"] for _, body in server["requests"]] == ["natural"]  # only the first request
