"""The operators' signals from the real server (`idp serve`, granian and gunicorn): JSON lines
only, the provider's access log with request ids, and /metrics added up over the workers'
directory, which goes when the server stops."""

from __future__ import annotations

import json
import os
import re
import urllib.request

import pytest

from tests.integration.test_cli import cli, template_db  # noqa: F401
from tests.integration.test_cli_operations import _output_until, _start_serve, _stop


@pytest.mark.parametrize("server_name", ["granian", "gunicorn"])
def test_served_json_logs_request_ids_and_metrics(cli, server_name):
    server, port = _start_serve(cli, IDP_SERVER=server_name, IDP_LOG_FORMAT="json", IDP_ACCESS_LOG="on")
    base = f"http://127.0.0.1:{port}"
    try:
        with urllib.request.urlopen(f"{base}/.well-known/openid-configuration", timeout=10) as response:
            request_id = response.headers["X-Request-ID"]
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
            text = response.read().decode()
        early = _output_until(server, request_id)
    finally:
        stdout, stderr = _stop(server)
    stdout = early + stdout
    lines = [json.loads(line) for line in (stdout + stderr).splitlines() if line.strip()]  # JSON, all of it
    assert any(line.get("event") == "server_starting" and line["server"] == server_name for line in lines)
    metrics_dir = next(line["metrics_dir"] for line in lines if line.get("event") == "server_starting")
    [access] = [line for line in lines if line.get("request_id") == request_id and line["logger"] == "idp.access"]
    assert access["status"] == 200 and access["path"] == "/.well-known/openid-configuration"
    assert not any(line.get("path") in ("/healthz", "/metrics") for line in lines)
    assert re.search(r'idp_http_request_duration_seconds_count\{endpoint="/login",status="200"\} [1-9]', text)
    assert re.search(r"^idp_workers 1\.0$", text, re.M)
    assert not os.path.exists(metrics_dir)  # made for this start, removed at its end
    assert server.returncode == 0


@pytest.mark.skipif(not os.environ.get("IDP_TEST_REDIS_URL"), reason="several workers need Redis (IDP_TEST_REDIS_URL)")
@pytest.mark.parametrize("server_name", ["granian", "gunicorn"])
def test_metrics_add_up_the_requests_of_every_worker(cli, server_name):
    server, port = _start_serve(cli, IDP_SERVER=server_name, IDP_WORKERS="2",
                                IDP_REDIS_URL=os.environ["IDP_TEST_REDIS_URL"],
                                IDP_REDIS_PREFIX=f"idp-test-served-{os.getpid()}:")
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(40):  # new connections: the kernel spreads them over both workers
            with urllib.request.urlopen(f"{base}/healthz", timeout=10):
                pass
            with urllib.request.urlopen(f"{base}/jwks.json", timeout=10) as response:
                assert response.status == 200
        scrapes = []
        for _ in range(6):  # whichever worker answers, the same sums
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
                scrapes.append(response.read().decode())
    finally:
        _stop(server)
    for text in scrapes:
        assert re.search(r'^idp_http_request_duration_seconds_count\{endpoint="/jwks.json",status="200"\} 40\.0$',
                         text, re.M), text
        assert re.search(r"^idp_workers 2\.0$", text, re.M)


@pytest.mark.skipif(not (os.environ.get("IDP_TEST_DATABASE_URL") and os.environ.get("IDP_TEST_REDIS_URL")),
                    reason="needs PostgreSQL and Redis (IDP_TEST_DATABASE_URL, IDP_TEST_REDIS_URL)")
def test_the_serving_master_holds_no_transaction_open_on_postgresql(cli, tmp_path):
    """The master process of `idp serve` ensures the signing keys and then only supervises:
    it must not sit "idle in transaction" (holding back VACUUM, blocking migrations) for the
    server's life."""
    from sqlalchemy import create_engine, text

    from tests.conftest import _drop_postgres, _fresh_postgres

    url = _fresh_postgres(os.environ["IDP_TEST_DATABASE_URL"].rsplit("/", 1)[0] + f"/idp_served_{tmp_path.name}")
    database = url.rsplit("/", 1)[1]
    env = dict(IDP_DATABASE_URL=url, IDP_WORKERS="2", IDP_REDIS_URL=os.environ["IDP_TEST_REDIS_URL"],
               IDP_REDIS_PREFIX=f"idp-test-served-{os.getpid()}:")
    cli.run("db", "upgrade", env={**cli.env, **env})
    cli.run("keys", "rotate", env={**cli.env, **env})  # the keys exist: the master only reads them
    server, port = _start_serve(cli, **env)
    engine = create_engine(url.rsplit("/", 1)[0] + "/postgres")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/jwks.json", timeout=10) as response:
            assert response.status == 200
        with engine.connect() as conn:
            states = conn.execute(text("SELECT state FROM pg_stat_activity WHERE datname = :d"),
                                  {"d": database}).scalars().all()
        assert "idle in transaction" not in states, states
    finally:
        _stop(server)
        engine.dispose()
        _drop_postgres(url)
