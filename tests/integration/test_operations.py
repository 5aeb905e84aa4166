"""The operators' signals (INTERFACES.md "Operations"): the probes, request ids and the log
lines, in text and in JSON."""

from __future__ import annotations

import json
import socket

import pytest

from idp import create_app
from tests.conftest import csrf_token


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- probes ---------------------------------------------------------------------------------


def test_healthz_answers_while_the_process_serves(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_answers_when_the_database_and_the_store_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "checks": {"database": "ok", "store": "ok"}}


def test_readyz_is_503_naming_the_store_when_redis_does_not_answer(settings, clock, capsys):
    app = create_app({**settings, "REDIS_URL": f"redis://127.0.0.1:{closed_port()}/0"}, clock=clock)
    probe = app.test_client()
    for _ in range(3):
        response = probe.get("/readyz")
        assert response.status_code == 503
        assert response.get_json() == {"status": "unavailable", "failed": ["store"],
                                       "checks": {"database": "ok", "store": "ConnectionError"}}
    assert b"127.0.0.1" not in response.data  # no address or message on a public page
    # One line for the operator when the store went away, not one per probe.
    assert capsys.readouterr().err.count("dependency unavailable") == 1
    assert probe.get("/healthz").status_code == 200  # the process itself still serves


def test_readyz_is_503_naming_the_database_when_it_does_not_answer(settings, clock):
    url = f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/idp"
    response = create_app({**settings, "DATABASE_URL": url}, clock=clock).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["failed"] == ["database"]
    assert response.get_json()["checks"]["store"] == "ok"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_the_probes_take_get_and_head_only(client, method):
    for path in ("/healthz", "/readyz", "/metrics"):
        response = client.open(path, method=method)
        assert response.status_code == 405 and response.headers["Allow"] == "GET, HEAD"


def test_head_on_a_probe_has_no_body(client):
    response = client.head("/readyz")
    assert response.status_code == 200 and response.data == b""


# --- request ids ----------------------------------------------------------------------------


@pytest.fixture
def json_app(settings, clock):
    return create_app({**settings, "LOG_FORMAT": "json", "ACCESS_LOG": True}, clock=clock)


@pytest.fixture
def proxied_app(settings, clock):
    return create_app({**settings, "LOG_FORMAT": "json", "ACCESS_LOG": True, "TRUSTED_PROXIES": 1}, clock=clock)


def test_every_answer_carries_a_generated_request_id(client):
    ids = set()
    for response in (client.get("/login"), client.get("/.well-known/openid-configuration"),
                     client.get("/.well-known/openid-configuration"), client.post("/token", data={}),
                     client.get("/userinfo"), client.get("/no-such-page")):
        request_id = response.headers["X-Request-ID"]
        assert len(request_id) == 32 and int(request_id, 16) >= 0
        ids.add(request_id)
    assert len(ids) == 6


def test_a_client_cannot_choose_its_request_id_without_a_trusted_proxy(json_app, capsys):
    response = json_app.test_client().get("/login", headers={"X-Request-ID": "chosen-by-the-client"})
    assert response.headers["X-Request-ID"] != "chosen-by-the-client"
    [line] = [line for line in json_lines(capsys.readouterr().out) if line["logger"] == "idp.access"]
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_the_trusted_proxy_s_request_id_is_kept_logged_and_echoed(proxied_app, capsys):
    headers = {"X-Request-ID": "5f2b0c0e9a1d4e7f8a6b3c2d1e0f9a8b", "X-Forwarded-For": "203.0.113.7"}
    response = proxied_app.test_client().get("/login", headers=headers)
    assert response.headers["X-Request-ID"] == headers["X-Request-ID"]
    [line] = [line for line in json_lines(capsys.readouterr().out) if line["logger"] == "idp.access"]
    assert line["request_id"] == headers["X-Request-ID"]
    assert line["client"] == "203.0.113.7" and line["status"] == 200 and line["path"] == "/login"
    assert line["endpoint"] == "/login" and line["method"] == "GET" and line["duration_ms"] >= 0


@pytest.mark.parametrize("insane", ["a b", "x" * 129, 'id"with"quotes', "\u00e9-accent", "id;drop", "a\tb"])
def test_an_insane_request_id_from_the_proxy_is_replaced(proxied_app, insane):
    response = proxied_app.test_client().get("/login", headers={"X-Request-ID": insane})
    assert response.headers["X-Request-ID"] != insane
    assert len(response.headers["X-Request-ID"]) == 32


# --- log lines ------------------------------------------------------------------------------


