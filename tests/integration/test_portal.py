"""服务事项 (the service catalogue by kind of user) and the help page."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from idp import clients as registry

CLIENTS_DIR = Path(__file__).resolve().parents[2] / "clients"


def _import_declarations():
    for path in sorted(CLIENTS_DIR.glob("*.toml")):
        registry.import_declaration(registry.load_declaration(path))


def test_the_catalogue_lists_the_unit_systems_with_an_entry_that_starts_sso(app, client):
    _import_declarations()
    page = client.get("/services?type=legal").get_data(as_text=True)
    for client_id in ("gaoqi", "kexiaoqi", "hgr", "programmes"):
        assert f'data-client="{client_id}"' in page
    assert "高新技术企业认定" in page
    entry = urlsplit(registry.find("gaoqi").initiate_login_uri)
    assert f'href="{entry.scheme}://{entry.netloc}{entry.path}?iss=' in page


def test_the_entry_link_carries_the_issuer_for_third_party_initiated_login(app, client):
    _import_declarations()
    from idp.portal.views import entry_link

    link = urlsplit(entry_link(registry.find("gaoqi")))
    assert parse_qs(link.query) == {"iss": [app.config["ISSUER"]]}


def test_the_natural_person_catalogue_lists_only_systems_open_to_persons(app, client):
    _import_declarations()
    page = client.get("/services?type=natural").get_data(as_text=True)
    assert 'data-client="programmes"' in page
    for client_id in ("gaoqi", "kexiaoqi", "hgr"):
        assert f'data-client="{client_id}"' not in page


def test_disabled_systems_leave_the_catalogue(app, client):
    _import_declarations()
    gaoqi = registry.find("gaoqi")
    gaoqi.enabled = False
    from idp.extensions import db

    db.session.commit()
    assert 'data-client="gaoqi"' not in client.get("/services?type=legal").get_data(as_text=True)


def test_an_unknown_kind_falls_back_to_units(app, client):
    _import_declarations()
    page = client.get("/services?type=<script>").get_data(as_text=True)
    assert 'data-kind="legal"' in page
    assert "<script>" not in page  # the unknown value is not echoed


def test_the_help_page_has_the_common_questions_and_the_support_phones(client):
    page = client.get("/help").get_data(as_text=True)
    assert "010-88659000" in page and "010-88656305/6315" in page
    assert page.count("<dt>") == 3
