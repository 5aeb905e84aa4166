"""Request forgery through back-channel logout: a URI that slipped into the database before the
outbound rules (or whose name now points inward) is refused again when the job calls it. The
"relying party" is a real server on 127.0.0.1 that counts connections: it must see none."""

from __future__ import annotations

import pytest

from idp import jobs
from idp.extensions import db
from idp.models.oauth import Job
from tests.conftest import audit_events
from tests.integration.test_outbound import CountingServer
from tests.oidc.conftest import set_client
from tests.oidc.test_backchannel_logout import logout_at_the_provider


@pytest.fixture
def settings(settings):
    settings["ALLOW_LOOPBACK_HTTP"] = False  # development, but as strict as production outbound
    return settings


@pytest.fixture
def server():
    s = CountingServer()
    yield s
    s.stop()


def backchannel_jobs() -> list[Job]:
    db.session.expire_all()
    return list(db.session.execute(db.select(Job).filter_by(kind="backchannel_logout")).scalars())


@pytest.mark.parametrize(("host", "reason"), [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),
    ("[::1]", "loopback"),
    ("127.1", "ambiguous_ip_address"),
    ("2130706433", "ambiguous_ip_address"),
    ("[::ffff:127.0.0.1]", "ipv4_embedded_literal"),
])
@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_stored_inside_backchannel_uri_fails_the_job_with_a_reason_and_never_connects(
        rp, make_client, person, server, host, reason, scheme):
    client_id, secret = make_client(trusted=True)
    uri = f"{scheme}://{host}:{server.port}/bc"
    set_client(client_id, backchannel_logout_uri=uri)  # written directly: no store-time check
    rp.sign_in(client_id, secret)
    logout_at_the_provider(rp)  # the user's logout itself succeeds

    [job] = backchannel_jobs()
    assert job.done_at is None and job.attempts == 1
    assert job.last_error.startswith("outbound_refused: ")
    assert job.last_error.split(": ")[1] in (reason, "https_required")
    assert server.connections == 0 and server.requests == []
    [event] = audit_events("outbound_refused")
    assert event.outcome == "refused" and event.subject == f"backchannel_logout:{client_id}"
    assert event.details["reason"] == job.last_error.split(": ")[1]


def test_the_retries_are_refused_too_and_the_job_ends_failed(rp, make_client, person, server, clock, app):
    client_id, secret = make_client(trusted=True)
    set_client(client_id, backchannel_logout_uri=server.url("/bc", host="localhost", scheme="https"))
    rp.sign_in(client_id, secret)
    logout_at_the_provider(rp)
    for _ in range(app.config["BACKCHANNEL_MAX_ATTEMPTS"] - 1):
        clock.advance(7200)
        assert jobs.run_due() == 1
    [job] = backchannel_jobs()
    assert job.failed_at is not None and job.last_error.startswith("outbound_refused: loopback")
    assert server.connections == 0


def test_the_same_uri_is_delivered_when_loopback_http_is_allowed(rp, make_client, person, server, app):
    """The control: with the development allowance on, the same kind of URI is called."""
    app.config["ALLOW_LOOPBACK_HTTP"] = True
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=server.url("/bc"))
    rp.sign_in(client_id, secret)
    logout_at_the_provider(rp)
    [job] = backchannel_jobs()
    assert job.done_at is not None
    assert server.requests == ["/bc"]


def test_a_backchannel_endpoint_that_redirects_is_a_failed_delivery_and_the_redirect_is_not_followed(
        rp, make_client, person, server, app):
    app.config["ALLOW_LOOPBACK_HTTP"] = True
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=server.url("/redirect"))
    rp.sign_in(client_id, secret)
    logout_at_the_provider(rp)
    [job] = backchannel_jobs()
    assert job.done_at is None and "redirect_not_followed" in job.last_error
    assert server.requests == ["/redirect"]