def test_json_logs_are_one_object_per_line_with_the_request_id(json_app, capsys):
    client = json_app.test_client()
    client.get("/login")
    client.get("/no-such-page%0A%7B%22forged%22:1%7D")  # a newline and JSON in the path
    captured = capsys.readouterr()
    access = json_lines(captured.out)
    events = json_lines(captured.err)
    assert [line["status"] for line in access] == [200, 404]
    [not_found] = [line for line in events if line.get("event") == "not_found"]
    assert not_found["path"] == '/no-such-page\n{"forged":1}'  # kept inside its field
    assert not_found["request_id"] == access[1]["request_id"]
    assert not_found["level"] == "info" and not_found["logger"] == "idp.events" and not_found["ts"].endswith("Z")


def test_a_failed_sign_in_writes_a_line_without_the_login_name(json_app, capsys):
    from idp.extensions import db
    from tests.conftest import make_account, solve_captcha

    client = json_app.test_client()
    with json_app.app_context():
        make_account(login_name="li_si")
        token = csrf_token(client, "/login")
        answer = solve_captcha(json_app, client)
        response = client.post("/login", data={"csrf_token": token, "account_type": "natural",
                                               "login_name": "li_si", "password": "Wrong-password1",
                                               "captcha": answer})
        db.session.remove()
    captured = capsys.readouterr()
    [line] = [line for line in json_lines(captured.err) if line.get("event") == "login_failed"]
    assert line["reason"] == "invalid_credentials" and line["level"] == "warning"
    assert line["request_id"] == response.headers["X-Request-ID"]
    assert "li_si" not in captured.err


def test_a_refused_token_request_writes_a_line(json_app, capsys):
    response = json_app.test_client().post("/token", data={"grant_type": "authorization_code", "code": "x"},
                                           headers={"Authorization": "Basic bm9ib2R5Om5vdGhpbmc="})
    assert response.status_code == 401
    [line] = [line for line in json_lines(capsys.readouterr().err) if line.get("event") == "token_refused"]
    assert line == {**line, "grant_type": "authorization_code", "error": "invalid_client", "client_id": "nobody",
                    "request_id": response.headers["X-Request-ID"]}


def test_the_probes_write_no_access_line(json_app, capsys):
    client = json_app.test_client()
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200
    assert capsys.readouterr().out == ""


def test_text_logs_cannot_be_forged_by_a_path(settings, clock, capsys):
    app = create_app({**settings, "ACCESS_LOG": True}, clock=clock)
    app.test_client().get("/x%0AINFO forged line")
    captured = capsys.readouterr()
    assert "\nINFO forged line" not in captured.out and "\nINFO forged line" not in captured.err
    assert '"GET /x\\nINFO forged line HTTP/1.1" 404' in captured.out


def test_the_example_dashboard_uses_only_exported_metric_names(client):
    from pathlib import Path

    import re as regex

    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in regex.findall(r"\bidp_[a-z_]+", target["expr"])}
    exported = set(regex.findall(r"^# TYPE (\S+) (\S+)", client.get("/metrics").get_data(as_text=True), regex.M))
    names = set()
    for name, kind in exported:
        names |= {name} | ({f"{name}_total"} if kind == "counter" else set())
        names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else set()
    assert used and used <= names, used - names


def test_the_probes_carry_a_request_id_too(client):
    for path in ("/healthz", "/readyz", "/metrics"):
        assert len(client.get(path).headers["X-Request-ID"]) == 32, path


def test_an_unknown_log_format_is_refused(settings):
    from idp.settings import ConfigurationError

    with pytest.raises(ConfigurationError, match="IDP_LOG_FORMAT: expected 'text' or 'json'"):
        create_app({**settings, "LOG_FORMAT": "xml"})


def test_production_refuses_a_short_metrics_token(settings):
    from idp.settings import ConfigurationError, _check_production, load_settings

    cfg = load_settings({"ENV": "development", "INSTANCE_DIR": settings["INSTANCE_DIR"]})
    cfg.update(ENV="production", ISSUER="https://idp.example.cn", DATABASE_URL="postgresql+psycopg://db/idp",
               SMS_GATEWAY="http", VERIFIER="http", METRICS_TOKEN="short", MAIL_SENDER="off",
               ALLOW_LOOPBACK_HTTP=False, JOBS_INLINE=False)
    with pytest.raises(ConfigurationError, match="IDP_METRICS_TOKEN must be at least 32 characters"):
        _check_production(cfg)
    _check_production({**cfg, "METRICS_TOKEN": "t" * 32})
    _check_production({**cfg, "METRICS_TOKEN": ""})
