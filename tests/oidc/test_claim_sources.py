"""Claims by source (idp.claim_sources): a source declares what it reads, and userinfo's cache
(idp.oauth.userinfo_cache) follows exactly that — a new source is one declaration, with no list
to keep in the cache. The source declared here stands for the delegations to come: rows of
another model per person (consents), and a column of another row shown in the claims (the
client's name, as a unit's name will be)."""

from __future__ import annotations

import pytest

from idp import claim_sources
from idp.extensions import db, services
from idp.models.accounts import Account
from idp.models.clients import Client
from idp.models.oauth import Consent
from idp.oauth import userinfo_cache
from tests.oidc.conftest import ALL_SCOPES, set_client
from tests.oidc.test_userinfo import StatementCounter, info, tokens_for, verify, whole_row_claims


def _consents_of(account) -> list:
    rows = db.session.execute(
        db.select(Consent.client_id, Client.name).join(Client, Client.client_id == Consent.client_id)
        .where(Consent.account_id == account.id).order_by(Consent.client_id)).all()
    return [{"client_id": client_id, "name": name} for client_id, name in rows]


def _sub_of_consent(consent) -> tuple:
    # At flush: no autoflush runs, and the account is usually in the identity map already.
    return (db.session.get(Account, consent.account_id).sub,)


def _subs_consenting_to(client) -> list:
    return db.session.execute(db.select(Account.sub).join(Consent, Consent.account_id == Account.id)
                              .where(Consent.client_id == client.client_id)).scalars().all()


CONSENTS = claim_sources.ClaimSource(
    name="test_consents",
    account_columns=("id",),
    reads=(claim_sources.Reads(Consent, ("account_id", "client_id"), _sub_of_consent),
           claim_sources.Reads(Client, ("name",), _subs_consenting_to)),
    load=_consents_of,
    claims=lambda data, scope: {"consented_clients": data} if "openid" in scope.split() else {},
)


@pytest.fixture
def consents_source(app):
    """The source above, declared for one test."""
    claim_sources.declare(CONSENTS)
    yield CONSENTS
    claim_sources.withdraw(CONSENTS)


@pytest.fixture
def settled(clock):
    """Past the tombstone that the fixtures' own writes (the account's creation) left."""
    clock.advance(userinfo_cache.TOMBSTONE_SECONDS)


@pytest.fixture
def trusted(make_client):
    return make_client(trusted=True)


def cached(sub: str) -> bytes | None:
    return services().store.get(userinfo_cache.key(sub))


def consent(person, client_id: str) -> Consent:
    row = Consent(account_id=person.id, client_id=client_id, scopes=["openid"])
    db.session.add(row)
    db.session.commit()
    return row


def test_a_declared_source_is_in_userinfo_from_the_cache_once_read(rp, trusted, person, settled, consents_source):
    token = tokens_for(rp, trusted, "openid email")["access_token"]
    with StatementCounter() as first:
        assert info(rp, token)["consented_clients"] == []
    with StatementCounter() as second:
        assert info(rp, token)["consented_clients"] == []
    assert first.selects >= 1 and second.statements == []


def test_a_new_row_of_a_source_is_in_userinfo_at_once(rp, trusted, make_client, person, settled, consents_source):
    other, _ = make_client(name="科技项目申报")
    token = tokens_for(rp, trusted, "openid")["access_token"]
    info(rp, token)
    consent(person, other)
    assert cached(person.sub) == b"-"
    assert info(rp, token)["consented_clients"] == [{"client_id": other, "name": "科技项目申报"}]


def test_another_rows_column_a_source_shows_is_in_userinfo_at_once(rp, trusted, make_client, person, settled,
                                                                    consents_source):
    """As a unit's new name will be in the delegations of each person acting for it."""
    other, _ = make_client(name="科技项目申报")
    consent(person, other)
    token = tokens_for(rp, trusted, "openid")["access_token"]
    info(rp, token)
    set_client(other, name="科技项目申报（新）")
    assert info(rp, token)["consented_clients"][0]["name"] == "科技项目申报（新）"


