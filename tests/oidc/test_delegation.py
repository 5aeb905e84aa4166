"""Delegation end to end (issue 14): a unit authorises a person; at sign-in the person chooses to
act for the unit; every token says so (``represents``, checked with PyJWT); revoking, declining,
expiry and the unit losing its verification end every token issued while acting for the unit at
its next use, and the systems concerned get a back-channel logout (a real HTTP server)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from idp import jobs
from idp.delegations import service
from idp.extensions import db
from idp.models.delegations import Delegation
from tests.conftest import audit_events, make_account
from tests.oidc.conftest import basic_auth, csrf_from, decode_unverified, form_action, html, query_of, location
from tests.oidc.test_backchannel_logout import receiver  # noqa: F401  (the back-channel suite's fixture)

SCOPE = "openid profile delegation offline_access"


@pytest.fixture
def verified_unit(app):
    unit = make_account("legal", "fz_unit", org_kind="enterprise", name="李四", phone="13900139000")
    unit.verification_status = "verified_manual"
    db.session.commit()
    return unit


@pytest.fixture
def system(make_client, receiver):
    """A business system that accepts delegation, with a back-channel logout endpoint."""
    return make_client(name="项目申报", trusted=True, backchannel_logout_uri=receiver.url("/a/logout"))


@pytest.fixture
def other_system(make_client):
    return make_client(name="成果登记", trusted=True)


@pytest.fixture
def granted(verified_unit, person, system):
    """The unit authorises 张三 for ``system`` (recorded by an operator: accepted)."""
    delegation, created = service.grant(verified_unit, person, service.Terms((system[0],)), source="cli")
    db.session.commit()
    assert created
    return delegation


def choose(rp, response, value):
    """On the choice page, post ``represents`` = ``value`` (self or a delegation id)."""
    page = html(response)
    assert "以本人身份办理" in page or 'name="represents"' in page
    return rp.browser.post(form_action(page, 'name="represents"'), data={"csrf_token": csrf_from(page),
                                                                        "represents": value})


def sign_in_acting(rp, client_id, secret, value, **params):
    """Authorize with scope delegation, choose ``value`` on the choice page, redeem the code."""
    response = rp.follow(rp.get(rp.authorize_url(client_id, scope=SCOPE, **params)))
    assert response.status_code == 200 and 'name="represents"' in html(response), html(response)[:500]
    response = rp.follow(choose(rp, response, value))
    assert response.status_code == 302, html(response)[:1000]
    params = query_of(location(response))
    tokens = rp.redeem(client_id, secret, params["code"]).get_json()
    tokens["claims"] = rp.verify_id_token(tokens["id_token"], client_id)
    return tokens


def introspect(rp, client_id, secret, token):
    return rp.browser.post("/introspect", data={"token": token}, headers=basic_auth(client_id, secret)).get_json()


def assert_ended(rp, client_id, secret, tokens):
    assert introspect(rp, client_id, secret, tokens["access_token"]) == {"active": False}
    assert rp.userinfo(tokens["access_token"]).status_code == 401
    assert introspect(rp, client_id, secret, tokens["refresh_token"]) == {"active": False}
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"])
    assert refreshed.status_code == 400 and refreshed.get_json()["error"] == "invalid_grant"


# -- grant → sign-in acting for the unit → represents everywhere ------------------------------

def test_acting_for_the_unit_puts_represents_in_every_token(rp, system, granted, verified_unit, person, verify_jwt):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    expected = {"sub": verified_unit.sub, "sub_id_type": "uscc", "uscc": verified_unit.uscc,
                "name": verified_unit.org_name, "delegation_id": granted.id, "services": [client_id]}
    id_token = tokens["claims"]  # verified with PyJWT against /jwks.json
    assert id_token["sub"] == person.sub and id_token["represents"] == expected
    access = verify_jwt(tokens["access_token"], client_id, typ="at+jwt")
    assert access["sub"] == person.sub and access["represents"] == expected
    info = rp.userinfo(tokens["access_token"]).get_json()
    assert info["sub"] == person.sub and info["represents"] == expected
    assert info["delegations"] == [{"org": {"sub": verified_unit.sub, "name": verified_unit.org_name,
                                            "uscc": verified_unit.uscc}, "services": [client_id]}]
    body = introspect(rp, client_id, secret, tokens["access_token"])
    assert body["active"] is True and body["represents"] == expected
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    assert verify_jwt(refreshed["access_token"], client_id, typ="at+jwt")["represents"] == expected


def test_acting_for_oneself_carries_no_represents_and_the_choice_is_remembered(rp, system, granted, other_system):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, "self")
    assert "represents" not in tokens["claims"]
    assert "represents" not in decode_unverified(tokens["access_token"])
    again = rp.sign_in(client_id, secret, scope=SCOPE)  # remembered for this system in this session
    assert "represents" not in again["claims"] and again["flow"].pages == []


def test_prompt_select_account_asks_again(rp, system, granted):
    client_id, secret = system
    sign_in_acting(rp, client_id, secret, "self")
    tokens = sign_in_acting(rp, client_id, secret, granted.id, prompt="select_account")
    assert tokens["claims"]["represents"]["delegation_id"] == granted.id


def test_prompt_none_hears_account_selection_required(rp, system, granted):
    client_id, _ = system
    rp.login()
    response = rp.get(rp.authorize_url(client_id, scope=SCOPE, prompt="none"))
    assert query_of(location(response))["error"] == "account_selection_required"


def test_the_choice_is_not_shown_to_a_person_without_authorisations(rp, system, person, verified_unit):
    client_id, secret = system
    tokens = rp.sign_in(client_id, secret, scope=SCOPE)
    assert "represents" not in tokens["claims"]


def test_the_choice_is_not_shown_for_a_system_outside_the_authorisation(rp, other_system, granted):
    client_id, secret = other_system
    tokens = rp.sign_in(client_id, secret, scope=SCOPE)
    assert "represents" not in tokens["claims"]


def test_the_choice_is_not_shown_without_the_delegation_scope(rp, system, granted):
    client_id, secret = system
    tokens = rp.sign_in(client_id, secret, scope="openid profile")
    assert "represents" not in tokens["claims"]


def test_an_authorisation_waits_for_the_persons_acceptance(rp, system, verified_unit, person):
    delegation, _ = service.grant(verified_unit, person, service.Terms((system[0],)))
    db.session.commit()
    assert delegation.status == "pending"
    client_id, secret = system
    assert "represents" not in rp.sign_in(client_id, secret, scope=SCOPE)["claims"]  # not offered yet
    service.accept(delegation, person)
    db.session.commit()
    assert [e.event for e in audit_events() if e.event.startswith("delegation_")] == [
        "delegation_granted", "delegation_accepted"]
    tokens = sign_in_acting(rp, client_id, secret, delegation.id, prompt="select_account")
    assert tokens["claims"]["represents"]["delegation_id"] == delegation.id


# -- revocation, decline, expiry, the unit: at once, at every use -------------------------------

def test_revocation_ends_every_token_and_logs_the_system_out(rp, system, granted, person, receiver, verify_jwt):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    service.revoke(granted, actor="cli")
    db.session.commit()
    assert_ended(rp, client_id, secret, tokens)
    jobs.run_due()
    delivered = receiver.tokens("/a/logout")
    assert len(delivered) == 1
    logout = verify_jwt(delivered[0], client_id, typ="logout+jwt", require=("iss", "aud", "iat", "jti", "events"))
    assert logout["sub"] == person.sub and logout["sid"] == tokens["claims"]["sid"]
    assert [e.event for e in audit_events("delegation_revoked")] == ["delegation_revoked"]


def test_a_revoked_authorisation_is_no_longer_offered(rp, system, granted):
    client_id, secret = system
    sign_in_acting(rp, client_id, secret, granted.id)
    service.revoke(granted, actor="cli")
    db.session.commit()
    tokens = rp.sign_in(client_id, secret, scope=SCOPE)  # the remembered choice is void
    assert "represents" not in tokens["claims"]


def test_tokens_of_oneself_survive_a_revocation(rp, system, granted):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, "self")
    service.revoke(granted, actor="cli")
    db.session.commit()
    assert rp.userinfo(tokens["access_token"]).status_code == 200
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).status_code == 200


def test_declining_ends_every_token(rp, system, granted, person, receiver):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    service.decline(granted, person)
    db.session.commit()
    assert_ended(rp, client_id, secret, tokens)
    jobs.run_due()
    assert len(receiver.tokens("/a/logout")) == 1
    assert [e.event for e in audit_events("delegation_declined")] == ["delegation_declined"]


def test_expiry_ends_every_token_at_its_next_use(rp, system, verified_unit, person, clock, receiver):
    client_id, secret = system
    delegation, _ = service.grant(verified_unit, person, service.Terms((client_id,), ends=service.today()),
                                  source="cli")
    db.session.commit()
    tokens = sign_in_acting(rp, client_id, secret, delegation.id)
    assert tokens["claims"]["represents"]["valid_until"] == int(delegation.ends_at.timestamp())
    clock.advance(delegation.ends_at.timestamp() - clock.time())  # the first second after the last day
    assert rp.userinfo(tokens["access_token"]).status_code == 401  # no sweep has run
    assert introspect(rp, client_id, secret, tokens["access_token"]) == {"active": False}
    assert rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()["error"] == "invalid_grant"
    assert service.note_expiries() == 1
    db.session.commit()
    jobs.run_due()
    assert len(receiver.tokens("/a/logout")) == 1
    assert [e.event for e in audit_events("delegation_expired")] == ["delegation_expired"]
    assert service.note_expiries() == 0


def test_the_unit_losing_its_verification_ends_every_token(rp, system, granted, verified_unit, receiver):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    verified_unit.verification_status = "unverified"
    db.session.commit()
    assert_ended(rp, client_id, secret, tokens)
    jobs.run_due()
    assert len(receiver.tokens("/a/logout")) == 1


def test_the_unit_disabled_ends_every_token(rp, system, granted, verified_unit):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    verified_unit.status = "disabled"
    db.session.commit()
    assert_ended(rp, client_id, secret, tokens)


def test_a_change_of_the_terms_ends_the_tokens_issued_under_the_old_ones(rp, system, granted, verified_unit):
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    service.change(granted, service.Terms((client_id,), ends=service.today() + timedelta(days=30)), actor="fz_unit")
    db.session.commit()
    assert_ended(rp, client_id, secret, tokens)
    assert [e.event for e in audit_events("delegation_changed")] == ["delegation_changed"]


def test_a_revocation_racing_a_refresh_wins(rp, system, granted):
    """The refresh completes first, in the same second as the revocation: what it issued is
    dead all the same (the cut-off, written after the revocation's commit, covers it)."""
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    refreshed = rp.refresh(client_id, secret, tokens["refresh_token"]).get_json()
    service.revoke(granted, actor="cli")
    db.session.commit()
    assert_ended(rp, client_id, secret, refreshed)


# -- refusals that reveal nothing, bad input ----------------------------------------------------

@pytest.mark.parametrize("login_name, name", [
    ("fz_unit2", "王五"),        # a legal account
    ("nobody_here", "张三"),     # an unknown login name
    ("zhang_san", "张四"),       # a name that does not match
])
def test_an_unfit_person_is_refused_without_revealing_anything(verified_unit, person, login_name, name):
    make_account("legal", "fz_unit2", uscc="91350100M000101Y28", org_name="另一单位", name="王五")
    with pytest.raises(service.DelegationRefused) as refused:
        service.find_person(verified_unit, login_name, name)
    assert refused.value.reason == "person_not_found"
    assert "张三" not in str(refused.value) and "王五" not in str(refused.value)


def test_an_unverified_unit_may_not_delegate(app, person, system):
    unit = make_account("legal", "fz_unit", org_kind="enterprise")
    with pytest.raises(service.DelegationRefused) as refused:
        service.grant(unit, person, service.Terms((system[0],)))
    assert refused.value.reason == "unit_not_verified"
    assert db.session.execute(db.select(Delegation)).first() is None


@pytest.mark.parametrize("terms, reason", [
    (lambda c: service.Terms((c,), starts=date(2020, 1, 1)), "starts_in_the_past"),
    (lambda c: service.Terms((c,), ends=date(2020, 1, 1)), "ends_in_the_past"),
    (lambda c: service.Terms((c,), starts=service.today() + timedelta(days=5),
                             ends=service.today() + timedelta(days=2)), "dates_reversed"),
    (lambda c: service.Terms(("not-a-delegable-system",)), "client_not_delegable"),
    (lambda c: service.Terms(()), "no_client"),
])
def test_bad_terms_are_refused_and_nothing_is_saved(verified_unit, person, system, terms, reason):
    with pytest.raises(service.DelegationRefused) as refused:
        service.grant(verified_unit, person, terms(system[0]))
    assert refused.value.reason == reason
    db.session.rollback()
    assert db.session.execute(db.select(Delegation)).first() is None


def test_a_system_without_the_delegation_scope_cannot_be_delegated(verified_unit, person, make_client):
    plain, _ = make_client(name="无代办系统", scopes=["openid", "profile"])
    with pytest.raises(service.DelegationRefused) as refused:
        service.grant(verified_unit, person, service.Terms((plain,)))
    assert refused.value.reason == "client_not_delegable"


def test_a_second_authorisation_of_the_same_person_edits_the_first(verified_unit, person, system, other_system, granted):
    again, created = service.grant(verified_unit, person, service.Terms((other_system[0],), role="财务"))
    db.session.commit()
    assert not created and again.id == granted.id
    assert again.client_ids == [system[0], other_system[0]]  # nothing given before is lost
    assert again.role == "财务"
    assert len(db.session.execute(db.select(Delegation)).all()) == 1


def test_a_forged_or_replayed_choice_is_refused_and_nothing_is_issued(rp, system, granted, verified_unit, make_client):
    client_id, secret = system
    other_person = make_account("natural", "wang_wu", name="王五", document_number=None, phone="13700137000")
    someone_elses, _ = service.grant(verified_unit, other_person, service.Terms((client_id,)), source="cli")
    db.session.commit()
    response = rp.follow(rp.get(rp.authorize_url(client_id, scope=SCOPE)))
    page = response
    for forged in (someone_elses.id, "dlg_made_up", "../self"):
        refused = choose(rp, page, forged)
        assert refused.status_code == 400 and 'data-reason="represents_not_offered"' in html(refused)
    # replayed after the authorisation ended
    service.revoke(granted, actor="cli")
    db.session.commit()
    refused = choose(rp, page, granted.id)
    assert refused.status_code == 400
    from idp.models.oauth import AuthorizationCode

    assert db.session.execute(db.select(AuthorizationCode)).first() is None


# -- the legacy import's waiting authorisations -------------------------------------------------

def test_an_authorisation_waits_for_its_unit_and_takes_effect_when_it_is_verified(rp, system, person):
    waiting = service.grant_waiting(person, "91350100M000100Y43", None, source="torch")
    db.session.commit()
    assert waiting.unit_id is None and waiting.status == "accepted"
    unit = make_account("legal", "fz_unit", org_kind="enterprise")  # registers with that USCC
    db.session.refresh(waiting)
    assert waiting.unit_id is None  # not before it is verified
    unit.verification_status = "verified_auto"
    db.session.commit()
    db.session.refresh(waiting)
    assert waiting.unit_id == unit.id
    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, waiting.id)
    assert tokens["claims"]["represents"]["uscc"] == "91350100M000100Y43"


