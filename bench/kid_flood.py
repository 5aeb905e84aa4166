"""Userinfo with random ``kid``s against userinfo with the real one (docs/security.md).

A flood of tokens naming keys that do not exist must cost no more than ordinary traffic: each
such token is refused from the key cache, which reloads at most once per
``keys.UNKNOWN_KID_RELOAD_SECONDS`` (idp/oauth/keys.py). This measures both in one process
through the application's test client (no server, no network: the cost of the provider's own
code), interleaved in rounds so that the machine's load falls on both alike.

    .venv/bin/python bench/kid_flood.py                       # SQLite, in-process store
    .venv/bin/python bench/kid_flood.py \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/idp_bench \\
        --redis-url redis://127.0.0.1:6379/14

A PostgreSQL database named by the URL is created afresh (suffixed with the process id) and
dropped afterwards.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

from idp import create_app  # noqa: E402
from idp.extensions import db  # noqa: E402


def _fresh_postgres(url: str) -> str:
    base, name = url.rsplit("/", 1)
    url = f"{base}/{name}_kidflood_{os.getpid()}"
    engine = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{url.rsplit("/", 1)[1]}"'))
    engine.dispose()
    return url


def _drop_postgres(url: str) -> None:
    base, name = url.rsplit("/", 1)
    engine = create_engine(f"{base}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def _random_kid_token(token: str) -> str:
    _, payload, signature = token.split(".")
    kid = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode()
    header = base64.urlsafe_b64encode(json.dumps({"alg": "RS256", "typ": "at+jwt", "kid": kid}).encode())
    return f"{header.rstrip(b'=').decode()}.{payload}.{signature}"


def _setup(app) -> str:
    """An account, a client and one access token of theirs, signed as the token endpoint does."""
    from flask_migrate import upgrade

    from idp.accounts.service import create_account
    from idp.clients import ClientSpec, create
    from idp.oauth import server

    upgrade()
    account = create_account("natural", "kid_flood", "Passw0rd!x", name="张三", phone="13800138000")
    client, _ = create(ClientSpec(name="kid flood", redirect_uris=["https://rp.example/cb"],
                                  scopes=["openid", "profile"], trusted=True))
    db.session.commit()
    return server.access_token(client, "authorization_code", account, "openid profile")


def _time(browser, tokens: list[str], expect: int) -> list[float]:
    times = []
    for token in tokens:
        start = time.perf_counter()
        response = browser.get("/userinfo", headers={"Authorization": f"Bearer {token}"})
        times.append(time.perf_counter() - start)
        assert response.status_code == expect, (response.status_code, response.get_data(as_text=True))
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite file in a temporary directory)")
    parser.add_argument("--redis-url", default="memory://")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=250)
    args = parser.parse_args(argv)

    instance = tempfile.mkdtemp(prefix="kid-flood-")
    url = _fresh_postgres(args.database_url) if args.database_url else f"sqlite:///{instance}/bench.db"
    try:
        app = create_app({"INSTANCE_DIR": instance, "DATABASE_URL": url, "REDIS_URL": args.redis_url,
                          "REDIS_PREFIX": f"kid-flood-{os.getpid()}:", "ISSUER": "http://localhost"})
        with app.app_context():
            token = _setup(app)
            db.session.remove()
        browser = app.test_client()
        _time(browser, [token] * 50, 200)  # warm: keys loaded, caches filled
        known, flood = [], []
        for _ in range(args.rounds):
            known += _time(browser, [token] * args.per_round, 200)
            flood += _time(browser, [_random_kid_token(token) for _ in range(args.per_round)], 401)
        backend = "PostgreSQL + Redis" if args.database_url else "SQLite + in-process store"
        result = {"backend": backend, "requests_each": len(known)}
        for name, times in (("known_kid", known), ("random_kid", flood)):
            median = statistics.median(times)
            result[name] = {"median_us": round(median * 1e6, 1),
                            "p99_us": round(statistics.quantiles(times, n=100)[98] * 1e6, 1),
                            "per_second": round(1 / median)}
        result["ratio_random_to_known"] = round(result["random_kid"]["median_us"] / result["known_kid"]["median_us"], 2)
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0 if result["ratio_random_to_known"] < 2 else 1
    finally:
        if args.database_url:
            _drop_postgres(url)


if __name__ == "__main__":
    sys.exit(main())