def test_a_deleted_row_of_a_source_leaves_userinfo_at_once(rp, trusted, make_client, person, settled,
                                                           consents_source):
    other, _ = make_client(name="科技项目申报")
    row = consent(person, other)
    token = tokens_for(rp, trusted, "openid")["access_token"]
    assert info(rp, token)["consented_clients"] != []
    db.session.delete(row)
    db.session.commit()
    assert info(rp, token)["consented_clients"] == []


def test_columns_no_source_reads_keep_the_cached_entry(rp, trusted, make_client, person, settled, clock,
                                                       consents_source):
    """A consent's time, a client's logo, the account's last sign-in: written, but read by no
    source, so the entry stays (userinfo keeps answering from the cache)."""
    other, _ = make_client(name="科技项目申报")
    row = consent(person, other)
    clock.advance(userinfo_cache.TOMBSTONE_SECONDS)
    token = tokens_for(rp, trusted, "openid")["access_token"]
    info(rp, token)
    entry = cached(person.sub)
    assert entry and entry != b"-"
    row.granted_at = clock.now()
    set_client(other, logo_uri="https://rp.example/logo.png")
    db.session.get(Account, person.id).last_login_at = clock.now()
    db.session.commit()
    assert cached(person.sub) == entry


def test_an_entry_written_before_a_source_was_declared_counts_as_absent(rp, trusted, person, settled):
    token = tokens_for(rp, trusted, "openid email")["access_token"]
    assert "consented_clients" not in info(rp, token)
    assert cached(person.sub) not in (None, b"-")
    claim_sources.declare(CONSENTS)
    try:
        assert info(rp, token)["consented_clients"] == []
    finally:
        claim_sources.withdraw(CONSENTS)
    assert "consented_clients" not in info(rp, token)


def test_a_change_rolled_back_keeps_the_entry(rp, trusted, person, settled):
    token = tokens_for(rp, trusted, "openid email")["access_token"]
    info(rp, token)
    entry = cached(person.sub)
    account = db.session.get(Account, person.id)
    account.email = "attacker@example.cn"
    db.session.flush()
    db.session.rollback()
    assert cached(person.sub) == entry
    assert info(rp, token)["email"] == "zhangsan@example.cn"


def test_a_disabled_account_loses_its_entry_and_userinfo_refuses_at_once(rp, trusted, person, settled):
    """The status is the cache's own column, not a claim: it is followed all the same."""
    token = tokens_for(rp, trusted, "openid email")["access_token"]
    info(rp, token)
    account = db.session.get(Account, person.id)
    account.status = "disabled"
    db.session.commit()
    assert cached(person.sub) == b"-"
    response = rp.userinfo(token)
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_token"


def test_a_source_cannot_be_declared_twice(app):
    before = claim_sources.sources()
    with pytest.raises(ValueError, match="declared twice"):
        claim_sources.declare(before[0])
    assert claim_sources.sources() == before


@pytest.mark.parametrize("account_type", ["natural", "legal"])
def test_the_account_source_declares_every_column_its_claims_read(app, person, unit, account_type):
    """Userinfo's claims are always made from what the source read (fresh or cached): a claim
    made from a column the source does not declare would fail here, not go stale in the cache."""
    from idp.oauth.claims import ACCOUNT_SOURCE, gathered_claims

    account = person if account_type == "natural" else unit
    verify(account)
    scope = " ".join(ALL_SCOPES)
    db.session.expire_all()
    columns = list(ACCOUNT_SOURCE.account_columns)
    row = db.session.execute(db.select(Account).where(Account.id == account.id)
                             .options(db.load_only(*(getattr(Account, c) for c in columns)))).scalar_one()
    with StatementCounter() as reads:
        data = {ACCOUNT_SOURCE.name: ACCOUNT_SOURCE.load(row)}
    assert reads.statements == []
    # The other sources (delegations: none for this account) add nothing here.
    data.update({s.name: s.load(row) for s in claim_sources.sources() if s is not ACCOUNT_SOURCE})
    assert gathered_claims(data, scope) == whole_row_claims(account, scope)
