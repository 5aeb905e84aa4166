"""The password policy (reason codes) and argon2id hashing."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from idp.security.passwords import MAX_LENGTH, MIN_LENGTH, PasswordHashing, password_problem

# --- policy: samples ---------------------------------------------------------------------


def test_the_limits_are_8_and_128():
    assert (MIN_LENGTH, MAX_LENGTH) == (8, 128)


@pytest.mark.parametrize("password", ["", "Ab1!", "Ab1!xyz", "密码Ab1!"])
def test_a_password_under_8_characters_is_too_short(password):
    assert password_problem(password, "zhang_san") == "password_too_short"


def test_exactly_8_characters_with_3_classes_passes():
    assert password_problem("Abcdefg1", "zhang_san") is None


@pytest.mark.parametrize("password", [
    "abcdefgh",          # lower only
    "ABCDEFGH",          # upper only
    "12345678",          # digits only
    "!@#$%^&*",          # special only
    "abcd1234",          # lower + digit
    "ABCD!@#$",          # upper + special
    "abcdEFGH",          # lower + upper
    "1234!@#$",          # digit + special
])
def test_fewer_than_3_character_classes_is_too_simple(password):
    assert password_problem(password, "zhang_san") == "password_too_simple"


@pytest.mark.parametrize("password", [
    "Abcd1234",          # upper + lower + digit
    "abcd123!",          # lower + digit + special
    "ABCD123!",          # upper + digit + special
    "Abcdefg!",          # upper + lower + special
    "Passw0rd!x",        # all four
])
def test_3_or_4_character_classes_pass(password):
    assert password_problem(password, "zhang_san") is None


def test_128_characters_is_allowed_and_129_is_too_long():
    base = "Ab1!" * 32
    assert len(base) == 128
    assert password_problem(base, "zhang_san") is None
    assert password_problem(base + "x", "zhang_san") == "password_too_long"


@pytest.mark.parametrize("password, login_name", [
    ("Zhang_San1", "zhang_san1"),                 # same, other case
    ("ZHANG_SAN1", "Zhang_San1"),
    ("Ｚｈａｎｇ＿Ｓａｎ１", "zhang_san1"),          # full-width form of the login name
    ("Zhang_San1", "ｚｈａｎｇ＿ｓａｎ１"),          # full-width login name
    ("Admin@2024", "admin@2024"),
])
def test_the_login_name_is_refused_as_password_case_insensitively_and_after_normalisation(
    password, login_name
):
    assert password_problem(password, login_name) == "password_equals_login_name"


def test_a_password_that_merely_contains_the_login_name_is_allowed():
    assert password_problem("Zhang_San1-2024", "zhang_san1") is None


def test_without_a_login_name_only_the_shape_is_checked():
    assert password_problem("Zhang_San1") is None
    assert password_problem("Zhang_San1", "") is None


# --- policy: properties ------------------------------------------------------------------

CLASSES = {
    "upper": string.ascii_uppercase,
    "lower": string.ascii_lowercase,
    "digit": string.digits,
    "special": string.punctuation,
}
LOGIN_NAME_CHARS = string.ascii_letters + string.digits + "_.@-"


@st.composite
def passwords_from_classes(draw, min_classes: int, max_classes: int, min_size: int = 8):
    """A password that uses exactly the drawn classes (each at least once)."""
    chosen = draw(st.lists(st.sampled_from(sorted(CLASSES)), min_size=min_classes,
                           max_size=max_classes, unique=True))
    required = [draw(st.sampled_from(CLASSES[name])) for name in chosen]
    alphabet = "".join(CLASSES[name] for name in chosen)
    filler = draw(st.lists(st.sampled_from(alphabet),
                           min_size=max(0, min_size - len(required)),
                           max_size=MAX_LENGTH - len(required)))
    return "".join(draw(st.permutations(required + filler)))


def _same_name(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


@settings(max_examples=300)
@given(password=passwords_from_classes(3, 4),
       login_name=st.text(alphabet=LOGIN_NAME_CHARS, min_size=4, max_size=64))
def test_any_password_of_8_to_128_characters_with_3_classes_that_is_not_the_login_name_passes(
    password, login_name
):
    assume(not _same_name(password, login_name))
    assert password_problem(password, login_name) is None


@settings(max_examples=300)
@given(password=passwords_from_classes(1, 2),
       login_name=st.text(alphabet=LOGIN_NAME_CHARS, min_size=4, max_size=64))
def test_any_password_with_fewer_than_3_classes_fails(password, login_name):
    assert password_problem(password, login_name) is not None
    assert password_problem(password, login_name) == "password_too_simple"


@settings(max_examples=200)
@given(password=passwords_from_classes(1, 4, min_size=0).filter(lambda p: len(p) < 8))
def test_any_password_under_8_characters_fails_whatever_its_classes(password):
    assert password_problem(password, "zhang_san") == "password_too_short"


@settings(max_examples=200)
@given(login_name=st.text(alphabet=LOGIN_NAME_CHARS, min_size=8, max_size=64))
def test_a_login_name_used_as_password_always_fails(login_name):
    assert password_problem(login_name, login_name) is not None
    assert password_problem(login_name.upper(), login_name.lower()) is not None


# --- hashing -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hashing() -> PasswordHashing:
    return PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1)


def test_hashes_are_argon2id_with_the_configured_parameters(hashing):
    stored = hashing.hash("Passw0rd!x")
    assert stored.startswith("$argon2id$")
    assert "m=1024,t=1,p=1" in stored
    assert "Passw0rd!x" not in stored


def test_the_right_password_verifies(hashing):
    stored = hashing.hash("Passw0rd!x")
    assert hashing.verify(stored, "Passw0rd!x") is True


def test_a_wrong_password_does_not_verify(hashing):
    stored = hashing.hash("Passw0rd!x")
    assert hashing.verify(stored, "passw0rd!x") is False
    assert hashing.verify(stored, "") is False


def test_non_ascii_passwords_verify(hashing):
    stored = hashing.hash("密码Passw0rd！")
    assert hashing.verify(stored, "密码Passw0rd！") is True
    assert hashing.verify(stored, "密码Passw0rd!") is False


def test_the_same_password_hashes_differently_each_time(hashing):
    assert hashing.hash("Passw0rd!x") != hashing.hash("Passw0rd!x")


def test_the_unknown_user_path_returns_false(hashing):
    assert hashing.verify(None, "Passw0rd!x") is False


def test_the_unknown_user_path_returns_false_even_for_the_dummy_password(hashing):
    assert hashing.verify(None, "dummy password for timing equality") is False


def test_an_empty_stored_hash_never_verifies_not_even_with_the_dummy_password(hashing):
    # An account row whose hash is "" (an import without passwords, a blanked field) must
    # not fall through to the timing dummy, whose password is public in the source.
    assert hashing.verify("", "dummy password for timing equality") is False
    assert hashing.verify("", "Passw0rd!x") is False


def test_a_malformed_stored_hash_does_not_verify(hashing):
    assert hashing.verify("not a hash", "Passw0rd!x") is False
    assert hashing.verify("", "Passw0rd!x") is False


def test_weaker_parameters_need_a_rehash():
    weak = PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1)
    strong = PasswordHashing(time_cost=2, memory_kib=2048, parallelism=1)
    stored = weak.hash("Passw0rd!x")
    assert strong.needs_rehash(stored) is True
    assert weak.needs_rehash(stored) is False
    assert strong.verify(stored, "Passw0rd!x") is True
