"""The legacy import at scale: generate an export of N records (units and persons, every
outcome of issue 16), seed the accounts that make outcomes (2)–(4) happen, and time
``idp torch import`` on PostgreSQL. Reports records/s, the command's peak memory (maximum
resident set size) and the database size.

    .venv/bin/python bench/legacy_import.py --records 1000000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench_legacy

The database named is dropped and created again. ``--sizes 100000,1000000`` runs several sizes
one after the other (each on a fresh database) to show that memory stays flat in the file's size.
The export is streamed to a temporary file; nothing of it is held in memory here either.

Mix (per 100 records): 40 units, 60 persons. Units: 4 held by a person (4), 3 with a legal
account here already (2), 3 with their USCC taken as a login name (3), the rest (1). Persons: 3
with an account named by their mobile (2), 3 with a verified person holding that phone (4), 3
with a taken Torch login name (3), the rest (1). Password hashes are real legacy hashes (salted SHA-256, bcrypt, PBKDF2) cycled.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIELDS = ("kind", "login_name", "password_hash", "name", "uscc", "mobile", "contact_name", "holder")
HASHES = [
    "sha256$a9f3c1$" + "3b5d" * 16,
    "$2b$10$" + "N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
    "pbkdf2_sha256$260000$Q8mVx3kLp0Zt$" + "b" * 42 + "A=",
]


def uscc(n: int) -> str:
    from idp.security.identifiers import uscc_check_char

    first17 = f"91{110000 + n % 500000:06d}{n:09d}"
    return first17 + uscc_check_char(first17)


def mobile(n: int) -> str:
    return f"1{3 + n % 7}{n:09d}"


def kind_of(i: int) -> str:
    return "unit" if i % 10 < 4 else "person"


def generate(path: Path, records: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(FIELDS)
        for i in range(records):
            h = HASHES[i % len(HASHES)]
            if kind_of(i) == "unit":
                code = uscc(i)
                holder = "person" if i % 100 < 4 else "unit"
                writer.writerow(("unit", code, h, f"示例科技有限公司{i}", code, mobile(i), "王五", holder))
            else:
                writer.writerow(("person", f"torch_{i}", h, "赵六", "", mobile(i), "", ""))


def seeds(records: int):
    """The accounts here before the import: (login name, type, uscc, phone, verified)."""
    for i in range(records):
        bucket = i % 100
        if bucket in (20, 21, 22):  # unit (2): a legal account with the USCC
            yield (f"here_unit_{i}", "legal", uscc(i), None, False)
        elif bucket in (30, 31, 32):  # unit (3): the USCC taken as a login name
            yield (uscc(i), "natural", None, None, False)
        elif bucket in (64, 65, 66):  # person (2): an account named by the mobile
            yield (mobile(i), "natural", None, None, False)
        elif bucket in (74, 75, 76):  # person (4): a verified person has the phone
            yield (f"verified_{i}", "natural", None, mobile(i), True)
        elif bucket in (84, 85, 86):  # person (3): the Torch login name is taken
            yield (f"torch_{i}", "natural", None, None, False)


def seed(app, records: int) -> int:
    import sqlalchemy as sa

    from idp.extensions import db, services
    from idp.models.accounts import Account

    keyring = services().keyring
    now = services().clock.now()
    batch, total = [], 0
    for login_name, account_type, code, phone, verified in seeds(records):
        batch.append({
            "account_type": account_type, "login_name": login_name, "login_name_key": login_name.casefold(),
            "password_hash": HASHES[0], "status": "active", "uscc": code,
            "org_name": "已注册单位" if code else None, "name": "钱七", "phone": phone,
            "phone_index": keyring.index(phone, "phone") if phone else None,
            "verification_status": "verified_auto" if verified else "unverified",
            "phone_verified": bool(phone),  # a registered account proved its phone by SMS code
            "created_at": now, "updated_at": now,
        })
        if len(batch) == 5000:
            db.session.execute(sa.insert(Account), batch)
            total += len(batch)
            batch = []
    if batch:
        db.session.execute(sa.insert(Account), batch)
        total += len(batch)
    db.session.commit()
    return total


class _ServerCpu(threading.Thread):
    """CPU seconds of the PostgreSQL backend serving the import (read from /proc while it lives):
    on a shared machine, wall-clock time says as much about the neighbours as about the import."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.done, self.seconds = url, False, 0.0

    def run(self) -> None:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url)
        tick = os.sysconf("SC_CLK_TCK")
        seen: dict[int, float] = {}  # backend pid → its CPU seconds when last read
        with engine.connect() as conn:
            while not self.done:
                pids = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE application_name = "
                                         "'bench_legacy_import'")).scalars().all()
                conn.rollback()
                for pid in pids:
                    try:
                        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    seen[pid] = (int(fields[11]) + int(fields[12])) / tick
                self.seconds = sum(seen.values())
                time.sleep(0.2)
        engine.dispose()


