"""``idp torch import``: every rule and conflict for both kinds, run twice, interrupted and
resumed (in process and by killing the command), dry run, and each kind of bad row reported
with its line number and skipped without stopping the import."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from idp.extensions import db
from idp.legacy.service import import_file
from idp.models.accounts import UNVERIFIED, Account
from idp.models.delegations import Delegation
from idp.models.legacy import FINISHED, INTERRUPTED, LegacyImportRecord, LegacyImportRun, LegacyImportSkip
from tests import legacy_export as export
from tests.conftest import PASSWORD, audit_events, make_account
from idp.security.passwords import hash_params
from tests.unit.test_legacy_hashes import legacy_hashes

LEGACY_PASSWORD = "Torch2019!密码"
HASHES = legacy_hashes(LEGACY_PASSWORD)


def _accounts() -> dict[str, Account]:
    db.session.expire_all()
    return {a.login_name: a for a in db.session.execute(sa.select(Account)).scalars()}


def _records() -> dict:
    db.session.expire_all()
    return {(r.kind, r.key): r for r in db.session.execute(sa.select(LegacyImportRecord)).scalars()}


def _run(path, **options) -> dict:
    result = import_file(path, checkpoint=db.session.commit, started_by="operator_li", **options)
    db.session.commit()
    return result


@pytest.fixture
def scenario(app, tmp_path) -> Path:
    export.existing_accounts(make_account, PASSWORD)
    path = tmp_path / "torch.csv"
    path.write_bytes(export.to_csv(export.scenario_rows(HASHES), bom=True))
    return path


def _assert_scenario_outcome(before: dict[str, Account]) -> None:
    records = _records()
    assert set(records) == set(export.EXPECTED)
    accounts = _accounts()
    for ident, (outcome, login_name, account_type) in export.EXPECTED.items():
        record = records[ident]
        assert (record.outcome, record.login_name, record.account_type) == (outcome, login_name, account_type), ident
        if login_name is None:
            assert record.account_id is None
            continue
        account = accounts[login_name]
        assert record.account_id == account.id
        assert account.account_type == account_type
        if login_name in before:  # outcome (2): the account that was here, untouched
            assert account.password_hash == before[login_name].password_hash
            assert account.legacy_source is None
        else:
            assert account.legacy_source == "torch"
            assert account.verification_status == UNVERIFIED
            assert account.must_complete_real_name is True
            assert account.password_hash in HASHES.values()  # stored as it came: no argon2 here
            assert account.password_params == hash_params(account.password_hash)  # the timing floor's
    # Units keep the unit's data; persons their name; every imported account its reserved phone.
    hj = accounts["HJ_" + export.U3]
    assert (hj.uscc, hj.org_name, hj.name, hj.phone, hj.org_region) == (
        export.U3, "示例科技有限公司", "王五", "13700137000", "domestic")
    person = accounts["torch_wang"]
    assert (person.name, person.phone, person.uscc) == ("赵六", export.M1, None)
    held = accounts[export.U4]
    assert held.uscc is None  # a person's account: the unit may still register with its USCC
    # Unit outcome (4) holds the unit's authorisation for 高企认定 and 科小企评价, waiting on the USCC.
    waiting = db.session.execute(sa.select(Delegation).filter_by(person_id=held.id)).scalar_one()
    assert (waiting.unit_id, waiting.unit_uscc, waiting.status, waiting.source, sorted(waiting.client_ids)) == (
        None, export.U4, "accepted", "legacy_torch", ["gaoqi", "kexiaoqi"])
    assert records[("unit", export.U4)].authorisation == {
        "uscc": export.U4, "client_ids": ["gaoqi", "kexiaoqi"], "source": "torch", "state": "waiting",
        "delegation_id": waiting.id}
    assert records[("unit", export.U1)].authorisation is None
    # Nobody got an account for person (4): the verified person's phone is theirs.
    assert sum(1 for a in accounts.values() if a.phone == export.M4) == 1


def test_every_rule_and_conflict_for_both_kinds(app, scenario):
    before = _accounts()

    result = _run(scenario)

    assert result == {**export.EXPECTED_COUNTS, "unchanged": 0, "skipped": []}
    _assert_scenario_outcome(before)
    assert len(_accounts()) == len(before) + 8
    [run] = db.session.execute(sa.select(LegacyImportRun)).scalars()
    assert (run.status, run.started_by, run.file_name, run.last_line) == (FINISHED, "operator_li", "torch.csv", 12)
    assert len(run.file_digest) == 64 and run.counts["skipped"] == 0
    [event] = audit_events("legacy_import_finished")
    assert event.details["units"] == export.EXPECTED_COUNTS["units"] and event.actor == "operator_li"


def test_the_waiting_authorisation_takes_effect_when_the_unit_registers_and_is_verified(app, scenario):
    _run(scenario)
    held = _accounts()[export.U4]
    unit = make_account("legal", "unit_four", uscc=export.U4, org_name="示例四号科技有限公司", phone="13600136004")
    waiting = db.session.execute(sa.select(Delegation).filter_by(person_id=held.id)).scalar_one()
    assert waiting.unit_id is None  # registered, not yet verified
    unit.verification_status = "verified_auto"
    db.session.commit()
    db.session.refresh(waiting)
    assert (waiting.unit_id, waiting.status) == (unit.id, "accepted")
    assert [e.details["delegation_id"] for e in audit_events("delegation_granted")] == [waiting.id]
    assert _run(scenario)["unchanged"] == len(export.EXPECTED)  # a second run grants nothing again


def test_a_second_run_of_the_same_file_changes_nothing(app, scenario):
    before = _accounts()
    _run(scenario)
    accounts = {name: (a.id, a.password_hash, a.updated_at) for name, a in _accounts().items()}

    again = _run(scenario)

    zero = {"1": 0, "2": 0, "3": 0, "4": 0}
    assert again == {"units": zero, "persons": zero, "unchanged": 11, "skipped": []}
    assert {name: (a.id, a.password_hash, a.updated_at) for name, a in _accounts().items()} == accounts
    _assert_scenario_outcome(before)
    assert [r.status for r in db.session.execute(sa.select(LegacyImportRun)).scalars()] == [FINISHED, FINISHED]


def test_the_same_records_in_json_lines_are_the_same_records(app, scenario, tmp_path):
    _run(scenario)
    jsonl = tmp_path / "torch.jsonl"
    jsonl.write_bytes(export.to_jsonl(export.scenario_rows(HASHES)))

    assert _run(jsonl)["unchanged"] == 11


def test_a_dry_run_counts_the_same_and_writes_nothing(app, scenario):
    before = _accounts()

    dry = import_file(scenario, dry_run=True, started_by="operator_li")
    db.session.commit()

    assert dry == {**export.EXPECTED_COUNTS, "unchanged": 0, "skipped": []}
    assert set(_accounts()) == set(before)
    assert _records() == {}
    assert db.session.execute(sa.select(LegacyImportRun)).first() is None
    assert _run(scenario) == dry  # and the real run then does what the dry run said


class Killed(BaseException):
    """Stands for the process being killed: nothing after it runs, nothing is committed."""


def test_a_run_interrupted_half_way_is_finished_by_the_next_run(app, scenario):
    before = _accounts()

    def kill_after_first_batch(line):
        raise Killed

    with pytest.raises(Killed):
        _run(scenario, batch_size=4, after_batch=kill_after_first_batch)
    db.session.rollback()
    assert len(_records()) == 4  # the first batch (lines 2–5) is in, with its accounts
    assert len(_accounts()) == len(before) + 3

    resumed = _run(scenario, batch_size=4)

    assert resumed["unchanged"] == 4
    assert {k: sum(v.values()) for k, v in resumed.items() if k in ("units", "persons")} == {"units": 2, "persons": 5}
    _assert_scenario_outcome(before)
    runs = list(db.session.execute(sa.select(LegacyImportRun).order_by(LegacyImportRun.id)).scalars())
    assert [r.status for r in runs] == [INTERRUPTED, FINISHED]
    assert runs[1].resumes_run_id == runs[0].id


def test_killing_the_command_half_way_and_running_it_again_imports_every_record_once(app, settings, tmp_path):
    """The real thing: ``idp torch import`` in its own process, killed with SIGKILL after its
    first commits, then run again to the end."""
    rows = [export.unit(export.uscc(1000 + n), HASHES["sha256"]) for n in range(1500)]
    rows += [export.person(f"torch_{n}", export.mobile(1000 + n), HASHES["sha256"]) for n in range(1500)]
    path = tmp_path / "big.csv"
    path.write_bytes(export.to_csv(rows))
    env = {**os.environ, "IDP_DATABASE_URL": settings["DATABASE_URL"], "IDP_INSTANCE_DIR": settings["INSTANCE_DIR"],
           "IDP_REDIS_URL": settings["REDIS_URL"], "IDP_LEGACY_IMPORT_BATCH": "50"}
    command = [str(Path(sys.executable).parent / "idp"), "torch", "import", str(path), "--json"]
    db.session.commit()
    db.engine.dispose()  # no connection of ours holds a lock while the command writes

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        db.session.rollback()
        done = db.session.execute(sa.select(sa.func.count(LegacyImportRecord.id))).scalar_one()
        if done >= 200 or process.poll() is not None:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    db.session.rollback()
    killed_at = db.session.execute(sa.select(sa.func.count(LegacyImportRecord.id))).scalar_one()
    assert 0 < killed_at < 3000, "the command was not killed half way"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    assert finished.returncode == 0, finished.stderr
    result = json.loads(finished.stdout.strip().splitlines()[-1])
    assert result["unchanged"] == killed_at
    assert sum(result["units"].values()) + sum(result["persons"].values()) + killed_at == 3000
    db.session.rollback()
    assert db.session.execute(sa.select(sa.func.count(LegacyImportRecord.id))).scalar_one() == 3000
    assert db.session.execute(sa.select(sa.func.count(Account.id))).scalar_one() == 3000


# --- bad rows -------------------------------------------------------------------------------

GOOD_UNIT = export.unit(export.uscc(900), HASHES["bcrypt_2b"])
GOOD_PERSON = export.person("good_person", export.mobile(900), HASHES["pbkdf2_sha256"])


def _bad_uscc():
    code = export.uscc(901)
    wrong = code[:-1] + ("0" if code[-1] != "0" else "1")  # a wrong check character
    return export.unit(wrong, HASHES["sha256"])


BAD_ROWS = {
    "invalid_uscc": (_bad_uscc(), "uscc"),
    "invalid_mobile": (export.person("bad_phone", "1234567", HASHES["sha256"]), "mobile"),
    "hash_format_unknown": (export.person("md5_user", export.mobile(902), "5f4dcc3b5aa765d61d8327deb882cf99"),
                            "password_hash"),
    "missing_field": ({**export.person("no_name", export.mobile(903), HASHES["sha256"]), "name": ""}, "name"),
    "csv_injection": (export.person("formula", export.mobile(904), HASHES["sha256"], name="=HYPERLINK(\"x\")"),
                      "name"),
    "unknown_kind": ({**GOOD_PERSON, "kind": "robot"}, "kind"),
    "invalid_holder": ({**export.unit(export.uscc(905), HASHES["sha256"]), "holder": "someone"}, "holder"),
    "invalid_login_name": (export.person("no spaces please", export.mobile(906), HASHES["sha256"]), "login_name"),
}


@pytest.mark.parametrize("reason", sorted(BAD_ROWS))
def test_a_bad_row_is_reported_with_its_line_and_skipped_without_stopping(app, tmp_path, reason):
    bad, field_name = BAD_ROWS[reason]
    path = tmp_path / "bad.csv"
    path.write_bytes(export.to_csv([GOOD_UNIT, bad, GOOD_PERSON]))

    result = _run(path)

    assert result["skipped"] == [{"line": 3, "reason": reason, "field": field_name}]
    assert result["units"]["1"] == 1 and result["persons"]["1"] == 1
    assert set(_accounts()) == {GOOD_UNIT["uscc"], "good_person"}
    [skip] = db.session.execute(sa.select(LegacyImportSkip)).scalars()
    assert (skip.line, skip.reason, skip.field) == (3, reason, field_name)


def test_a_line_of_broken_utf8_is_skipped_and_the_rest_imported(app, tmp_path):
    data = export.to_csv([GOOD_UNIT, GOOD_PERSON]).splitlines(keepends=True)
    broken = export.to_csv([export.person("broken", export.mobile(907), HASHES["sha256"],
                                          name="张三")]).splitlines(keepends=True)[1]
    broken = broken.replace("张三".encode(), b"\xe5\xbc\xa0\xff")
    path = tmp_path / "broken.csv"
    path.write_bytes(data[0] + data[1] + broken + data[2])

    result = _run(path)

    assert result["skipped"] == [{"line": 3, "reason": "invalid_utf8"}]
    assert set(_accounts()) == {GOOD_UNIT["uscc"], "good_person"}


def test_a_duplicate_key_is_reported_at_its_later_line_in_every_run(app, tmp_path):
    twin = export.person("twin_two", GOOD_PERSON["mobile"], HASHES["sha256"])
    unit_twin = export.unit(GOOD_UNIT["uscc"], HASHES["sha256"], name="另一家")
    path = tmp_path / "dupes.csv"
    path.write_bytes(export.to_csv([GOOD_UNIT, GOOD_PERSON, twin, unit_twin]))

    first = _run(path)
    second = _run(path)

    expected = [{"line": 4, "reason": "duplicate_key", "field": "mobile"},
                {"line": 5, "reason": "duplicate_key", "field": "uscc"}]
    assert first["skipped"] == expected and second["skipped"] == expected
    assert second["unchanged"] == 2
    assert set(_accounts()) == {GOOD_UNIT["uscc"], "good_person"}
    assert _accounts()["good_person"].password_hash == HASHES["pbkdf2_sha256"]


def test_duplicates_across_batches_are_found(app, tmp_path):
    twin = export.person("twin_two", GOOD_PERSON["mobile"], HASHES["sha256"])
    path = tmp_path / "dupes.csv"
    path.write_bytes(export.to_csv([GOOD_PERSON, GOOD_UNIT, twin]))

    result = _run(path, batch_size=1)

    assert result["skipped"] == [{"line": 4, "reason": "duplicate_key", "field": "mobile"}]


def test_a_broken_csv_row_and_a_broken_json_line_are_skipped(app, tmp_path):
    csv_path = tmp_path / "broken.csv"
    rows = export.to_csv([GOOD_UNIT, GOOD_PERSON]).decode().splitlines(keepends=True)
    csv_path.write_text(rows[0] + rows[1] + 'person,"unclosed,x\n' + rows[2], encoding="utf-8")
    jsonl_path = tmp_path / "broken.jsonl"
    lines = export.to_jsonl([GOOD_UNIT, GOOD_PERSON]).decode().splitlines(keepends=True)
    jsonl_path.write_text(lines[0] + '{"kind": "person", \n' + '["a list"]\n' + lines[1], encoding="utf-8")

    csv_result = _run(csv_path)
    assert csv_result["units"]["1"] == 1
    assert [s["line"] for s in csv_result["skipped"]] == [3]

    db.session.execute(sa.delete(LegacyImportRecord))
    db.session.execute(sa.delete(Account))
    db.session.commit()
    json_result = _run(jsonl_path)
    assert json_result["skipped"] == [{"line": 2, "reason": "malformed_record"},
                                      {"line": 3, "reason": "malformed_record"}]
    assert json_result["units"]["1"] == 1 and json_result["persons"]["1"] == 1


def test_other_sources_are_recorded_per_account(app, tmp_path):
    path = tmp_path / "programme.csv"
    path.write_bytes(export.to_csv([GOOD_UNIT, GOOD_PERSON]))

    _run(path, source="programme")
    assert {a.legacy_source for a in _accounts().values()} == {"programme"}
    # The same keys from another system are that system's records, decided by the same rules:
    # the unit's legal account exists now (2); the person's login name is taken (3).
    result = _run(path, source="hgr")
    assert result["units"]["2"] == 1 and result["persons"]["3"] == 1
    assert _accounts()["HJ-" + GOOD_PERSON["mobile"]].legacy_source == "hgr"


def test_the_command_prints_one_json_line(app, settings, scenario):
    from idp.cli import main

    db.session.commit()
    runner = app.test_cli_runner()
    outcome = runner.invoke(main, ["torch", "import", str(scenario), "--dry-run", "--json"])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(outcome.stdout.strip().splitlines()[-1])["units"] == export.EXPECTED_COUNTS["units"]
    refused = runner.invoke(main, ["torch", "import", str(scenario), "--source", "other"])
    assert refused.exit_code != 0
