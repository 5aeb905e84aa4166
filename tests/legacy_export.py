"""Writing legacy exports (INTERFACES.md "Legacy export format") for the tests and bench/.

``scenario(password)`` is the accounts already here and the export that, imported on top of
them, meets every rule and every conflict of issue 16 for both kinds; ``EXPECTED`` names each
record's outcome and resulting login name.
"""

from __future__ import annotations

import csv
import io
import json

from idp.security.identifiers import uscc_check_char

FIELDS = ("kind", "login_name", "password_hash", "name", "uscc", "mobile", "contact_name", "holder")


def uscc(n: int, region: str = "350100") -> str:
    """A valid USCC (GB 32100) numbered ``n``."""
    first17 = f"91{region}{n:09d}"
    return first17 + uscc_check_char(first17)


def mobile(n: int) -> str:
    return f"139{n:08d}"


def unit(code: str, password_hash: str, holder: str = "unit", name: str = "示例科技有限公司",
         contact: str = "王五", phone: str | None = "13700137000") -> dict:
    return {"kind": "unit", "login_name": code, "password_hash": password_hash, "name": name, "uscc": code,
            "mobile": phone or "", "contact_name": contact, "holder": holder}


def person(login_name: str, phone: str, password_hash: str, name: str = "赵六") -> dict:
    return {"kind": "person", "login_name": login_name, "password_hash": password_hash, "name": name,
            "uscc": "", "mobile": phone, "contact_name": "", "holder": ""}


def to_csv(rows, bom: bool = False) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in FIELDS})
    return (b"\xef\xbb\xbf" if bom else b"") + out.getvalue().encode("utf-8")


def to_jsonl(rows) -> bytes:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


# Keys of the scenario.
U1, U2, U3, U4, U4_TAKEN, U_CHAIN = (uscc(n) for n in (1, 2, 3, 4, 5, 6))
M1, M2, M3, M4, M_CHAIN = (mobile(n) for n in (1, 2, 3, 4, 5))


def existing_accounts(make_account, password: str):
    """The accounts here before the import: each one makes one rule apply."""
    from idp.extensions import db
    from idp.models.accounts import VERIFIED_AUTO

    make_account("legal", login_name="unit_two_here", password=password, uscc=U2)  # unit (2)
    make_account("natural", login_name=U3, password=password)  # unit (3): the USCC is taken
    make_account("natural", login_name=U4_TAKEN, password=password)  # unit (4) with "HJ-" + USCC
    make_account("natural", login_name=M2, password=password)  # person (2)
    verified = make_account("natural", login_name="verified_zhao", password=password, phone=M4,
                            phone_verified=True)  # person (4): a verified person whose phone was proven
    verified.verification_status = VERIFIED_AUTO
    make_account("natural", login_name="torch_taken", password=password)  # person (3)
    db.session.commit()


def scenario_rows(hashes: dict) -> list[dict]:
    h = list(hashes.values())
    return [
        unit(U1, h[0]),                          # line 2: unit (1)
        unit(U2, h[1]),                          # line 3: unit (2)
        unit(U3, h[2]),                          # line 4: unit (3) → HJ_U3
        unit(U4, h[3], holder="person"),         # line 5: unit (4) → natural U4
        unit(U4_TAKEN, h[4], holder="person"),   # line 6: unit (4) → natural HJ-U4_TAKEN
        person("torch_wang", M1, h[0]),          # line 7: person (1)
        person("torch_m2", M2, h[1]),            # line 8: person (2)
        person("torch_taken", M3, h[2]),         # line 9: person (3) → HJ-M3
        person("torch_m4", M4, h[3]),            # line 10: person (4)
        unit(U_CHAIN, h[4], holder="unit"),      # line 11: unit (1)
        person(U_CHAIN, M_CHAIN, h[0]),          # line 12: person (3): line 11 took the name
    ]


EXPECTED = {  # (kind, key) → (outcome, login name of the account, its type)
    ("unit", U1): (1, U1, "legal"),
    ("unit", U2): (2, "unit_two_here", "legal"),
    ("unit", U3): (3, "HJ_" + U3, "legal"),
    ("unit", U4): (4, U4, "natural"),
    ("unit", U4_TAKEN): (4, "HJ-" + U4_TAKEN, "natural"),
    ("person", M1): (1, "torch_wang", "natural"),
    ("person", M2): (2, M2, "natural"),
    ("person", M3): (3, "HJ-" + M3, "natural"),
    ("person", M4): (4, None, None),
    ("unit", U_CHAIN): (1, U_CHAIN, "legal"),
    ("person", M_CHAIN): (3, "HJ-" + M_CHAIN, "natural"),
}
EXPECTED_COUNTS = {"units": {"1": 2, "2": 1, "3": 1, "4": 2}, "persons": {"1": 1, "2": 1, "3": 2, "4": 1}}