def fresh_database(url: str) -> None:
    from sqlalchemy import create_engine, text

    base, name = url.rsplit("/", 1)
    engine = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def run_size(records: int, url: str, instance: Path, batch: int, workdir: Path) -> dict:
    from flask_migrate import upgrade

    from idp import create_app
    from idp.extensions import db

    fresh_database(url)
    overrides = {"DATABASE_URL": url, "INSTANCE_DIR": str(instance), "REDIS_URL": "memory://"}
    app = create_app(overrides)
    with app.app_context():
        upgrade()
        started = time.perf_counter()
        seeded = seed(app, records)
        seed_seconds = time.perf_counter() - started
        db.engine.dispose()

    export = workdir / f"torch_{records}.csv"
    started = time.perf_counter()
    generate(export, records)
    generate_seconds = time.perf_counter() - started

    env = {**os.environ, "IDP_DATABASE_URL": url, "IDP_INSTANCE_DIR": str(instance), "IDP_REDIS_URL": "memory://",
           "IDP_LEGACY_IMPORT_BATCH": str(batch)}
    command = [str(Path(sys.executable).parent / "idp"), "torch", "import", str(export), "--json"]
    env["IDP_DATABASE_URL"] = url + "?application_name=bench_legacy_import"
    started = time.perf_counter()
    load_before = os.getloadavg()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server_cpu = _ServerCpu(url)
    server_cpu.start()
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    server_cpu.done = True
    server_cpu.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # the only child waited for so far
    env["IDP_DATABASE_URL"] = url
    if process.returncode != 0:
        raise SystemExit(f"import failed ({process.returncode})")
    result = json.loads(out.decode().strip().splitlines()[-1])

    # A second run of the same file: everything unchanged.
    started = time.perf_counter()
    again = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    second_seconds = time.perf_counter() - started
    second = json.loads(again.stdout.strip().splitlines()[-1])

    app = create_app(overrides)
    with app.app_context():
        from sqlalchemy import text

        size = db.session.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
        tables = {name: db.session.execute(text(f"SELECT pg_total_relation_size('{name}')")).scalar_one()
                  for name in ("accounts", "legacy_import_records", "legacy_import_skips", "audit_events")}
        db.engine.dispose()
    decided = sum(result["units"].values()) + sum(result["persons"].values())
    return {
        "records": records, "seeded_accounts": seeded, "seed_seconds": round(seed_seconds, 1),
        "file_bytes": export.stat().st_size, "generate_seconds": round(generate_seconds, 1),
        "import_seconds": round(seconds, 1), "records_per_second": round(records / seconds),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "importer_cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "server_cpu_seconds": round(server_cpu.seconds, 1),
        "records_per_cpu_second": round(records / (usage.ru_utime + usage.ru_stime + server_cpu.seconds)),
        "load_average_before": load_before,
        "second_run_seconds": round(second_seconds, 1), "second_run_unchanged": second["unchanged"],
        "database_bytes": size, "database_mib": round(size / 2**20, 1),
        "table_mib": {k: round(v / 2**20, 1) for k, v in tables.items()},
        "outcomes": {"units": result["units"], "persons": result["persons"]},
        "decided": decided, "skipped": len(result["skipped"]),
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--sizes", help="comma-separated sizes, each on a fresh database (overrides --records)")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_legacy")
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else [args.records]
    with tempfile.TemporaryDirectory(prefix="bench-legacy-") as tmp:
        workdir = Path(tmp)
        instance = workdir / "instance"
        instance.mkdir()
        for records in sizes:
            # Each size in its own process, so that the children's peak memory is this size's.
            if len(sizes) > 1:
                subprocess.run([sys.executable, __file__, "--records", str(records), "--database-url",
                                args.database_url, "--batch", str(args.batch)] + (["--json"] if args.json else []),
                               check=True)
                continue
            report = run_size(records, args.database_url, instance, args.batch, workdir)
            if args.json:
                print(json.dumps(report, ensure_ascii=False))
            else:
                print(f"{report['records']:>9,} records: {report['records_per_second']:,} records/s "
                      f"({report['import_seconds']} s), peak RSS {report['peak_rss_mib']} MiB, "
                      f"database {report['database_mib']} MiB, second run {report['second_run_seconds']} s "
                      f"(unchanged {report['second_run_unchanged']:,}), load {report['load_average'][0]:.1f}, "
                      f"{report['records_per_cpu_second']:,} records per CPU second (importer + server)")
                print(json.dumps(report, ensure_ascii=False))


if __name__ == "__main__":
    main()
