"""Request forgery (SSRF): the one outbound fetcher (idp.security.outbound) against small real
HTTP servers on 127.0.0.1 that count every connection. Only loopback is ever connected to:
private, link-local and other inside addresses are shown refused by the check that runs before
any connection, never by trying them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from idp.security import outbound
from idp.security.outbound import OutboundFailed, OutboundRefused, Policy

PRODUCTION = Policy(production=True)
DEVELOPMENT = Policy(production=False, allow_loopback_http=True)
DEVELOPMENT_WITHOUT_LOOPBACK = Policy(production=False, allow_loopback_http=False)


class CountingServer:
    """Answers by path; counts the connections it accepts (not only complete requests)."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[str] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def setup(self):
                server.connections += 1
                super().setup()

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.requests.append(self.path)
                if self.path == "/redirect":
                    self.send_response(302)
                    self.send_header("Location", f"http://127.0.0.1:{server.port}/elsewhere")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/big":
                    self.send_response(200)
                    self.end_headers()  # no length: the body runs until the server closes
                    try:
                        for _ in range(64):
                            self.wfile.write(b"x" * 16384)
                    except OSError:
                        pass
                elif self.path == "/slow":
                    server.release.wait(5)
                    self._ok()
                elif self.path == "/trickle":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            if server.release.wait(0.02):
                                break
                            self.wfile.write(b"x")
                            self.wfile.flush()
                    except OSError:
                        pass
                else:
                    self._ok()

            def _ok(self):
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def url(self, path: str = "/bc", host: str = "127.0.0.1", scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = CountingServer()
    yield s
    s.stop()


def post(url: str, policy: Policy = DEVELOPMENT, timeout: float = 2.0, **kwargs):
    return outbound.post(url, b"logout_token=x", {"Content-Type": "application/x-www-form-urlencoded"},
                         policy=policy, timeout=timeout, purpose="test", **kwargs)


# --- inside addresses, however written --------------------------------------------------------

INSIDE = [
    ("https://127.0.0.1/bc", "loopback"),
    ("https://localhost/bc", "loopback"),
    ("https://LOCALHOST./bc", "loopback"),
    ("https://rp.localhost/bc", "loopback"),
    ("https://[::1]/bc", "loopback"),
    ("https://127.1/bc", "ambiguous_ip_address"),
    ("https://2130706433/bc", "ambiguous_ip_address"),
    ("https://0x7f.1/bc", "ambiguous_ip_address"),
    ("https://0177.0.0.1/bc", "ambiguous_ip_address"),
    ("https://0x7f000001/bc", "ambiguous_ip_address"),
    ("https://10.1.2.3/bc", "private"),
    ("https://192.168.0.10/bc", "private"),
    ("https://172.16.5.4/bc", "private"),
    ("https://169.254.169.254/latest/meta-data/", "link_local"),
    ("https://[fe80::1]/bc", "link_local"),
    ("https://[fd00::1]/bc", "private"),
    ("https://100.64.0.1/bc", "shared_address_space"),
    ("https://224.0.0.1/bc", "multicast"),
    ("https://0.0.0.0/bc", "unspecified"),
    ("https://[::]/bc", "unspecified"),
    ("https://240.0.0.1/bc", "reserved"),
    ("https://198.18.0.1/bc", "private"),
    ("https://192.0.2.1/bc", "private"),
    ("https://[::ffff:127.0.0.1]/bc", "ipv4_embedded_literal"),
    ("https://[::ffff:a9fe:a9fe]/bc", "ipv4_embedded_literal"),
    ("https://[2002:7f00:1::]/bc", "ipv4_embedded_literal"),
    ("https://[64:ff9b::a00:1]/bc", "ipv4_embedded_literal"),
    ("https://8.8.8.8/bc", "ip_literal_not_allowed"),
]

MALFORMED = [
    ("https://rp.example@127.0.0.1/bc", "userinfo_not_allowed"),
    ("https://user:pw@rp.example/bc", "userinfo_not_allowed"),
    ("ftp://rp.example/bc", "scheme_not_allowed"),
    ("file:///etc/passwd", "scheme_not_allowed"),
    ("gopher://127.0.0.1:6379/_FLUSHALL", "scheme_not_allowed"),
    ("https:///bc", "missing_host"),
    ("https://rp%2eexample/bc", "invalid_host"),
    ("https://rp_example.cn/bc", "invalid_host"),
    ("http://rp.example/bc", "https_required"),
]


@pytest.mark.parametrize(("url", "reason"), INSIDE + MALFORMED)
def test_an_inside_or_malformed_address_is_refused_with_its_reason_before_any_connection(url, reason):
    for policy in (PRODUCTION, DEVELOPMENT_WITHOUT_LOOPBACK):
        with pytest.raises(OutboundRefused) as refused:
            outbound.check_url(url, policy)
        assert refused.value.reason == reason, (url, policy)


@pytest.mark.parametrize(("url", "reason"), [(u, r) for u, r in INSIDE + MALFORMED
                                             if r not in ("loopback", "https_required")])
def test_the_development_loopback_allowance_opens_loopback_only(url, reason):
    with pytest.raises(OutboundRefused) as refused:
        outbound.check_url(url, DEVELOPMENT)
    assert refused.value.reason == reason


@pytest.mark.parametrize("url", INSIDE[:5])
def test_the_same_refusal_happens_when_the_uri_is_stored(url):
    with pytest.raises(OutboundRefused):
        outbound.check_stored(url, PRODUCTION)


def test_a_name_without_dns_yet_is_accepted_when_stored_and_refused_when_called(server):
    name = "rp-not-yet-in-dns.invalid"
    outbound.check_stored(f"https://{name}/bc", PRODUCTION)  # no error: checked again at the call
    with pytest.raises(OutboundFailed) as failed:
        post(f"https://{name}:{server.port}/bc", PRODUCTION)
    assert failed.value.reason == "name_not_resolved"
    assert server.connections == 0


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
@pytest.mark.parametrize("policy", [PRODUCTION, DEVELOPMENT_WITHOUT_LOOPBACK], ids=["production", "dev-no-loopback"])
def test_a_call_to_loopback_is_refused_and_never_connects(server, host, policy):
    for scheme in ("https", "http"):
        with pytest.raises(OutboundRefused):
            post(server.url(host=host, scheme=scheme), policy)
    assert server.connections == 0 and server.requests == []


def test_a_name_resolving_to_loopback_is_refused_at_the_call_whatever_its_spelling(server):
    # "localhost" is a name (not a literal) that the resolver answers with 127.0.0.1.
    assert socket.getaddrinfo("localhost", None)[0][4][0] in ("127.0.0.1", "::1")
    with pytest.raises(OutboundRefused) as refused:
        post(server.url(host="localhost", scheme="https"), PRODUCTION)
    assert refused.value.reason == "loopback"
    assert server.connections == 0


# --- development: plain http to loopback, only with the setting -------------------------------


def test_development_with_the_setting_on_calls_plain_http_on_loopback(server):
    response = post(server.url("/bc"), DEVELOPMENT)
    assert response.status == 200 and response.body == b"ok"
    assert server.requests == ["/bc"]


def test_development_with_the_setting_off_refuses_plain_http_even_to_loopback(server):
    with pytest.raises(OutboundRefused) as refused:
        post(server.url("/bc"), DEVELOPMENT_WITHOUT_LOOPBACK)
    assert refused.value.reason == "loopback"
    with pytest.raises(OutboundRefused) as refused:
        post(server.url("/bc", host="localhost"), DEVELOPMENT_WITHOUT_LOOPBACK)
    assert refused.value.reason == "loopback"
    assert server.connections == 0


def test_development_without_the_setting_refuses_plain_http_to_any_name():
    with pytest.raises(OutboundRefused) as refused:
        outbound.check_url("http://rp.example.cn/bc", DEVELOPMENT_WITHOUT_LOOPBACK)
    assert refused.value.reason == "https_required"


def test_production_refuses_plain_http_and_loopback_without_exception(server):
    with pytest.raises(OutboundRefused) as refused:
        post(server.url("/bc"), PRODUCTION)
    assert refused.value.reason == "loopback"
    with pytest.raises(OutboundRefused) as refused:
        outbound.check_url("http://rp.example.cn/bc", PRODUCTION)
    assert refused.value.reason == "https_required"
    assert server.connections == 0


def test_the_loopback_allowance_never_applies_in_production():
    assert Policy.from_config({"ENV": "production", "ALLOW_LOOPBACK_HTTP": True}).allow_loopback_http is False


# --- what the answer may do -------------------------------------------------------------------


def test_a_redirect_is_a_failure_and_is_not_followed(server):
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/redirect"))
    assert failed.value.reason == "redirect_not_followed" and failed.value.status == 302
    assert server.requests == ["/redirect"]  # /elsewhere never asked


def test_an_oversized_answer_is_cut_at_the_cap_and_refused(server):
    started = time.monotonic()
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/big"), max_bytes=4096)
    assert failed.value.reason == "response_too_large"
    assert time.monotonic() - started < 1.5


def test_the_default_cap_is_the_setting(server):
    policy = Policy.from_config({"ENV": "development", "ALLOW_LOOPBACK_HTTP": True, "OUTBOUND_MAX_BYTES": 2048})
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/big"), policy)
    assert failed.value.reason == "response_too_large"


def test_a_slow_server_times_out(server):
    started = time.monotonic()
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/slow"), timeout=0.3)
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 1.5


def test_a_server_trickling_its_answer_cannot_stretch_the_deadline(server):
    started = time.monotonic()
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/trickle"), timeout=0.4)  # every byte arrives well within the timeout
    assert failed.value.reason == "timeout"
    assert time.monotonic() - started < 1.5


# --- pinning ----------------------------------------------------------------------------------


def test_the_connection_goes_to_the_checked_address_with_the_name_in_the_host_header(server, monkeypatch):
    """DNS rebinding: the name is resolved once, by the check; a second lookup that would
    answer differently is never made."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        seen.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    target = outbound.check_url(server.url("/bc", host="localhost"), DEVELOPMENT)
    assert target.addresses and all(a in ("127.0.0.1", "::1") for a in target.addresses)
    seen.clear()
    response = post(server.url("/bc", host="localhost"))
    assert response.status == 200
    # One lookup of the name (the check's); the connection was made to the address it gave
    # (a numeric "lookup" of the literal address, never of the name again).
    assert seen.count("localhost") == 1
    assert all(h == "localhost" or h in target.addresses for h in seen)


def test_https_verifies_the_certificate_against_the_name_not_the_address(server):
    """The pinned TLS connection sends the name as SNI and checks the certificate for it: a
    plain-http server on the pinned address fails the handshake, nothing is sent in clear."""
    policy = Policy(production=False, allow_loopback_http=True)
    with pytest.raises(OutboundFailed) as failed:
        post(server.url("/bc", host="localhost", scheme="https"), policy)
    assert failed.value.reason in ("tls_error", "connection_failed")
    assert server.requests == []


# --- no other way out -------------------------------------------------------------------------


def test_no_module_of_the_provider_calls_out_except_through_the_fetcher():
    root = Path(__file__).resolve().parents[2] / "idp"
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "outbound.py":
            continue
        text = path.read_text(encoding="utf-8")
        for needle in ("urllib.request", "urlopen", "http.client", "import requests", "import httpx",
                       "socket.create_connection"):
            if needle in text:
                offenders.append(f"{path.relative_to(root)}: {needle}")
    assert offenders == []


# --- the CLI ----------------------------------------------------------------------------------

IDP = str(Path(sys.executable).with_name("idp"))


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("outbound-cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_") and k != "PORT"}
    env.update(IDP_INSTANCE_DIR=str(root / "instance"), IDP_DATABASE_URL=f"sqlite:///{root / 'idp.db'}",
               IDP_ARGON2_MEMORY_KIB="1024", IDP_ARGON2_TIME_COST="1", PYTHONDONTWRITEBYTECODE="1",
               IDP_ALLOW_LOOPBACK_HTTP="off")
    result = subprocess.run([IDP, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return env


def _clients_in(env) -> list[tuple[str, str | None]]:
    import sqlite3

    path = env["IDP_DATABASE_URL"].removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT name, backchannel_logout_uri FROM clients ORDER BY id").fetchall()


@pytest.mark.parametrize(("uri", "reason"), [
    ("https://127.0.0.1/bc", "loopback"),
    ("https://localhost:8443/bc", "loopback"),
    ("https://[::1]/bc", "loopback"),
    ("https://127.1/bc", "ambiguous_ip_address"),
    ("https://10.0.0.8/bc", "private"),
    ("https://169.254.169.254/latest", "link_local"),
    ("https://[::ffff:10.0.0.1]/bc", "ipv4_embedded_literal"),
    ("http://127.0.0.1:8000/bc", "loopback"),
    ("http://rp.example.cn/bc", "https_required"),
])
def test_clients_create_refuses_an_inside_backchannel_uri_and_stores_nothing(cli_env, uri, reason):
    before = _clients_in(cli_env)
    result = subprocess.run([IDP, "clients", "create", "--name", f"内网 {reason} {uri}", "--redirect-uri",
                             "https://rp.example.cn/cb", "--backchannel-logout-uri", uri, "--json"],
                            env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    message = result.stderr + result.stdout
    assert f"backchannel_logout_uri: {reason}" in message, message
    assert "Traceback" not in message and "client_secret" not in result.stdout
    assert _clients_in(cli_env) == before


def test_clients_import_refuses_a_declaration_with_an_inside_backchannel_uri(cli_env, tmp_path):
    declaration = tmp_path / "intranet.toml"
    declaration.write_text('client_id = "intranet-bc"\nname = "内网系统"\n'
                           'redirect_uris = ["https://rp.example.cn/cb"]\n'
                           'backchannel_logout_uri = "https://169.254.169.254/latest/meta-data/"\n',
                           encoding="utf-8")
    before = _clients_in(cli_env)
    result = subprocess.run([IDP, "clients", "import", str(declaration)], env=cli_env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "backchannel_logout_uri: link_local" in result.stderr + result.stdout
    assert _clients_in(cli_env) == before


def test_clients_create_accepts_a_name_not_yet_in_dns(cli_env):
    result = subprocess.run([IDP, "clients", "create", "--name", "未上线系统", "--redirect-uri",
                             "https://rp.example.cn/cb", "--backchannel-logout-uri",
                             "https://bc.not-yet-registered.invalid/logout", "--json"],
                            env=cli_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ("未上线系统", "https://bc.not-yet-registered.invalid/logout") in _clients_in(cli_env)
