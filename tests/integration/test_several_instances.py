"""Several instances (issue 18, item 2): two `idp serve` on different ports sharing one
PostgreSQL and one Redis, behind Debian's nginx as a round-robin proxy with the configuration of
docs/deploy.md; and the store following a Redis Sentinel failover. Every service is the test's
own (a throwaway PostgreSQL cluster, redis-server, redis-server --sentinel, nginx).

Marker ``multi_instance``: some tens of seconds of several processes; `.ci/run` runs it once.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from pathlib import Path

import jwt
import pytest
import redis

from tests.throwaway import (Nginx, PostgresCluster, Provider, RedisServer, Sentinel, Visitor, csrf_of, exchange,
                             free_port, idp, nginx_site, provider_env, reason_of, setup_provider, userinfo,
                             wait_for)

pytestmark = pytest.mark.multi_instance

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
# The per-process signing-key cache (idp/oauth/keys.py, _CACHE_SECONDS): the longest an instance
# serves the key set it read before another rotated the keys; plus room for a slow machine.
KEY_BOUND_SECONDS = 30 + 10


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """PostgreSQL, Redis, two providers and nginx in front of them, for the whole module."""
    postgres = PostgresCluster()
    store = RedisServer()
    started = []
    try:
        url = postgres.create_database(f"several_{uuid.uuid4().hex[:8]}")
        root = tmp_path_factory.mktemp("several")
        proxy_port = free_port()
        shared = dict(IDP_ISSUER=f"http://127.0.0.1:{proxy_port}", IDP_SECRET_KEY=secrets.token_urlsafe(48),
                      IDP_PII_KEYRING=str(root / "pii-keyring.json"), IDP_TRUSTED_PROXIES=1,
                      IDP_LOG_FORMAT="json", IDP_SMS_RESEND_SECONDS=1, IDP_SMS_MAX_PER_PHONE_PER_DAY=2)
        envs = [provider_env(root / f"instance-{n}", url, store.url + "/0", **shared) for n in ("a", "b")]
        client = setup_provider(envs[0])
        idp(envs[0], "users", "create", "--type", "natural", "--login", "wang_wu", "--password", "Passw0rd!x",
            "--name", "王五", "--phone", "13700137000")
        providers = [Provider(env) for env in envs]
        started += providers
        proxy = Nginx([p.port for p in providers], port=proxy_port)
        started.append(proxy)
        yield {"providers": providers, "proxy": proxy, "client": client, "envs": envs}
    finally:
        for service in reversed(started):
            service.close()
        store.close()
        postgres.close()


def _upstream(provider: Provider) -> str:
    return f"127.0.0.1:{provider.port}"


def test_a_login_started_on_one_instance_finishes_on_the_other(cluster):
    a, b = cluster["providers"]
    proxy, client = cluster["proxy"], cluster["client"]
    visitor = Visitor(proxy.base)
    page = visitor.login_page()
    posted = visitor.post_login(page.text)
    assert posted.status_code in (302, 303), reason_of(posted.text)
    started, finished = visitor.answered_by[-2:]
    assert {started, finished} == {_upstream(a), _upstream(b)}  # the form from one, the sign-in on the other

    # The whole authorization code flow, its requests spread over both, and the tokens valid on both.
    browser = Visitor(proxy.base)
    code = browser.authorize(client)
    assert set(browser.answered_by) == {_upstream(a), _upstream(b)}
    tokens = exchange(proxy.base, client, code).json()
    for instance in (a, b):
        answer = userinfo(instance.base, tokens["access_token"])
        assert answer.status_code == 200 and answer.json()["preferred_username"] == "zhang_san"


def test_a_logout_on_one_instance_ends_the_session_on_both(cluster):
    a, b = cluster["providers"]
    visitor = Visitor(cluster["proxy"].base)
    assert visitor.post_login(visitor.login_page().text).status_code in (302, 303)
    for instance in (a, b):  # the session cookie, sent straight to each instance
        assert visitor.request("GET", f"{instance.base}/center/profile").status_code == 200
    logout_page = visitor.request("GET", f"{a.base}/logout")
    ended = visitor.request("POST", f"{a.base}/logout", data={"csrf_token": csrf_of(logout_page.text),
                                                              "logout": "yes"})
    assert ended.status_code in (302, 303)
    for instance in (b, a):
        answer = visitor.request("GET", f"{instance.base}/center/profile")
        assert answer.status_code in (302, 303) and "/login" in answer.headers["Location"]


def test_lockouts_hold_across_both_instances(cluster):
    a, b = cluster["providers"]
    visitor = Visitor(cluster["proxy"].base)
    for _ in range(5):  # IDP_LOGIN_MAX_FAILURES, alternately on each instance
        page = visitor.login_page()
        visitor.post_login(page.text, password="Wrong-pass1", login_name="wang_wu")
    assert {_upstream(a), _upstream(b)} <= set(visitor.answered_by)
    for instance in (a, b):
        fresh = Visitor(instance.base)
        refused = fresh.post_login(fresh.login_page().text, login_name="wang_wu")
        assert refused.status_code == 401 and reason_of(refused.text) == "account_locked"


def test_sms_caps_hold_across_both_instances(cluster):
    a, b = cluster["providers"]
    visitor = Visitor(cluster["proxy"].base)
    page = visitor.request("GET", "/register/natural")

    def send():
        answer = visitor.request("POST", "/register/send-code", data={
            "csrf_token": csrf_of(page.text), "phone": "13600136000", "captcha": ""})
        return answer.status_code, answer.json().get("reason"), visitor.answered_by[-1]

    first, too_soon = send(), send()
    assert first[:2] == (200, None) and too_soon[:2] == (429, "resend_too_soon")
    assert first[2] != too_soon[2]  # sent by one instance, refused by the other
    time.sleep(1.1)  # IDP_SMS_RESEND_SECONDS=1
    second = send()
    assert second[:2] == (200, None)
    time.sleep(1.1)
    capped = send()  # IDP_SMS_MAX_PER_PHONE_PER_DAY=2, counted over both
    assert capped[:2] == (429, "phone_daily_cap")
    assert {first[2], second[2], capped[2]} == {_upstream(a), _upstream(b)}


def test_a_key_rotated_through_one_instance_is_served_by_both_within_the_key_cache_period(cluster):
    a, b = cluster["providers"]
    client = cluster["client"]

    def kids(instance: Provider) -> set[str]:
        return {key["kid"] for key in Visitor(instance.base).request("GET", "/jwks.json"
                                                                     ).json()["keys"]}

    before = kids(a)
    assert kids(b) == before
    rotated = set(json.loads(idp(cluster["envs"][0], "keys", "rotate").stdout.strip().splitlines()[-1])["kids"])
    started = time.monotonic()
    wait_for(lambda: all(rotated <= kids(i) and before <= kids(i) for i in (a, b)), KEY_BOUND_SECONDS,
             "both instances publishing the new keys (and still the old ones)", interval=0.5)
    took = time.monotonic() - started

    # A token signed with the new key by either instance is accepted by both.
    for signer in (a, b):
        tokens = exchange(signer.base, client, Visitor(signer.base).authorize(client)).json()
        assert jwt.get_unverified_header(tokens["access_token"])["kid"] in rotated
        for instance in (a, b):
            assert userinfo(instance.base, tokens["access_token"]).status_code == 200
    assert took <= KEY_BOUND_SECONDS


def test_the_nginx_configuration_in_deploy_md_is_the_tested_one():
    text = DEPLOY.read_text(encoding="utf-8")
    servers = "    server 10.0.0.11:5000 max_fails=1 fail_timeout=5s;\n    server 10.0.0.12:5000 max_fails=1 fail_timeout=5s;\n"
    assert nginx_site(servers, listen="443", tls=True) in text


def test_the_store_follows_a_redis_sentinel_failover(tmp_path):
    postgres = PostgresCluster()
    master = RedisServer()
    replica = RedisServer(replica_of=master.port)
    sentinel = Sentinel(master.port)
    provider = None
    try:
        env = provider_env(tmp_path / "instance", postgres.create_database("sentinel"), "redis://127.0.0.1/0",
                           IDP_REDIS_SENTINELS=f"127.0.0.1:{sentinel.port}", IDP_REDIS_SENTINEL_SERVICE="mymaster",
                           IDP_LOG_FORMAT="json")
        client = setup_provider(env)
        provider = Provider(env)
        visitor = Visitor(provider.base)
        assert visitor.post_login(visitor.login_page().text).status_code in (302, 303)
        assert visitor.request("GET", "/center/profile").status_code == 200
        direct = redis.Redis(port=master.port)
        assert direct.execute_command("WAIT", 1, 5000) == 1  # the session is on the replica too
        direct.close()

        master.stop()  # the master's host is lost
        wait_for(lambda: redis.Redis(port=sentinel.port).sentinel_get_master_addr_by_name("mymaster")[1]
                 == replica.port, 30, "the Sentinel promoting the replica", interval=0.3)
        # The same server, never restarted: the session made before the failover, and new sign-ins.
        wait_for(lambda: visitor.request("GET", "/center/profile").status_code == 200, 15,
                 "the session read from the new master")
        code = Visitor(provider.base).authorize(client)
        assert exchange(provider.base, client, code).status_code == 200
        assert redis.Redis(port=replica.port).info("replication")["role"] == "master"
        assert provider.process.poll() is None
        assert "Traceback" not in provider.output()
    finally:
        if provider is not None:
            provider.close()
        sentinel.close()
        replica.close()
        master.close()
        postgres.close()
