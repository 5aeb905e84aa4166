"""Demo accounts of both types, printed in the README (idempotent)."""

from __future__ import annotations

from idp.accounts.names import login_name_key
from idp.accounts.service import create_account
from idp.login.handlers import find_account

DEMO_PASSWORD = "Demo@2026pass"

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


def seed() -> list[str]:
    done = []
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
