"""The staff console's user page shows a unit's delegates and a person's units (issue 14, item 6)."""

from __future__ import annotations

from idp.clients import ClientSpec, create
from idp.delegations import service
from idp.extensions import db
from tests.conftest import make_account


def test_the_user_page_shows_a_units_delegates_and_a_persons_units(app, console):
    client, _ = create(ClientSpec(name="项目申报", redirect_uris=["https://rp.example/cb"],
                                  scopes=["openid", "delegation"]))
    unit = make_account("legal", "fz_unit", org_kind="enterprise", name="李四")
    unit.verification_status = "verified_manual"
    person = make_account("natural", "zhang_san")
    delegation, _ = service.grant(unit, person, service.Terms((client.client_id,)), source="cli")
    db.session.commit()
    staff = console("support")
    unit_page = staff.get(f"/admin/users/{unit.sub}").get_data(as_text=True)
    assert f'data-delegation="{delegation.id}"' in unit_page and "zhang_san" in unit_page
    person_page = staff.get(f"/admin/users/{person.sub}").get_data(as_text=True)
    assert f'data-delegation="{delegation.id}"' in person_page and "fz_unit" in person_page
