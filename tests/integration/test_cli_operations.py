"""The operators' commands not covered elsewhere, run as the real console script:
`idp serve`, `idp admin create`, `idp clients import`, `idp clients rotate-secret`,
`idp keys rotate` and `idp worker`."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from tests.integration.test_cli import IDP, cli, last_json, rows, template_db  # noqa: F401

CLIENTS = Path(__file__).resolve().parents[2] / "clients"


def test_serve_runs_gunicorn_with_one_worker_on_the_in_process_store(cli):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(cli.env, PORT=str(port), IDP_CAPTCHA="off")
    server = subprocess.Popen([IDP, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=2) as response:
                    assert response.status == 200
                    assert "idp_session=" in response.headers["Set-Cookie"]
                    break
            except OSError:
                assert time.monotonic() < deadline, "idp serve did not answer"
                time.sleep(0.3)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/.well-known/openid-configuration") as response:
            assert json.load(response)["issuer"] == f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert "ONE worker" in stderr and "gunicorn" in stderr.lower()


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