# -- a system for units: a person enters it only acting for a unit -----------------------------

@pytest.fixture
def units_system(make_client):
    return make_client(name="高新技术企业认定", trusted=True, allowed_account_types=["legal"])


def test_a_person_acting_for_a_unit_enters_a_system_for_units(rp, units_system, verified_unit, person):
    client_id, secret = units_system
    delegation, _ = service.grant(verified_unit, person, service.Terms((client_id,)), source="cli")
    db.session.commit()
    response = rp.follow(rp.get(rp.authorize_url(client_id, scope=SCOPE)))
    page = html(response)
    assert "以本人身份办理" in page and 'value="self" class="btn" disabled' in page
    refused = choose(rp, response, "self")  # a forged "self" at a system for units
    assert refused.status_code == 400 and 'data-reason="represents_not_offered"' in html(refused)
    tokens = sign_in_acting(rp, client_id, secret, delegation.id)
    assert tokens["claims"]["represents"]["delegation_id"] == delegation.id


def test_a_person_without_an_authorisation_stays_refused_at_a_system_for_units(rp, units_system, person):
    client_id, _ = units_system
    response = rp.follow(rp.get(rp.authorize_url(client_id, scope=SCOPE)))
    assert response.status_code == 403


def test_a_refresh_waiting_on_a_revocation_in_progress_loses(rp, app, system, granted):
    """Truly concurrent: the revocation has written its change but not committed; a refresh
    arrives meanwhile and waits for the authorisation's row (PostgreSQL: its shared lock;
    SQLite: the writer's lock); once the revocation commits, the refresh is refused."""
    import threading
    import time

    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, granted.id)
    service.revoke(granted, actor="cli")  # flushed: the row is locked until the commit
    answer = {}

    def refresh():
        answer["response"] = app.test_client().post(
            "/token", data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
            headers=basic_auth(client_id, secret))

    racer = threading.Thread(target=refresh)
    racer.start()
    time.sleep(0.5)
    assert racer.is_alive()  # the refresh waits for the revocation
    db.session.commit()
    racer.join(30)
    assert answer["response"].status_code == 400
    assert answer["response"].get_json()["error"] == "invalid_grant"
    assert rp.userinfo(tokens["access_token"]).status_code == 401


