"""Legacy password hashes (INTERFACES.md, "Legacy export format"): each format verifies with
known vectors, wrong passwords and malformed or hostile strings are refused with a reason code,
and a legacy check costs about what an argon2id check costs."""

from __future__ import annotations

import base64
import hashlib
import statistics
import time

import bcrypt
import pytest
from argon2.low_level import Type, hash_secret

from idp.security.passwords import (
    PasswordHashing,
    UnsupportedHash,
    hash_kind,
    hash_params,
    legacy_hash_format,
)
from tests.conftest import CHEAP_ARGON2

# Published vectors: bcrypt from the OpenBSD / pyca test suite; Django's own test of
# PBKDF2PasswordHasher (Django 5.1, 1,000,000 iterations); the argon2 reference CLI
# (`echo -n password | argon2 somesalt -t 2 -m 16 -p 4 -l 24`).
BCRYPT_VECTOR = ("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")
DJANGO_VECTOR = ("lètmein",
                 "pbkdf2_sha256$1000000$seasalt$r1uLUxoxpP2Ued/qxvmje7UH9PUJBkRrvf9gGPL7Cps=")
ARGON2I_VECTOR = ("password",
                  "$argon2i$v=19$m=65536,t=2,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")

PASSWORD = "火炬Passw0rd!"


