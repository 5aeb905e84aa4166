"""Demo accounts of both types, printed in the README (idempotent)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from flask import current_app

from idp.accounts.names import login_name_key
from idp.clients import import_declaration, load_declaration
from idp.accounts.service import create_account
from idp.login.handlers import find_account

DEMO_PASSWORD = "Demo@2026pass"  # nosec B105  # the published password of the demo accounts (README), development only

DEMO_ACCOUNTS = [
    dict(account_type="natural", login_name="demo_person", name="张三", gender="male",
         ethnicity="汉族", identity_region="mainland", document_type="resident_id",
         document_number="11010519491231002X", phone="13800138000", phone_verified=True,
         email="zhangsan@example.com", address="北京市海淀区复兴路乙15号"),
    dict(account_type="legal", login_name="demo_unit", org_name="北京示范科技有限公司",
         org_kind="enterprise", org_region="domestic", uscc="91110000600037341L",
         name="李四", phone="13900139000", phone_verified=True, email="lisi@example.com",
         legal_rep_name="王五", legal_rep_document_type="resident_id",
         legal_rep_document_number="440524188001010014", address="北京市海淀区中关村大街1号"),
]


CLIENTS_DIR = Path(__file__).resolve().parent.parent / "clients"
# The demo relying party runs as these two systems on loopback (`make demo`).
DEMO_SYSTEMS = {"gaoqi": 5001, "kexiaoqi": 5002}


def demo_base_urls() -> dict[str, str]:
    return {cid: f"http://127.0.0.1:{port}" for cid, port in DEMO_SYSTEMS.items()}


def seed_clients() -> list[str]:
    """Import every declaration under clients/; the demo systems point at loopback and their
    secrets are kept in instance/demo-clients.json (mode 0600) for the demo relying party."""
    secrets_file = Path(current_app.instance_path) / "demo-clients.json"
    known = json.loads(secrets_file.read_text()) if secrets_file.exists() else {}
    done = []
    for path in sorted(CLIENTS_DIR.glob("*.toml")):
        spec = load_declaration(path, demo_base_urls())
        client, secret = import_declaration(spec, known.get(spec.client_id))
        if secret:
            known[client.client_id] = secret
        done.append(f"client: {client.client_id} ({client.name})")
    fd = os.open(secrets_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(known, handle)
    return done


def seed() -> list[str]:
    done = seed_clients()
    for spec in DEMO_ACCOUNTS:
        spec = dict(spec)
        login_name = spec.pop("login_name")
        if find_account(login_name_key(login_name)) is not None:
            done.append(f"exists: {login_name}")
            continue
        account_type = spec.pop("account_type")
        create_account(account_type, login_name, DEMO_PASSWORD, **spec)
        done.append(f"created: {login_name} ({account_type}) password {DEMO_PASSWORD}")
    return done
