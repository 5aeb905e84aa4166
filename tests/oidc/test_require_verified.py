"""A client with require_verified: an unverified user gets a page that explains why, not a code."""

from __future__ import annotations

from idp.verification import service
from tests.oidc.conftest import location, query_of, set_client


def test_unverified_user_gets_the_explanation_not_a_code(app, rp, make_client, person):
    client_id, _ = make_client(trusted=True)
    set_client(client_id, require_verified=True)
    response = rp.authorize(client_id).response
    body = response.get_data(as_text=True)
    assert response.status_code == 403
    assert 'data-reason="verification_required"' in body and "/center/profile" in body
    assert "code=" not in (response.headers.get("Location") or "")
    person.document_type = "resident_id"
    person.identity_region = "mainland"
    service.save_profile(person, {"document_number": "11010519491231002X"})
    assert person.verification_status == "verified_auto"
    response = rp.get(rp.authorize_url(client_id))
    assert response.status_code == 302 and "code" in query_of(location(response))


def test_prompt_none_gets_interaction_required(app, rp, make_client, person):
    client_id, _ = make_client(trusted=True)
    set_client(client_id, require_verified=True)
    rp.authorize(client_id)
    response = rp.get(rp.authorize_url(client_id, prompt="none"))
    assert query_of(location(response))["error"] == "interaction_required"