def django_pbkdf2(password: str, salt: str, iterations: int) -> str:
    """What Django's PBKDF2PasswordHasher.encode writes."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), iterations)
    return f"pbkdf2_sha256${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def salted_sha256(password: str, salt: str) -> str:
    return f"sha256${salt}${hashlib.sha256((salt + password).encode()).hexdigest()}"


def phc(variant: Type, password: str, memory: int = 1024, passes: int = 1, lanes: int = 1) -> str:
    return hash_secret(password.encode(), b"torchsalt123", time_cost=passes, memory_cost=memory,
                       parallelism=lanes, hash_len=32, type=variant).decode()


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing(CHEAP_ARGON2["ARGON2_TIME_COST"], CHEAP_ARGON2["ARGON2_MEMORY_KIB"],
                           CHEAP_ARGON2["ARGON2_PARALLELISM"])


def legacy_hashes(password: str) -> dict[str, str]:
    """One stored hash of each legacy kind, with cheap parameters."""
    return {
        "bcrypt_2a": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(),
        "bcrypt_2b": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4, prefix=b"2b")).decode(),
        "bcrypt_2y": bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode()
        .replace("$2b$", "$2y$", 1),
        "pbkdf2_sha256": django_pbkdf2(password, "Q8mVx3kLp0Zt", 1000),
        "sha256": salted_sha256(password, "a9f3c1"),
        "argon2i": phc(Type.I, password),
        "argon2d": phc(Type.D, password),
        "argon2id_other_parameters": phc(Type.ID, password, memory=2048, passes=2),
    }


# --- known vectors -------------------------------------------------------------------------


def test_the_published_bcrypt_vector_verifies(hashing):
    password, stored = BCRYPT_VECTOR
    assert legacy_hash_format(stored) == "bcrypt"
    assert hashing.verify(stored, password) is True
    assert hashing.verify(stored, "U*U*") is False


def test_bcrypt_2y_and_2b_spellings_of_the_published_vector_verify(hashing):
    password, stored = BCRYPT_VECTOR
    for prefix in ("$2b$", "$2y$"):
        assert hashing.verify(stored.replace("$2a$", prefix, 1), password) is True


def test_djangos_own_pbkdf2_vector_verifies_and_hashlib_writes_it_exactly(hashing):
    password, stored = DJANGO_VECTOR
    assert django_pbkdf2(password, "seasalt", 1_000_000) == stored
    assert legacy_hash_format(stored) == "pbkdf2_sha256"
    assert hashing.verify(stored, password) is True
    assert hashing.verify(stored, "letmein") is False


def test_the_argon2_reference_cli_vector_verifies(hashing):
    password, stored = ARGON2I_VECTOR
    assert legacy_hash_format(stored) == "argon2i"
    assert hashing.verify(stored, password) is True
    assert hashing.verify(stored, "Password") is False


def test_salted_sha256_is_the_hash_of_salt_then_password_in_utf8(hashing):
    stored = "sha256$盐abc$" + hashlib.sha256("盐abc密码Passw0rd".encode()).hexdigest()
    assert legacy_hash_format(stored) == "sha256"
    assert hashing.verify(stored, "密码Passw0rd") is True
    # Not password then salt, not without the salt.
    swapped = "sha256$盐abc$" + hashlib.sha256("密码Passw0rd盐abc".encode()).hexdigest()
    assert hashing.verify(swapped, "密码Passw0rd") is False


def test_an_upper_case_sha256_digest_verifies(hashing):
    stored = salted_sha256(PASSWORD, "s1")
    prefix, salt, digest = stored.split("$")
    assert hashing.verify(f"{prefix}${salt}${digest.upper()}", PASSWORD) is True


@pytest.mark.parametrize("kind", sorted(legacy_hashes("x")))
def test_each_legacy_kind_verifies_the_right_password_and_refuses_a_wrong_one(hashing, kind):
    stored = legacy_hashes(PASSWORD)[kind]
    legacy_hash_format(stored)  # accepted as it comes
    assert hashing.verify(stored, PASSWORD) is True
    assert hashing.verify(stored, PASSWORD + "x") is False
    assert hashing.verify(stored, "") is False
    assert hashing.needs_rehash(stored) is True


def test_bcrypt_verifies_a_password_longer_than_72_bytes_as_the_legacy_system_truncated_it(hashing):
    password = "长" * 30 + "Passw0rd!"  # 99 bytes in UTF-8
    stored = bcrypt.hashpw(password.encode()[:72], bcrypt.gensalt(4)).decode()
    assert hashing.verify(stored, password) is True
    assert hashing.verify(stored, "长" * 23) is False


def test_current_argon2id_hashes_need_no_rehash_and_the_format_names_them(hashing):
    stored = hashing.hash(PASSWORD)
    assert legacy_hash_format(stored) == "argon2id"
    assert hashing.needs_rehash(stored) is False
    assert hash_kind(stored) == "argon2id"


# --- refusals ------------------------------------------------------------------------------

VALID_BCRYPT = BCRYPT_VECTOR[1]
VALID_DJANGO = django_pbkdf2(PASSWORD, "seasalt", 1000)
VALID_SHA256 = salted_sha256(PASSWORD, "seasalt")
VALID_ARGON2 = ARGON2I_VECTOR[1]

MALFORMED = [
    # (stored string, reason code)
    (None, "hash_missing"),
    ("", "hash_missing"),
    ("x" * 256, "hash_too_long"),
    ("$2b$12$" + "a" * 249, "hash_too_long"),
    ("5f4dcc3b5aa765d61d8327deb882cf99", "hash_format_unknown"),  # bare MD5
    ("md5$salt$5f4dcc3b5aa765d61d8327deb882cf99", "hash_format_unknown"),
    ("pbkdf2_sha1$10000$salt$abcd", "hash_format_unknown"),
    ("$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW", "hash_format_unknown"),
    ("$1$saltsalt$qjXMvbEw8oaL.CzflDugX/", "hash_format_unknown"),  # md5-crypt
    ("$argon2$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub", "hash_format_unknown"),
    (" " + VALID_BCRYPT, "hash_format_unknown"),
    ("=HYPERLINK(\"http://evil\")", "hash_format_unknown"),
    (VALID_BCRYPT[:-1], "bcrypt_malformed"),
    (VALID_BCRYPT + "\n", "bcrypt_malformed"),
    (VALID_BCRYPT.replace("$05$", "$03$"), "bcrypt_malformed"),
    (VALID_BCRYPT.replace("$05$", "$5$"), "bcrypt_malformed"),
    (VALID_BCRYPT[:-1] + "!", "bcrypt_malformed"),
    (VALID_BCRYPT.replace("$05$", "$13$"), "bcrypt_cost_too_high"),
    (VALID_BCRYPT.replace("$05$", "$31$"), "bcrypt_cost_too_high"),
    ("pbkdf2_sha256$1000$seasalt", "pbkdf2_malformed"),
    ("pbkdf2_sha256$$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$0$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$-1$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$1e6$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$１０００$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$1000$$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$1000$sea salt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    ("pbkdf2_sha256$1000$sea$salt$" + VALID_DJANGO.split("$")[3], "pbkdf2_malformed"),
    (VALID_DJANGO[:-2] + "==", "pbkdf2_malformed"),  # not 32 bytes
    (VALID_DJANGO[:-1], "pbkdf2_malformed"),
    ("pbkdf2_sha256$1000$seasalt$" + base64.b64encode(b"x" * 31).decode(), "pbkdf2_malformed"),
    ("pbkdf2_sha256$1200001$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_iterations_too_high"),
    ("pbkdf2_sha256$999999999$seasalt$" + VALID_DJANGO.split("$")[3], "pbkdf2_iterations_too_high"),
    ("sha256$seasalt", "sha256_malformed"),
    ("sha256$$" + VALID_SHA256.split("$")[2], "sha256_malformed"),
    (VALID_SHA256[:-1], "sha256_malformed"),
    (VALID_SHA256 + "0", "sha256_malformed"),
    (VALID_SHA256[:-1] + "g", "sha256_malformed"),
    ("sha256$sea\x00salt$" + VALID_SHA256.split("$")[2], "sha256_malformed"),
    ("sha256$a$b$" + VALID_SHA256.split("$")[2], "sha256_malformed"),
    (VALID_ARGON2[:-30], "argon2_malformed"),
    (VALID_ARGON2.replace("v=19", "v=20"), "argon2_malformed"),
    (VALID_ARGON2.replace("m=65536", "m=0"), "argon2_malformed"),
    (VALID_ARGON2.replace("m=65536", "m=16"), "argon2_malformed"),  # < 8 KiB per lane
    (VALID_ARGON2.replace("t=2", "t=0"), "argon2_malformed"),
    (VALID_ARGON2.replace("c29tZXNhbHQ", "c29tZQ"), "argon2_malformed"),  # 4-byte salt
    (VALID_ARGON2.replace("$c29tZXNhbHQ$", "$$"), "argon2_malformed"),
    (VALID_ARGON2 + "$extra", "argon2_malformed"),
    (VALID_ARGON2.replace("p=4", "p=4,keyid=abc"), "argon2_malformed"),
    (VALID_ARGON2.replace("m=65536", "m=4294967295"), "argon2_cost_too_high"),  # 4 GiB
    (VALID_ARGON2.replace("m=65536", "m=524288"), "argon2_cost_too_high"),
    (VALID_ARGON2.replace("t=2", "t=11"), "argon2_cost_too_high"),
    (VALID_ARGON2.replace("m=65536", "m=262144").replace("t=2", "t=1"), "argon2_cost_too_high"),
    (VALID_ARGON2.replace("t=2", "t=5"), "argon2_cost_too_high"),  # 5 passes over 64 MiB
    (VALID_ARGON2.replace("p=4", "p=64"), "argon2_cost_too_high"),
]


@pytest.mark.parametrize("stored, reason", MALFORMED)
def test_a_malformed_unknown_or_too_costly_hash_is_refused_with_its_reason(stored, reason):
    with pytest.raises(UnsupportedHash) as refused:
        legacy_hash_format(stored)
    assert refused.value.reason == reason
    assert isinstance(refused.value, ValueError)


@pytest.mark.parametrize("stored, reason", MALFORMED)
def test_a_refused_hash_never_verifies_and_no_exception_escapes(hashing, stored, reason):
    started = time.perf_counter()
    assert hashing.verify(stored, PASSWORD) is False
    assert time.perf_counter() - started < 1  # the caps hold: no hostile row costs seconds
    assert hash_kind(stored) == "unknown"


def test_a_refused_hash_never_verifies_even_with_the_dummy_password(hashing):
    assert hashing.verify("not a hash", "dummy password for timing equality") is False


def test_the_caps_admit_the_highest_defaults_of_the_legacy_systems():
    digest = VALID_DJANGO.split("$")[3]
    assert legacy_hash_format(f"pbkdf2_sha256$1200000$seasalt${digest}") == "pbkdf2_sha256"
    assert legacy_hash_format(VALID_BCRYPT.replace("$05$", "$12$")) == "bcrypt"
    # RFC 9106's second recommendation (argon2-cffi's default) and PHP's default.
    assert legacy_hash_format(VALID_ARGON2.replace("t=2", "t=3")) == "argon2i"
    assert legacy_hash_format(VALID_ARGON2.replace("t=2", "t=4").replace("p=4", "p=1")) == "argon2i"


# --- timing --------------------------------------------------------------------------------


def _median_seconds(hashing: PasswordHashing, stored: str | None, password: str) -> float:
    times = []
    for _ in range(15):
        started = time.perf_counter()
        hashing.verify(stored, password)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@pytest.mark.parametrize("kind", ["sha256", "pbkdf2_sha256"])
def test_a_cheap_legacy_check_is_not_faster_than_half_an_argon2id_check(kind):
    # A fresh hasher with the tests' configured (cheap) parameters: the padding follows the
    # configuration, whatever it is.
    hashing = PasswordHashing(CHEAP_ARGON2["ARGON2_TIME_COST"], CHEAP_ARGON2["ARGON2_MEMORY_KIB"],
                              CHEAP_ARGON2["ARGON2_PARALLELISM"])
    current = hashing.hash(PASSWORD)
    legacy = legacy_hashes(PASSWORD)[kind]
    for password in (PASSWORD, "Wr0ng!pass"):
        _median_seconds(hashing, legacy, password)  # makes the padding dummies
        argon2id = _median_seconds(hashing, current, password)
        assert _median_seconds(hashing, legacy, password) > argon2id / 2
        assert _median_seconds(hashing, None, password) > argon2id / 2


def test_the_padding_uses_the_configured_argon2_parameters():
    cheap = PasswordHashing(1, 1024, 1)
    dearer = PasswordHashing(1, 8192, 1)
    stored = salted_sha256(PASSWORD, "s")
    _median_seconds(cheap, stored, PASSWORD), _median_seconds(dearer, stored, PASSWORD)
    # Eight times the memory: a salted SHA-256 check (a microsecond of its own) follows.
    assert _median_seconds(dearer, stored, PASSWORD) > _median_seconds(cheap, stored, PASSWORD)


# --- the floor: a hash dearer than argon2id ------------------------------------------------


def test_hash_params_name_what_a_check_costs_and_nothing_secret(hashing):
    hashes = legacy_hashes(PASSWORD)
    assert hash_params(hashes["bcrypt_2a"]) == hash_params(hashes["bcrypt_2y"]) == "bcrypt$4"
    assert hash_params(django_pbkdf2(PASSWORD, "salt", 260_000)) == "pbkdf2_sha256$260000"
    assert hash_params(hashes["sha256"]) == "sha256"
    assert hash_params(hashes["argon2i"]) == "argon2i$v=19$m=1024,t=1,p=1"
    assert hash_params(hashing.hash(PASSWORD)) == "argon2id$v=19$m=1024,t=1,p=1"
    assert hash_params("$argon2i$m=4096,t=3,p=1$" + "c29tZXNhbHQ$" + "A" * 43) == "argon2i$v=16$m=4096,t=3,p=1"
    for refused in (None, "", "md5$abc", "$2b$13$" + "a" * 53, "pbkdf2_sha256$999999999$s$" + "A" * 43 + "="):
        assert hash_params(refused) is None


class SleepRecorder:
    """The hashing's clock and sleep: real time plus what was slept, so that a sleep costs the
    test nothing and the end of each check can be read exactly."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def timer(self) -> float:
        return time.perf_counter() + sum(self.slept)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)


