"""The operators' commands not covered elsewhere, run as the real console script:
`idp serve` (granian by default, gunicorn when chosen), `idp admin create`, `idp clients import`,
`idp clients rotate-secret`, `idp keys rotate` and `idp worker`."""

from __future__ import annotations

import gc
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.integration.test_cli import IDP, cli, last_json, rows, template_db  # noqa: F401
from tests.throwaway import child_pids

CLIENTS = Path(__file__).resolve().parents[2] / "clients"


# --- idp serve ------------------------------------------------------------------------------
# The real console script on a free port; memory:// (the default store) makes it one worker.


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_serve(cli, **env):
    """`idp serve` as a subprocess in its own session, once it answers /login."""
    port = _free_port()
    env = dict(cli.env, PORT=str(port), IDP_CAPTCHA="off", **env)
    server = subprocess.Popen([IDP, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        assert server.poll() is None, server.communicate()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                assert response.status == 200
                assert "idp_session=" in response.headers["Set-Cookie"]
                return server, port
        except OSError:
            if time.monotonic() > deadline:
                _stop(server)
                raise AssertionError("idp serve did not answer") from None
            time.sleep(0.3)


def _stop(server, sig=signal.SIGTERM, group=False) -> tuple[str, str]:
    """Stop `idp serve` as an operator would: SIGTERM to the master (systemd, kill) or, with
    ``group``, a signal to the whole process group (Ctrl-C in a terminal sends SIGINT to all)."""
    if server.poll() is None:
        if group:
            os.killpg(server.pid, sig)
        else:
            server.send_signal(sig)
    try:
        return server.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        raise


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict]:
    """Send a request by hand (a declared body need not follow) and read the status and headers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode("latin-1") + b"\r\n" + body)
        response = http.client.HTTPResponse(sock)
        response.begin()
        return response.status, {k.lower(): v for k, v in response.getheaders()}


def _discovery(port: int) -> dict:
    url = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


ACCESS_LINE = "/.well-known/openid-configuration HTTP/1.1"


def _output_until(server, text: str, timeout: float = 10) -> str:
    """What the server printed up to the first line holding ``text``. An access log line is
    written after the answer has gone, so a stop right after the answer could come first."""
    seen, found = [], threading.Event()

    def pump():
        for line in server.stdout:
            seen.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=pump, daemon=True).start()
    found.wait(timeout)
    return "".join(seen)


def test_serve_runs_granian_by_default_with_one_worker_on_the_in_process_store(cli):
    server, port = _start_serve(cli)
    try:
        assert _discovery(port)["issuer"] == f"http://127.0.0.1:{port}"
        assert len(child_pids(server.pid)) == 1
    finally:
        stdout, stderr = _stop(server)
    assert "ONE worker" in stderr
    assert f"on 127.0.0.1:{port} with 1 worker(s) (granian)" in stderr
    assert ACCESS_LINE not in stdout  # IDP_ACCESS_LOG defaults to off
    assert server.returncode == 0


class _Made:
    """An object of the kind an app holds for its whole life."""


def _worker_app():
    """A stand-in factory for ``load_wsgi_app`` (which takes "module:factory")."""
    made = _Made()
    made.itself = made  # a cycle: only the cyclic collector could ever free it
    return made


def test_a_worker_hides_what_loading_made_from_the_cyclic_collector():
    """Everything that exists once the app is loaded lives as long as the worker; a full
    collection walking it is a pause in the middle of a request (bench/PROFILE.md)."""
    from idp.cli import load_wsgi_app

    gc.unfreeze()
    try:
        app = load_wsgi_app("tests.integration.test_cli_operations:_worker_app")
        assert gc.get_freeze_count() > 0
        assert not any(obj is app for obj in gc.get_objects())  # frozen objects are not tracked
        later = _Made()
        later.itself = later
        assert any(obj is later for obj in gc.get_objects())  # what requests make still is
    finally:
        gc.unfreeze()


@pytest.mark.parametrize("access_log", ["on", "off"])
def test_serve_runs_gunicorn_when_chosen_with_one_worker_on_the_in_process_store(cli, access_log):
    server, port = _start_serve(cli, IDP_SERVER="gunicorn", IDP_ACCESS_LOG=access_log)
    early = ""
    try:
        assert _discovery(port)["issuer"] == f"http://127.0.0.1:{port}"
        if access_log == "on":
            early = _output_until(server, ACCESS_LINE)
    finally:
        stdout, stderr = _stop(server)
    stdout = early + stdout
    assert "ONE worker" in stderr and "with 1 worker(s) (gunicorn)" in stderr
    assert "gunicorn" in stderr.lower() and "granian" not in stdout.lower()
    assert (ACCESS_LINE in stdout) is (access_log == "on")


def test_serve_refuses_an_unknown_server(cli):
    result = cli.run("serve", check=False, env=dict(cli.env, IDP_SERVER="uwsgi"))
    assert result.returncode != 0
    assert "IDP_SERVER: expected 'granian' or 'gunicorn', got 'uwsgi'" in result.stderr


def test_granian_refuses_a_body_over_max_form_bytes_with_413_before_reading_it_and_stays_up(cli):
    server, port = _start_serve(cli, IDP_MAX_FORM_BYTES="65536")
    try:
        [worker] = child_pids(server.pid)
        form = "application/x-www-form-urlencoded"
        # 200 MB declared and none of it sent: the answer comes at once, so neither granian nor
        # the app waits for (or buffers) the body before Flask refuses it by its Content-Length.
        started = time.monotonic()
        status, _ = _raw_request(port, f"POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                       f"Content-Type: {form}\r\nContent-Length: {200 * 2**20}\r\n")
        assert status == 413 and time.monotonic() - started < 5
        # One byte over the limit, sent whole, on a token endpoint as well.
        status, headers = _raw_request(port, f"POST /token HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                                             f"Content-Type: {form}\r\nContent-Length: 65537\r\n", b"a" * 65537)
        assert status == 413 and headers["x-content-type-options"] == "nosniff"
        assert _discovery(port)["issuer"] == f"http://127.0.0.1:{port}"
        assert server.poll() is None and child_pids(server.pid) == [worker]  # same worker, still up
    finally:
        _stop(server)


def test_granian_responses_carry_the_security_headers_and_an_access_log_when_on(cli):
    server, port = _start_serve(cli, IDP_ACCESS_LOG="on")
    try:
        for path in ("/login", "/.well-known/openid-configuration"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                headers = response.headers
            assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
            assert headers["X-Content-Type-Options"] == "nosniff", path
            assert headers["X-Frame-Options"] == "DENY", path
            assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin", path
        assert headers["Server"] == "granian"
        early = _output_until(server, ACCESS_LINE)
    finally:
        stdout, _ = _stop(server)
    assert ACCESS_LINE in early + stdout


@pytest.mark.parametrize("sig, group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM to the master", "SIGINT to the group (Ctrl-C)"])
def test_granian_stops_gracefully_and_leaves_no_process_behind(cli, sig, group):
    server, port = _start_serve(cli)
    workers = child_pids(server.pid)
    assert workers
    # A worker that has served a request and idled a moment is the one that could hang on SIGINT
    # followed by its master's SIGTERM (intermittent: 13 of 40 runs on a loaded machine).
    time.sleep(1)
    started = time.monotonic()
    stdout, stderr = _stop(server, sig, group)
    assert server.returncode == 0, stderr
    # Promptly, not after granian's kill timeout (a worker that got SIGINT and then its master's
    # SIGTERM used to hang for it: idp.cli._granian_worker_app).
    assert time.monotonic() - started < 15 and "refused to gracefully stop" not in stdout, stdout
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers):
        assert time.monotonic() < deadline, f"orphaned worker(s) {[p for p in workers if _alive(p)]}"
        time.sleep(0.1)
    with pytest.raises(OSError):
        _discovery(port)


def test_admin_create_prints_a_one_time_enrolment_url_on_the_last_line(cli):
    result = cli.run("admin", "create", "--login", "wang_admin", "--role", "reviewer")
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:5000/admin/enrol/")
    assert rows(cli.database, "SELECT role, totp_enabled FROM staff_users WHERE login = ?", "wang_admin") == [
        ("reviewer", 0)]
    again = cli.run("admin", "create", "--login", "wang_admin", "--role", "reviewer", check=False)
    assert again.returncode != 0 and "login_taken" in again.stderr


def test_clients_import_creates_then_updates_and_prints_secrets_once(cli):
    files = [str(p) for p in sorted(CLIENTS.glob("*.toml"))]
    first = last_json(cli.run("clients", "import", *files))["client_secrets"]
    assert set(first) == {"gaoqi", "kexiaoqi", "hgr", "programmes"}
    second = last_json(cli.run("clients", "import", *files))["client_secrets"]
    assert second == {}  # re-import keeps the secrets; nothing new to show
    assert rows(cli.database, "SELECT allowed_account_types FROM clients WHERE client_id = 'gaoqi'") == [
        ('["legal"]',)]


def test_rotate_secret_prints_a_new_secret_and_keeps_the_old_for_the_grace_period(cli):
    created = last_json(cli.run("clients", "create", "--name", "测试系统", "--redirect-uri",
                                "http://127.0.0.1:9/cb", "--json"))
    rotated = last_json(cli.run("clients", "rotate-secret", created["client_id"]))
    assert rotated["client_secret"] != created["client_secret"]
    [(previous, until)] = rows(cli.database, "SELECT previous_secret_hash, previous_secret_expires_at "
                                             "FROM clients WHERE client_id = ?", created["client_id"])
    assert previous and until


def test_keys_rotate_publishes_new_keys_and_keeps_the_old(cli):
    first = last_json(cli.run("keys", "rotate"))["kids"]
    second = last_json(cli.run("keys", "rotate"))["kids"]
    published = {kid for (kid,) in rows(cli.database, "SELECT kid FROM signing_keys")}
    active = {kid for (kid,) in rows(cli.database, "SELECT kid FROM signing_keys WHERE active = 1")}
    assert set(first) | set(second) <= published and active == set(second)


def test_worker_once_runs_the_due_jobs(cli):
    assert last_json(cli.run("worker", "--once")) == {"ran": 0}
