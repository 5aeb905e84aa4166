"""The ``idp`` console script, run for real as a subprocess.

Machine-readable output is one JSON line, the last line of stdout; logs go to stderr. Every
command reads the same configuration (environment > IDP_CONFIG file > default), so a command
run with the same environment acts on the same database and instance directory.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from idp.models.accounts import PERSONAL_FIELDS

IDP = str(Path(sys.executable).with_name("idp"))
if not Path(IDP).exists():  # pragma: no cover - the project's virtualenv
    IDP = "/work/main/.venv/bin/idp"
PASSWORD = "Passw0rd!x"


def base_env(instance: Path, database: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_") and k != "PORT"}
    env.update(
        IDP_INSTANCE_DIR=str(instance),
        IDP_DATABASE_URL=f"sqlite:///{database}",
        IDP_ARGON2_MEMORY_KIB="1024",
        IDP_ARGON2_TIME_COST="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def run(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([IDP, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, (args, result.returncode, result.stdout, result.stderr)
    return result


def last_json(result: subprocess.CompletedProcess):
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, (result.stdout, result.stderr)
    return json.loads(lines[-1])


def rows(database: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(database) as conn:
        return conn.execute(sql, params).fetchall()


def logins(database: Path) -> list[str]:
    return sorted(r[0] for r in rows(database, "SELECT login_name FROM accounts"))


@pytest.fixture(scope="module")
def template_db(tmp_path_factory) -> Path:
    """One migrated database, copied for each test (``idp db upgrade`` costs a process start)."""
    root = tmp_path_factory.mktemp("cli-template")
    database = root / "template.db"
    run(base_env(root / "instance", database), "db", "upgrade")
    return database


@pytest.fixture
def cli(tmp_path, template_db):
    instance = tmp_path / "instance"
    database = tmp_path / "cli.db"
    shutil.copy(template_db, database)
    env = base_env(instance, database)

    class Cli:
        pass

    c = Cli()
    c.instance, c.database, c.env = instance, database, env
    c.run = lambda *args, check=True, env=None: run(env or c.env, *args, check=check)
    return c


def in_process(instance: Path, database: Path):
    """The provider as the server would build it, on the same instance directory."""
    from idp import create_app

    return create_app({"INSTANCE_DIR": str(instance), "DATABASE_URL": f"sqlite:///{database}",
                       "ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024})


def read_account(instance: Path, database: Path, login_name: str) -> dict:
    from idp.extensions import db
    from idp.models.accounts import Account

    app = in_process(instance, database)
    with app.app_context():
        account = db.session.execute(db.select(Account).filter_by(login_name=login_name)).scalar_one()
        data = {field: getattr(account, field) for field in PERSONAL_FIELDS}
        data.update(sub=account.sub, account_type=account.account_type, name=account.name,
                    uscc=account.uscc, org_name=account.org_name, password_hash=account.password_hash)
        db.session.remove()
        db.engine.dispose()
    return data


# --- db upgrade --------------------------------------------------------------------------------


def test_db_upgrade_creates_the_schema_and_can_run_again(tmp_path):
    database = tmp_path / "fresh.db"
    env = base_env(tmp_path / "instance", database)
    run(env, "db", "upgrade")
    tables = {r[0] for r in rows(database, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"accounts", "audit_events", "review_cases", "alembic_version"} <= tables
    run(env, "db", "upgrade")  # already at head: nothing to do, still success
    assert rows(database, "SELECT count(*) FROM accounts") == [(0,)]


# --- users create ------------------------------------------------------------------------------


def test_users_create_prints_the_account_as_json_on_the_last_line_of_stdout(cli):
    result = cli.run("users", "create", "--type", "natural", "--login", "cli_user", "--password", PASSWORD,
                     "--name", "张三", "--phone", "13800138000", "--email", "e@x.cn")
    data = last_json(result)
    assert set(data) >= {"sub", "login_name", "account_type"}
    assert data["login_name"] == "cli_user"
    assert data["account_type"] == "natural"
    assert len(data["sub"]) == 36
    assert "cli_user" in result.stderr  # the log line went to stderr

    assert rows(cli.database, "SELECT sub, account_type, status FROM accounts") == [
        (data["sub"], "natural", "active")]
    raw_phone, raw_email = rows(cli.database, "SELECT phone, email FROM accounts")[0]
    assert raw_phone.startswith("v1.") and "13800138000" not in raw_phone
    assert raw_email.startswith("v1.") and "e@x.cn" not in raw_email

    account = read_account(cli.instance, cli.database, "cli_user")
    assert account["phone"] == "13800138000"
    assert account["email"] == "e@x.cn"
    assert account["name"] == "张三"
    assert account["password_hash"].startswith("$argon2id$")


def test_users_create_for_a_unit(cli):
    result = cli.run("users", "create", "--type", "legal", "--login", "cli_unit", "--password", PASSWORD,
                     "--name", "联系人", "--phone", "+86 139 0013 9000", "--uscc", "91110000600037341L",
                     "--org-name", "北京示范科技有限公司")
    data = last_json(result)
    assert data["login_name"] == "cli_unit"
    assert data["account_type"] == "legal"
    account = read_account(cli.instance, cli.database, "cli_unit")
    assert account["uscc"] == "91110000600037341L"
    assert account["org_name"] == "北京示范科技有限公司"
    assert account["name"] == "联系人"
    assert account["phone"] == "13900139000"


@pytest.mark.parametrize("password, reason", [
    ("short1!", "password_too_short"),
    ("alllowercase1", "password_too_simple"),
    ("Weak_Login1", "password_equals_login_name"),
])
def test_users_create_with_a_weak_password_fails_with_a_clear_message(cli, password, reason):
    result = cli.run("users", "create", "--type", "natural", "--login", "weak_login1", "--password", password,
                     check=False)
    assert result.returncode != 0
    assert "password" in result.stderr
    assert reason in result.stderr
    assert "Traceback" not in result.stderr
    assert logins(cli.database) == []


@pytest.mark.parametrize("uscc", ["91110000600037341X", "91350100M000100Y4Z", "NOT-A-USCC"])
def test_users_create_with_a_bad_uscc_fails_with_a_clear_message(cli, uscc):
    result = cli.run("users", "create", "--type", "legal", "--login", "bad_unit", "--password", PASSWORD,
                     "--uscc", uscc, "--org-name", "某单位", check=False)
    assert result.returncode != 0
    assert "--uscc" in result.stderr
    assert "Traceback" not in result.stderr
    assert logins(cli.database) == []


def test_users_create_with_a_bad_phone_fails_with_a_clear_message(cli):
    result = cli.run("users", "create", "--type", "natural", "--login", "bad_phone", "--password", PASSWORD,
                     "--phone", "12800138000", check=False)
    assert result.returncode != 0
    assert "--phone" in result.stderr
    assert logins(cli.database) == []


def test_users_create_refuses_a_login_name_taken_in_any_case(cli):
    cli.run("users", "create", "--type", "natural", "--login", "Taken_Name", "--password", PASSWORD)
    result = cli.run("users", "create", "--type", "legal", "--login", "taken_name", "--password", PASSWORD,
                     check=False)
    assert result.returncode != 0
    assert "login_name_taken" in result.stderr
    assert logins(cli.database) == ["Taken_Name"]


def test_users_create_refuses_a_uscc_already_registered(cli):
    cli.run("users", "create", "--type", "legal", "--login", "unit_one", "--password", PASSWORD,
            "--uscc", "91110000600037341L", "--org-name", "一号单位")
    result = cli.run("users", "create", "--type", "legal", "--login", "unit_two", "--password", PASSWORD,
                     "--uscc", "91110000600037341l", "--org-name", "二号单位", check=False)
    assert result.returncode != 0
    assert "uscc_taken" in result.stderr
    assert logins(cli.database) == ["unit_one"]


# --- demo seed ---------------------------------------------------------------------------------


def test_demo_seed_is_idempotent(cli):
    first = cli.run("demo", "seed")
    last_json(first)  # machine-readable summary on the last line
    accounts = rows(cli.database, "SELECT login_name, sub, account_type FROM accounts ORDER BY login_name")
    assert [(name, kind) for name, _, kind in accounts] == [("demo_person", "natural"), ("demo_unit", "legal")]

    second = cli.run("demo", "seed")
    assert second.returncode == 0
    last_json(second)
    assert rows(cli.database, "SELECT login_name, sub, account_type FROM accounts ORDER BY login_name") == accounts
    assert rows(cli.database, "SELECT count(*) FROM audit_events WHERE event = 'account_registered'") == [(2,)]


# --- pii rotate-key ----------------------------------------------------------------------------


def encrypted_values(database: Path) -> list[str]:
    columns = ", ".join(PERSONAL_FIELDS)
    values = []
    for row in rows(database, f"SELECT {columns} FROM accounts"):
        values.extend(v for v in row if v is not None)
    return values


def keyring(instance: Path) -> dict:
    return json.loads((instance / "pii-keyring.json").read_text())


def test_pii_rotate_key_re_encrypts_every_personal_field_with_the_new_key(cli):
    cli.run("demo", "seed")
    cli.run("users", "create", "--type", "natural", "--login", "third_user", "--password", PASSWORD,
            "--phone", "+85291234567", "--email", "third@example.hk")
    before = encrypted_values(cli.database)
    assert before and all(v.startswith("v1.k1.") for v in before)
    assert set(keyring(cli.instance)["keys"]) == {"k1"}

    result = cli.run("pii", "rotate-key")
    data = last_json(result)
    assert data["active"] == "k2"
    assert data["rows"] == 3
    assert data["retired"] == []

    after = encrypted_values(cli.database)
    assert len(after) == len(before)
    assert all(v.startswith("v1.k2.") for v in after), after
    ring = keyring(cli.instance)
    assert ring["active"] == "k2"
    assert set(ring["keys"]) == {"k1", "k2"}  # old key kept until retired

    person = read_account(cli.instance, cli.database, "demo_person")
    assert person["phone"] == "13800138000"
    assert person["document_number"] == "11010519491231002X"
    assert person["birth_date"] == "1949-12-31"
    assert person["address"] == "北京市海淀区复兴路乙15号"
    unit = read_account(cli.instance, cli.database, "demo_unit")
    assert unit["legal_rep_document_number"] == "440524188001010014"
    assert read_account(cli.instance, cli.database, "third_user")["phone"] == "+85291234567"


def test_pii_rotate_key_with_retire_old_drops_the_old_key_from_the_keyring(cli):
    cli.run("demo", "seed")
    index_key = keyring(cli.instance)["index_key"]
    phone_index = rows(cli.database, "SELECT phone_index FROM accounts WHERE login_name = 'demo_person'")

    data = last_json(cli.run("pii", "rotate-key", "--retire-old"))
    assert data["active"] == "k2"
    assert data["retired"] == ["k1"]
    ring = keyring(cli.instance)
    assert set(ring["keys"]) == {"k2"}
    assert ring["active"] == "k2"
    assert ring["index_key"] == index_key  # look-ups keep working without recomputation
    assert rows(cli.database, "SELECT phone_index FROM accounts WHERE login_name = 'demo_person'") == phone_index
    assert all(v.startswith("v1.k2.") for v in encrypted_values(cli.database))
    assert read_account(cli.instance, cli.database, "demo_person")["phone"] == "13800138000"

    # and again: k3 replaces k2, everything still readable
    data = last_json(cli.run("pii", "rotate-key", "--retire-old"))
    assert (data["active"], data["retired"]) == ("k3", ["k2"])
    assert all(v.startswith("v1.k3.") for v in encrypted_values(cli.database))
    assert read_account(cli.instance, cli.database, "demo_unit")["legal_rep_document_number"] == "440524188001010014"


def test_pii_rotate_key_retire_old_refuses_while_a_value_still_names_an_old_key(cli):
    cli.run("demo", "seed")
    # A value that no longer decrypts (copied into another column, whose name is bound to the
    # ciphertext) cannot be re-encrypted; retiring its key would lose it for good.
    with sqlite3.connect(cli.database) as conn:
        conn.execute("UPDATE accounts SET landline = phone WHERE login_name = 'demo_person'")

    result = cli.run("pii", "rotate-key", "--retire-old", check=False)
    assert result.returncode != 0
    assert "old keys not retired" in result.stderr
    assert "accounts.landline: 1" in result.stderr
    assert "Traceback" not in result.stderr
    ring = keyring(cli.instance)
    assert ring["active"] == "k2"
    assert set(ring["keys"]) == {"k1", "k2"}  # the rotation happened, the retirement did not
    [(landline,)] = rows(cli.database, "SELECT landline FROM accounts WHERE login_name = 'demo_person'")
    assert landline.startswith("v1.k1.")
    others = [v for v in encrypted_values(cli.database) if v != landline]
    assert others and all(v.startswith("v1.k2.") for v in others)
    assert rows(cli.database, "SELECT outcome FROM audit_events WHERE event = 'pii_key_rotated'") == [("refused",)]


def test_users_created_after_a_rotation_are_encrypted_with_the_new_key(cli):
    cli.run("pii", "rotate-key")
    cli.run("users", "create", "--type", "natural", "--login", "late_user", "--password", PASSWORD,
            "--phone", "13800138000")
    [(raw,)] = rows(cli.database, "SELECT phone FROM accounts WHERE login_name = 'late_user'")
    assert raw.startswith("v1.k2.")


# --- one configuration for every command -------------------------------------------------------


def test_a_command_acts_on_the_database_named_by_the_environment(cli, tmp_path, template_db):
    other = tmp_path / "other.db"
    shutil.copy(template_db, other)
    cli.run("demo", "seed")
    other_env = {**cli.env, "IDP_DATABASE_URL": f"sqlite:///{other}"}

    cli.run("users", "create", "--type", "natural", "--login", "other_user", "--password", PASSWORD,
            "--phone", "13700137000", env=other_env)
    assert logins(other) == ["other_user"]
    assert logins(cli.database) == ["demo_person", "demo_unit"]

    data = last_json(cli.run("pii", "rotate-key", env=other_env))
    assert data["rows"] == 1
    assert all(v.startswith("v1.k2.") for v in encrypted_values(other))


def test_db_upgrade_acts_on_the_database_named_by_the_environment(cli, tmp_path):
    other = tmp_path / "upgraded-elsewhere.db"
    cli.run("db", "upgrade", env={**cli.env, "IDP_DATABASE_URL": f"sqlite:///{other}"})
    assert other.exists()
    assert rows(other, "SELECT count(*) FROM accounts") == [(0,)]


def test_commands_read_the_config_file_named_by_idp_config(cli, tmp_path, template_db):
    from_file = tmp_path / "from-file.db"
    shutil.copy(template_db, from_file)
    config = tmp_path / "idp.toml"
    config.write_text(f'database_url = "sqlite:///{from_file}"\nargon2_memory_kib = 1024\n')
    env = {k: v for k, v in cli.env.items() if k != "IDP_DATABASE_URL"}
    env["IDP_CONFIG"] = str(config)
    cli.run("users", "create", "--type", "natural", "--login", "file_user", "--password", PASSWORD, env=env)
    assert logins(from_file) == ["file_user"]
    assert logins(cli.database) == []

    # The environment still wins over the file.
    env["IDP_DATABASE_URL"] = f"sqlite:///{cli.database}"
    cli.run("users", "create", "--type", "natural", "--login", "env_user", "--password", PASSWORD, env=env)
    assert logins(cli.database) == ["env_user"]
    assert logins(from_file) == ["file_user"]