def floored_hashing(stored: set[str]) -> tuple[PasswordHashing, SleepRecorder]:
    recorder = SleepRecorder()
    hashing = PasswordHashing(CHEAP_ARGON2["ARGON2_TIME_COST"], CHEAP_ARGON2["ARGON2_MEMORY_KIB"],
                              CHEAP_ARGON2["ARGON2_PARALLELISM"], sleep=recorder.sleep,
                              timer=recorder.timer)
    hashing.watch_stored(lambda: stored, refresh_seconds=0)
    return hashing, recorder


def test_while_a_dearer_hash_is_stored_every_other_check_ends_at_the_floor():
    # bcrypt cost 10 costs far more than the tests' argon2id (1 MiB, one pass).
    stored = {"bcrypt$10", "sha256", "argon2id$v=19$m=1024,t=1,p=1"}
    hashing, recorder = floored_hashing(stored)
    current = hashing.hash(PASSWORD)
    cheap_legacy = legacy_hashes(PASSWORD)
    for case in (current, None, cheap_legacy["sha256"], cheap_legacy["bcrypt_2b"], "md5$unknown"):
        for password in (PASSWORD, "Wr0ng!pass"):
            floor = hashing.floor_seconds()
            assert floor > 0
            before = len(recorder.slept)
            started = recorder.timer()
            hashing.verify(case, password)
            assert len(recorder.slept) == before + 1  # it waited …
            assert recorder.timer() - started == pytest.approx(floor, abs=1e-3)  # … until the floor


