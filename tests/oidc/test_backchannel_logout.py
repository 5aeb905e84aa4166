"""OpenID Connect Back-Channel Logout 1.0: a logout token POSTed to every client of an ended
session, through the durable job queue with retries. The clients' endpoints are a real HTTP
server on the loopback interface."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest

from idp import jobs
from idp.extensions import db
from idp.models.oauth import Job, SsoSession
from tests.oidc.conftest import csrf_from, form_action, html, location

EVENT = "http://schemas.openid.net/event/backchannel-logout"


class Receiver:
    """Records the logout tokens POSTed to it, per path; can answer 500 on demand."""

    def __init__(self) -> None:
        self.delivered: dict[str, list[str]] = {}
        self.attempts = 0
        self.fail_next = 0
        self.always_fail = False
        self.content_types: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                receiver.attempts += 1
                receiver.content_types.append(self.headers.get("Content-Type", ""))
                if receiver.always_fail or receiver.fail_next > 0:
                    receiver.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.delivered.setdefault(self.path, []).extend(form.get("logout_token", []))
                self.send_response(200)
                self.send_header("Cache-Control", "no-store")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def tokens(self, path: str) -> list[str]:
        return self.delivered.get(path, [])


@pytest.fixture
def receiver():
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def two_clients(make_client, receiver):
    first = make_client(name="项目申报", trusted=True, backchannel_logout_uri=receiver.url("/a/logout"))
    second = make_client(name="成果登记", backchannel_logout_uri=receiver.url("/b/logout"))
    return first, second


def logout_at_the_provider(rp) -> None:
    page = html(rp.get("/logout"))
    response = rp.browser.post(form_action(page, 'name="logout"'), data={"csrf_token": csrf_from(page),
                                                                        "logout": "yes"})
    assert response.status_code == 302


def sign_in_to_both(rp, two_clients):
    (a, a_secret), (b, b_secret) = two_clients
    first = rp.sign_in(a, a_secret)
    second = rp.sign_in(b, b_secret)
    assert "login" not in second["flow"].pages  # single sign-on: no password the second time
    assert first["claims"]["sid"] == second["claims"]["sid"]
    return first, second


def jobs_of_kind() -> list[Job]:
    db.session.expire_all()
    return list(db.session.execute(db.select(Job).filter_by(kind="backchannel_logout").order_by(Job.id)).scalars())


def assert_logout_token(verify_jwt, token, client_id, sub, sid) -> dict:
    claims = verify_jwt(token, client_id, typ="logout+jwt", require=("iss", "aud", "iat", "exp", "jti", "events"))
    assert claims["sub"] == sub
    assert claims["sid"] == sid
    assert EVENT in claims["events"] and claims["events"][EVENT] == {}
    assert "nonce" not in claims
    return claims


def test_logout_at_the_provider_notifies_every_client_of_the_session_once(
        rp, two_clients, receiver, person, verify_jwt):
    (a, a_secret), (b, b_secret) = two_clients
    first, second = sign_in_to_both(rp, two_clients)
    sid = first["claims"]["sid"]
    logout_at_the_provider(rp)
    assert len(receiver.tokens("/a/logout")) == 1
    assert len(receiver.tokens("/b/logout")) == 1
    assert receiver.content_types[0].startswith("application/x-www-form-urlencoded")
    jti = {assert_logout_token(verify_jwt, receiver.tokens("/a/logout")[0], a, person.sub, sid)["jti"],
           assert_logout_token(verify_jwt, receiver.tokens("/b/logout")[0], b, person.sub, sid)["jti"]}
    assert len(jti) == 2
    assert all(job.done_at is not None for job in jobs_of_kind())


def test_logout_tokens_are_addressed_to_one_client_each(rp, two_clients, receiver, person, verify_jwt):
    import jwt as pyjwt

    (a, _), (b, _) = two_clients
    sign_in_to_both(rp, two_clients)
    logout_at_the_provider(rp)
    with pytest.raises(pyjwt.InvalidAudienceError):
        verify_jwt(receiver.tokens("/a/logout")[0], b)


def test_logout_at_the_provider_revokes_the_sessions_refresh_tokens(rp, two_clients, receiver, person):
    (a, a_secret), (b, b_secret) = two_clients
    first, second = sign_in_to_both(rp, two_clients)
    logout_at_the_provider(rp)
    assert rp.refresh(a, a_secret, first["refresh_token"]).status_code == 400
    assert rp.refresh(b, b_secret, second["refresh_token"]).status_code == 400
    assert rp.userinfo(second["access_token"]).status_code == 401
    row = db.session.execute(db.select(SsoSession).filter_by(sid=first["claims"]["sid"])).scalar_one()
    assert row.ended_at is not None


def test_a_client_without_a_backchannel_uri_is_skipped(rp, make_client, receiver, person):
    plain, plain_secret = make_client(trusted=True)
    notified, notified_secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/n"))
    rp.sign_in(plain, plain_secret)
    rp.sign_in(notified, notified_secret)
    logout_at_the_provider(rp)
    assert len(receiver.tokens("/n")) == 1 and receiver.attempts == 1
    assert len(jobs_of_kind()) == 1


def test_only_the_clients_of_the_ended_session_are_notified(rp, new_browser, two_clients, receiver, person):
    (a, a_secret), (b, b_secret) = two_clients
    rp.sign_in(a, a_secret)
    other = new_browser()
    other.sign_in(b, b_secret)
    logout_at_the_provider(rp)
    assert len(receiver.tokens("/a/logout")) == 1
    assert receiver.tokens("/b/logout") == []


def test_rp_initiated_logout_notifies_the_sessions_clients(rp, two_clients, receiver, person, verify_jwt):
    (a, _), (b, _) = two_clients
    first, _ = sign_in_to_both(rp, two_clients)
    response = rp.get("/end-session?" + urlencode({"id_token_hint": first["id_token"], "client_id": a}))
    assert response.status_code in (200, 302)
    assert len(receiver.tokens("/b/logout")) == 1
    assert_logout_token(verify_jwt, receiver.tokens("/b/logout")[0], b, person.sub, first["claims"]["sid"])


# --- retries ---------------------------------------------------------------------------------


def test_a_failed_delivery_stays_pending_and_is_retried_later(rp, make_client, receiver, person, clock, verify_jwt):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/r"))
    tokens = rp.sign_in(client_id, secret)
    receiver.fail_next = 1
    logout_at_the_provider(rp)
    [job] = jobs_of_kind()
    assert job.attempts == 1 and job.done_at is None and job.failed_at is None
    assert job.run_after.timestamp() > clock.time()
    assert job.last_error
    assert receiver.tokens("/r") == []
    assert jobs.run_due() == 0  # not yet due
    clock.advance(job.run_after.timestamp() - clock.time() + 1)
    assert jobs.run_due() == 1
    [job] = jobs_of_kind()
    assert job.done_at is not None and job.attempts == 2
    assert len(receiver.tokens("/r")) == 1
    # A late delivery still carries the original token, verifiable and about the ended session.
    assert_logout_token(verify_jwt, receiver.tokens("/r")[0], client_id, person.sub, tokens["claims"]["sid"])


def test_a_retry_long_after_the_logout_carries_a_token_that_has_not_expired(
        rp, make_client, receiver, person, clock, verify_jwt):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/late"))
    tokens = rp.sign_in(client_id, secret)
    receiver.fail_next = 3  # retried after 5, 30 and 120 s: well past the token's two minutes
    logout_at_the_provider(rp)
    while not receiver.tokens("/late"):
        [job] = jobs_of_kind()
        clock.advance(job.run_after.timestamp() - clock.time() + 1)
        jobs.run_due()
    [job] = jobs_of_kind()
    assert job.attempts == 4 and job.done_at is not None
    # verify_jwt checks exp at the (advanced) clock: the token was signed for this attempt.
    assert_logout_token(verify_jwt, receiver.tokens("/late")[0], client_id, person.sub, tokens["claims"]["sid"])


def test_a_retry_goes_to_the_address_staff_corrected_since(rp, make_client, receiver, person, clock):
    from idp.models.clients import Client

    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/old"))
    rp.sign_in(client_id, secret)
    receiver.fail_next = 1
    logout_at_the_provider(rp)
    row = db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one()
    row.backchannel_logout_uri = receiver.url("/new")
    db.session.commit()
    [job] = jobs_of_kind()
    clock.advance(job.run_after.timestamp() - clock.time() + 1)
    assert jobs.run_due() == 1
    assert receiver.tokens("/old") == [] and len(receiver.tokens("/new")) == 1


def test_a_client_disabled_before_the_retry_is_sent_nothing(rp, make_client, receiver, person, clock):
    from idp.models.clients import Client

    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/gone"))
    rp.sign_in(client_id, secret)
    receiver.fail_next = 1
    logout_at_the_provider(rp)
    row = db.session.execute(db.select(Client).filter_by(client_id=client_id)).scalar_one()
    row.enabled = False
    db.session.commit()
    [job] = jobs_of_kind()
    clock.advance(job.run_after.timestamp() - clock.time() + 1)
    assert jobs.run_due() == 1
    [job] = jobs_of_kind()
    assert job.done_at is not None and receiver.attempts == 1 and receiver.tokens("/gone") == []


def test_a_delivery_that_keeps_failing_is_marked_failed_after_the_maximum_attempts(
        rp, make_client, receiver, person, clock, app):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/f"))
    rp.sign_in(client_id, secret)
    receiver.always_fail = True
    logout_at_the_provider(rp)
    maximum = app.config["BACKCHANNEL_MAX_ATTEMPTS"]
    for attempt in range(2, maximum + 1):
        [job] = jobs_of_kind()
        assert job.failed_at is None and job.attempts == attempt - 1
        clock.advance(job.run_after.timestamp() - clock.time() + 1)
        assert jobs.run_due() == 1
    [job] = jobs_of_kind()
    assert job.attempts == maximum
    assert job.failed_at is not None and job.done_at is None
    clock.advance(86400)
    assert jobs.run_due() == 0
    assert receiver.attempts == maximum


def test_an_unreachable_endpoint_is_retried_not_lost(rp, make_client, person, clock):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri="http://127.0.0.1:9/closed")
    rp.sign_in(client_id, secret)
    logout_at_the_provider(rp)
    [job] = jobs_of_kind()
    assert job.attempts == 1 and job.done_at is None and job.failed_at is None


# --- ending a session from the user centre ---------------------------------------------------


def test_ending_another_session_from_the_user_centre_notifies_its_clients(
        rp, new_browser, make_client, receiver, person, verify_jwt):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/c"))
    other = new_browser()
    elsewhere = other.sign_in(client_id, secret)
    other_sid = elsewhere["claims"]["sid"]
    rp.login()
    page = html(rp.get("/center/apps"))
    assert f'data-sid="{other_sid}"' in page
    action = form_action(page, f"/center/sessions/{other_sid}/end")
    response = rp.browser.post(action, data={"csrf_token": csrf_from(page)})
    assert response.status_code == 302
    assert len(receiver.tokens("/c")) == 1
    assert_logout_token(verify_jwt, receiver.tokens("/c")[0], client_id, person.sub, other_sid)
    # That browser is signed out; this one is not.
    assert "/login" in location(other.get("/center/profile"))
    assert rp.get("/center/profile").status_code == 200
    assert rp.refresh(client_id, secret, elsewhere["refresh_token"]).status_code == 400


def test_ending_the_current_session_from_the_user_centre_notifies_its_clients(
        rp, make_client, receiver, person, verify_jwt):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/own"))
    tokens = rp.sign_in(client_id, secret)
    sid = tokens["claims"]["sid"]
    page = html(rp.get("/center/apps"))
    rp.browser.post(form_action(page, f"/center/sessions/{sid}/end"), data={"csrf_token": csrf_from(page)})
    assert len(receiver.tokens("/own")) == 1
    assert_logout_token(verify_jwt, receiver.tokens("/own")[0], client_id, person.sub, sid)
    assert "/login" in location(rp.get("/center/profile"))


def test_ending_a_session_needs_the_csrf_token(rp, make_client, receiver, person):
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/x"))
    sid = rp.sign_in(client_id, secret)["claims"]["sid"]
    response = rp.browser.post(f"/center/sessions/{sid}/end")
    assert response.status_code == 400
    assert receiver.tokens("/x") == []
    assert rp.get("/center/profile").status_code == 200


def test_another_accounts_session_cannot_be_ended(rp, new_browser, make_client, receiver, person):
    from tests.conftest import make_account

    make_account("natural", "li_si", name="李四", phone="13900139000")
    client_id, secret = make_client(trusted=True, backchannel_logout_uri=receiver.url("/y"))
    other = new_browser()
    sid = other.sign_in(client_id, secret, login_name="li_si")["claims"]["sid"]
    rp.login()
    page = html(rp.get("/center/apps"))
    response = rp.browser.post(f"/center/sessions/{sid}/end", data={"csrf_token": csrf_from(page)})
    assert response.status_code == 404
    assert receiver.tokens("/y") == []
    assert other.get("/center/profile").status_code == 200
