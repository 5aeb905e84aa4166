"""Password hashing (argon2id) and the platform's password policy.

The policy is the seed's: at least 8 characters and at least 3 of the 4 classes upper case,
lower case, digit, special character; never the login name.
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_LENGTH = 8
MAX_LENGTH = 128


class PasswordHashing:
    """argon2id with configured parameters; a dummy hash keeps unknown-user timing equal."""

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._dummy = self.hasher.hash("dummy password for timing equality")

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        if not stored:
            # Unknown login name or an account without a password: spend the same time, fail.
            self._check(self._dummy, password)
            return False
        return self._check(stored, password)

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored: str) -> bool:
        return self.hasher.check_needs_rehash(stored)


def character_classes(password: str) -> int:
    """How many of upper case, lower case, digit and special character occur."""
    upper = any(c.isupper() for c in password)
    lower = any(c.islower() for c in password)
    digit = any(c.isdigit() for c in password)
    special = any(not c.isalnum() and not c.isspace() for c in password)
    return upper + lower + digit + special


def password_problem(password: str, login_name: str = "") -> str | None:
    """Return a stable reason code when the policy rejects the password, else None."""
    if len(password) < MIN_LENGTH:
        return "password_too_short"
    if len(password) > MAX_LENGTH:
        return "password_too_long"
    if character_classes(password) < 3:
        return "password_too_simple"
    fold = lambda s: unicodedata.normalize("NFKC", s).strip().casefold()  # noqa: E731
    if login_name and fold(password) == fold(login_name):
        return "password_equals_login_name"
    return None