def test_the_floor_is_the_dearest_stored_check_measured_against_argon2id():
    hashing, _ = floored_hashing({"bcrypt$10"})
    dear = floored_hashing({"bcrypt$12"})[0]
    # bcrypt's cost is a power of two: four times the work, whatever the machine's speed.
    assert dear.floor_seconds() > 2 * hashing.floor_seconds() > 0


def test_without_a_dearer_hash_stored_no_check_waits():
    stored = {"sha256", "argon2id$v=19$m=1024,t=1,p=1"}
    hashing, recorder = floored_hashing(stored)
    assert hashing.floor_seconds() == 0
    for case in (hashing.hash(PASSWORD), None, legacy_hashes(PASSWORD)["sha256"]):
        hashing.verify(case, "Wr0ng!pass")
    assert recorder.slept == []


def test_the_floor_falls_when_the_last_dear_hash_is_gone():
    stored = {"pbkdf2_sha256$600000", "argon2id$v=19$m=1024,t=1,p=1"}
    hashing, recorder = floored_hashing(stored)
    assert hashing.floor_seconds() > 0
    stored.discard("pbkdf2_sha256$600000")  # its owner signed in: argon2id now
    assert hashing.floor_seconds() == 0
    hashing.verify(None, PASSWORD)
    assert recorder.slept == []


def test_the_list_of_stored_parameters_is_asked_again_only_after_the_refresh_interval():
    asked = []
    hashing = PasswordHashing(1, 1024, 1)
    hashing.watch_stored(lambda: asked.append(1) or {"sha256"}, refresh_seconds=3600)
    for _ in range(3):
        hashing.verify(None, PASSWORD)
    assert asked == [1]
