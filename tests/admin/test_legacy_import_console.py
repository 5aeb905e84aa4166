"""The console's pages of the legacy import: runs (who, when, digest, counts, skipped lines)
and the imported accounts by outcome; support staff may look, client managers may not."""

from __future__ import annotations

import pytest

from idp.extensions import db
from idp.legacy.service import import_file
from tests import legacy_export as export
from tests.conftest import PASSWORD, make_account
from tests.unit.test_legacy_hashes import legacy_hashes

HASHES = legacy_hashes("Torch2019!x")


@pytest.fixture
def two_runs(app, tmp_path):
    export.existing_accounts(make_account, PASSWORD)
    path = tmp_path / "torch_2026.csv"
    rows = export.scenario_rows(HASHES) + [export.person("bad_phone", "12345", HASHES["sha256"])]
    path.write_bytes(export.to_csv(rows))
    for _ in range(2):
        import_file(path, checkpoint=db.session.commit, started_by="operator_li")
        db.session.commit()
    return path


def test_the_runs_page_lists_who_when_digest_counts_and_skipped(app, console, two_runs):
    from idp.legacy.service import file_digest

    page = console("support").get("/admin/legacy/").get_data(as_text=True)

    assert page.count('data-status="finished"') == 2
    assert "operator_li" in page and "torch_2026.csv" in page and file_digest(two_runs)[:16] in page


def test_a_run_page_shows_its_skipped_lines_with_reasons(app, console, two_runs):
    from idp.models.legacy import LegacyImportRun

    run_id = db.session.execute(db.select(LegacyImportRun.id).order_by(LegacyImportRun.id)).scalars().first()
    page = console("support").get(f"/admin/legacy/runs/{run_id}").get_data(as_text=True)

    assert 'data-line="13" data-reason="invalid_mobile"' in page
    from idp.legacy.service import file_digest

    assert file_digest(two_runs) in page


@pytest.mark.parametrize("kind, outcome, expected", [
    ("unit", 4, {export.U4, "HJ-" + export.U4_TAKEN}),
    ("unit", 2, {"unit_two_here"}),
    ("person", 3, {"HJ-" + export.M3, "HJ-" + export.M_CHAIN}),
    ("person", 4, set()),
])
def test_imported_accounts_are_found_by_outcome(app, console, two_runs, kind, outcome, expected):
    response = console("support").get(f"/admin/legacy/accounts?kind={kind}&outcome={outcome}")

    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert page.count(f'data-kind="{kind}" data-outcome="{outcome}"') == max(1, len(expected))
    for login_name in expected:
        assert f">{login_name}</a>" in page
    if kind == "unit" and outcome == 4:
        assert "gaoqi, kexiaoqi · waiting" in page
    for phone in (export.M1, "13700137000"):
        assert phone not in page  # masked


def test_a_bad_filter_is_refused(app, console, two_runs):
    assert console("support").get("/admin/legacy/accounts?outcome=9").status_code == 400


def test_client_managers_do_not_see_the_import(app, console, two_runs):
    assert console("client_manager").get("/admin/legacy/").status_code in (302, 403)
    assert console("client_manager").get("/admin/legacy/accounts").status_code in (302, 403)
