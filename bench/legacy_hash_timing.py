"""How long a password check takes for an argon2id account, an unknown login name and each
legacy hash format (docs/legacy-accounts.md reports the figures).

Two measurements, each in interleaved rounds so that drift in the machine's speed touches every
case alike:

- ``PasswordHashing.verify`` alone, with the right and a wrong password;
- the whole ``POST /login`` with a wrong password through Flask's test client (SQLite file,
  in-process store, captcha off, throttles raised): what an attacker timing sign-ins sees.

The argon2id parameters are the configured defaults (idp/settings.py) unless ``--cheap`` asks
for the tests' parameters. Every case is stored at once, as in a database that holds all these
formats: the dearest one sets the floor every check waits for (docs/legacy-accounts.md,
"Timing"). ``--only bcrypt,sha256`` keeps the legacy cases whose names contain one of the words
(argon2id and the unknown name are always measured), to see the floor a smaller mix sets.
Usage:

    .venv/bin/python bench/legacy_hash_timing.py [--rounds 40] [--cheap] [--no-http] [--json] [--only …]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import bcrypt
from argon2.low_level import Type, hash_secret

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from idp.settings import load_settings  # noqa: E402

PASSWORD = "Torch2019!密码"
WRONG = "Wr0ng!pass"
CHEAP = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_KIB": 1024, "ARGON2_PARALLELISM": 1}


def legacy_cases(password: str, only: list[str] | None = None) -> dict[str, str]:
    """Stored hashes as the legacy systems write them, at their usual work factors."""

    def django(iterations: int) -> str:
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), b"Q8mVx3kLp0Zt", iterations)
        return f"pbkdf2_sha256${iterations}$Q8mVx3kLp0Zt${base64.b64encode(digest).decode()}"

    def argon2(variant: Type, memory: int, passes: int, lanes: int) -> str:
        return hash_secret(password.encode(), b"torchsalt123", time_cost=passes, memory_cost=memory,
                           parallelism=lanes, hash_len=32, type=variant).decode()

    cases = {
        "sha256 (salted)": "sha256$a9f3c1$"
        + hashlib.sha256(("a9f3c1" + password).encode()).hexdigest(),
        "pbkdf2_sha256 10,000 (Django 1.4)": django(10_000),
        "pbkdf2_sha256 260,000 (Django 3.2)": django(260_000),
        "pbkdf2_sha256 600,000 (Django 4.2)": django(600_000),
        "pbkdf2_sha256 1,200,000 (cap)": django(1_200_000),
        "bcrypt cost 4": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode(),
        "bcrypt cost 8": bcrypt.hashpw(password.encode(), bcrypt.gensalt(8)).decode(),
        "bcrypt cost 10 (PHP default)": bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode(),
        "bcrypt cost 12 (cap)": bcrypt.hashpw(password.encode(), bcrypt.gensalt(12)).decode(),
        "argon2i m=4096,t=3,p=1": argon2(Type.I, 4096, 3, 1),
        "argon2id m=65536,t=3,p=4 (argon2-cffi default)": argon2(Type.ID, 65536, 3, 4),
    }
    return {name: stored for name, stored in cases.items() if not only or any(word in name for word in only)}


def summary(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_us": round(statistics.median(ordered) * 1e6),
        "p90_us": round(ordered[int(0.9 * (len(ordered) - 1))] * 1e6),
    }


def time_verify(params: dict, rounds: int, only: list[str] | None) -> dict[str, dict]:
    from idp.security.passwords import PasswordHashing, hash_params

    hashing = PasswordHashing(
        params["ARGON2_TIME_COST"], params["ARGON2_MEMORY_KIB"], params["ARGON2_PARALLELISM"]
    )
    cases = {"argon2id (current parameters)": hashing.hash(PASSWORD),
             "unknown login name (dummy)": None, **legacy_cases(PASSWORD, only)}
    stored_params = {hash_params(stored) for stored in cases.values()} - {None}
    hashing.watch_stored(lambda: stored_params, refresh_seconds=3600)  # as the accounts table would tell
    timings: dict[str, list[float]] = {f"{name} | {which}": [] for name in cases
                                       for which in ("right", "wrong")}
    for _ in range(3):  # warm up: padding dummies, caches
        for stored in cases.values():
            hashing.verify(stored, WRONG)
    for _ in range(rounds):
        for name, stored in cases.items():
            for which, password in (("right", PASSWORD), ("wrong", WRONG)):
                started = time.perf_counter()
                hashing.verify(stored, password)
                timings[f"{name} | {which}"].append(time.perf_counter() - started)
    return {name: summary(seconds) for name, seconds in timings.items()}


def time_login(params: dict, rounds: int, only: list[str] | None) -> dict[str, dict]:
    """The whole POST /login with a wrong password, per kind of stored hash."""
    from flask_migrate import upgrade

    from idp import create_app
    from idp.accounts.service import create_account
    from idp.extensions import db

    instance = Path(tempfile.mkdtemp(prefix="legacy-timing-"))
    app = create_app({
        "INSTANCE_DIR": str(instance), "DATABASE_URL": f"sqlite:///{instance / 'bench.db'}",
        "REDIS_URL": "memory://", "CAPTCHA": "off", "ISSUER": "http://localhost",
        "LOGIN_MAX_FAILURES": 10**9, "LOGIN_MAX_FAILURES_PER_ADDRESS": 10**9, **params,
    })
    app.config["TESTING"] = True
    cases = {"argon2id (current parameters)": None, "unknown login name (dummy)": None,
             **legacy_cases(PASSWORD, only)}
    names: dict[str, str] = {}
    with app.app_context():
        upgrade()
        for number, (case, stored) in enumerate(cases.items()):
            if case.startswith("unknown"):
                names[case] = "nobody_here"
                continue
            login_name = f"torch_user_{number}"
            account = create_account("natural", login_name, PASSWORD, name="张三",
                                     phone=f"138001380{number:02d}")
            if stored is not None:
                account.password_hash = stored
            db.session.commit()
            names[case] = login_name
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = page.split('name="csrf_token"')[1].split('value="')[1].split('"')[0]

    def post(login_name: str) -> int:
        return client.post("/login", data={
            "csrf_token": token, "account_type": "natural", "login_name": login_name,
            "password": WRONG,
        }).status_code

    for _ in range(3):
        for login_name in names.values():
            assert post(login_name) == 401
    timings: dict[str, list[float]] = {case: [] for case in names}
    for _ in range(rounds):
        for case, login_name in names.items():
            started = time.perf_counter()
            post(login_name)
            timings[case].append(time.perf_counter() - started)
    return {case: summary(seconds) for case, seconds in timings.items()}


def table(title: str, results: dict[str, dict]) -> str:
    lines = [f"\n{title}", f"{'case':<62} {'median µs':>10} {'p90 µs':>10}"]
    lines += [f"{name:<62} {r['median_us']:>10} {r['p90_us']:>10}" for name, r in results.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--cheap", action="store_true", help="the tests' argon2id parameters")
    parser.add_argument("--no-http", action="store_true", help="time verify() only")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", help="comma-separated words: the legacy cases to store and measure")
    args = parser.parse_args()
    only = args.only.split(",") if args.only else None
    defaults = load_settings({"INSTANCE_DIR": tempfile.mkdtemp(prefix="legacy-timing-")})
    params = CHEAP if args.cheap else {key: defaults[key] for key in CHEAP}
    results = {"argon2": params, "verify": time_verify(params, args.rounds, only)}
    if not args.no_http:
        results["login_post"] = time_login(params, args.rounds, only)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=1))
        return
    print(f"argon2id: {params}, {args.rounds} rounds")
    print(table("PasswordHashing.verify", results["verify"]))
    if "login_post" in results:
        print(table("POST /login, wrong password", results["login_post"]))


if __name__ == "__main__":
    main()