def test_a_choice_without_its_csrf_token_is_refused(rp, system, granted):
    client_id, _ = system
    response = rp.follow(rp.get(rp.authorize_url(client_id, scope=SCOPE)))
    action = form_action(html(response), 'name="represents"')
    refused = rp.browser.post(action, data={"represents": granted.id})
    assert refused.status_code == 400 and 'data-reason="csrf_failed"' in html(refused)
    from idp.models.oauth import AuthorizationCode

    assert db.session.execute(db.select(AuthorizationCode)).first() is None


def test_the_delegations_claim_follows_the_unit_at_once(rp, system, granted, verified_unit, clock):
    """Userinfo's cache hears of the unit's change (idp.claim_sources): a new access token,
    acting for oneself, no longer lists a unit that lost its verification."""
    from idp.oauth.userinfo_cache import TOMBSTONE_SECONDS

    client_id, secret = system
    tokens = sign_in_acting(rp, client_id, secret, "self")
    clock.advance(TOMBSTONE_SECONDS + 1)  # the grant's own tombstone is gone: the entry is cached
    assert len(rp.userinfo(tokens["access_token"]).get_json()["delegations"]) == 1
    assert len(rp.userinfo(tokens["access_token"]).get_json()["delegations"]) == 1
    verified_unit.verification_status = "unverified"
    db.session.commit()
    assert "delegations" not in rp.userinfo(tokens["access_token"]).get_json()
