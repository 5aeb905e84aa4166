"""Password hashing (argon2id), legacy hash formats, and the platform's password policy.

The policy is the seed's: at least 8 characters and at least 3 of the 4 classes upper case,
lower case, digit, special character; never the login name.

Accounts migrated from the legacy systems keep their password hash as it came (INTERFACES.md,
"Legacy export format"): bcrypt, Django's PBKDF2-SHA256, salted SHA-256 and argon2 PHC strings.
They are verified in their own format at sign-in and then replaced by argon2id with the current
parameters (the login's rehash path asks ``needs_rehash``). A sign-in must not tell an attacker
which accounts are still legacy: a legacy check cheaper than argon2id is padded with argon2id
work up to the time of one argon2id verification (``PasswordHashing._pad``), and while some
account still holds a hash dearer than that, every check ends at the time of the dearest one
(``PasswordHashing.floor_seconds``). docs/legacy-accounts.md has the figures.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
import unicodedata

from typing import Callable, Iterable

import bcrypt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import Type, hash_secret

from idp.errors import Refused

MIN_LENGTH = 8
MAX_LENGTH = 128

# --- legacy hash formats -------------------------------------------------------------------

# The password column holds 255 characters; nothing longer was ever a hash of ours to verify.
MAX_HASH_LENGTH = 255
# Caps on the work a stored hash may demand, so that a hostile or broken row cannot make each
# sign-in attempt burn seconds of CPU or gigabytes of memory. Each cap sits at or above the
# highest default of the systems that write the format (bcrypt: 10–12; Django 6.0: 1,200,000
# PBKDF2 iterations; argon2: PHP's m = 64 MiB, t = 4, above RFC 9106's second recommendation).
BCRYPT_MAX_COST = 12
PBKDF2_MAX_ITERATIONS = 1_200_000
ARGON2_MAX_MEMORY_KIB = 131_072  # 128 MiB
ARGON2_MAX_TIME_COST = 10
ARGON2_MAX_WORK = 262_144  # time cost × memory in KiB: 4 passes over 64 MiB
ARGON2_MAX_PARALLELISM = 16

_BCRYPT = re.compile(r"\$(2[aby])\$(\d\d)\$[./A-Za-z0-9]{53}")
_PBKDF2 = re.compile(r"pbkdf2_sha256\$([1-9][0-9]{0,8})\$([^$\s]{1,128})\$([A-Za-z0-9+/]{43}=)")
_SHA256 = re.compile(r"sha256\$([^$\s]{1,128})\$([0-9A-Fa-f]{64})")
_ARGON2 = re.compile(
    r"\$(argon2id|argon2i|argon2d)\$(?:v=(16|19)\$)?m=([1-9][0-9]{0,9}),t=([1-9][0-9]{0,9}),"
    r"p=([1-9][0-9]{0,2})\$([A-Za-z0-9+/]{11,86})\$([A-Za-z0-9+/]{6,86})"
)


class UnsupportedHash(Refused, ValueError):
    """A stored password hash this platform will not verify; ``reason`` is a stable code.

    Codes: ``hash_missing``, ``hash_too_long``, ``hash_format_unknown``, ``bcrypt_malformed``,
    ``bcrypt_cost_too_high``, ``pbkdf2_malformed``, ``pbkdf2_iterations_too_high``,
    ``sha256_malformed``, ``argon2_malformed``, ``argon2_cost_too_high``.
    """


def legacy_hash_format(text: object) -> str:
    """Name the format of a stored hash as it came from a legacy export, or refuse it.

    Returns ``bcrypt``, ``pbkdf2_sha256``, ``sha256``, ``argon2id``, ``argon2i`` or
    ``argon2d``; raises ``UnsupportedHash`` (a ValueError) with the reason, so that the import
    refuses the row and goes on with the file.
    """
    if not isinstance(text, str) or not text:
        raise UnsupportedHash("hash_missing")
    if len(text) > MAX_HASH_LENGTH:
        raise UnsupportedHash("hash_too_long")
    if text.startswith(("$2a$", "$2b$", "$2y$")):
        return _bcrypt_format(text)
    if text.startswith("pbkdf2_sha256$"):
        return _pbkdf2_format(text)
    if text.startswith("sha256$"):
        return _sha256_format(text)
    if text.startswith(("$argon2id$", "$argon2i$", "$argon2d$")):
        return _argon2_format(text)
    raise UnsupportedHash("hash_format_unknown")


def _bcrypt_format(text: str) -> str:
    match = _BCRYPT.fullmatch(text)
    if match is None or int(match[2]) < 4:
        raise UnsupportedHash("bcrypt_malformed")
    if int(match[2]) > BCRYPT_MAX_COST:
        raise UnsupportedHash("bcrypt_cost_too_high")
    return "bcrypt"


def _pbkdf2_format(text: str) -> str:
    match = _PBKDF2.fullmatch(text)
    if match is None or not match[2].isprintable() or not _b64(match[3], 32):
        raise UnsupportedHash("pbkdf2_malformed")
    if int(match[1]) > PBKDF2_MAX_ITERATIONS:
        raise UnsupportedHash("pbkdf2_iterations_too_high")
    return "pbkdf2_sha256"


def _sha256_format(text: str) -> str:
    match = _SHA256.fullmatch(text)
    if match is None or not match[1].isprintable():
        raise UnsupportedHash("sha256_malformed")
    return "sha256"


def _argon2_format(text: str) -> str:
    match = _ARGON2.fullmatch(text)
    if match is None:
        raise UnsupportedHash("argon2_malformed")
    memory, passes, lanes = int(match[3]), int(match[4]), int(match[5])
    salt, tag = _b64(match[6]), _b64(match[7])
    # RFC 9106 §3.1: at least 8 KiB per lane, a salt of at least 8 bytes, a tag of at least 4.
    if memory < 8 * lanes or salt is None or len(salt) < 8 or tag is None or len(tag) < 4:
        raise UnsupportedHash("argon2_malformed")
    if (memory > ARGON2_MAX_MEMORY_KIB or passes > ARGON2_MAX_TIME_COST
            or passes * memory > ARGON2_MAX_WORK or lanes > ARGON2_MAX_PARALLELISM):
        raise UnsupportedHash("argon2_cost_too_high")
    return match[1]


def hash_params(stored: object) -> str | None:
    """What a check of ``stored`` costs, as a short key without salt or digest: ``bcrypt$10``,
    ``pbkdf2_sha256$260000``, ``sha256``, ``argon2id$v=19$m=19456,t=2,p=1``; None for no hash or
    one this platform refuses (its check is the dummy's). Accounts keep it beside the hash
    (``accounts.password_params``) so that the sign-in knows the dearest check any account may
    still cost without reading the hashes."""
    try:
        kind = legacy_hash_format(stored)
    except UnsupportedHash:
        return None
    text = str(stored)
    if kind == "bcrypt":
        return f"bcrypt${int(text[4:6])}"
    if kind == "pbkdf2_sha256":
        return f"pbkdf2_sha256${int(text.split('$')[1])}"
    if kind == "sha256":
        return "sha256"
    match = _ARGON2.fullmatch(text)
    return f"{kind}$v={match[2] or 16}$m={int(match[3])},t={int(match[4])},p={int(match[5])}"


def _dummy_for(params: str) -> None:
    """Hash the dummy password with ``params``: the work of one check of a hash with them."""
    kind, _, rest = params.partition("$")
    password = _DUMMY_PASSWORD.encode()
    if kind == "bcrypt":
        bcrypt.hashpw(password, bcrypt.gensalt(int(rest)))
    elif kind == "pbkdf2_sha256":
        hashlib.pbkdf2_hmac("sha256", password, b"dummy salt", int(rest))
    elif kind == "sha256":
        hashlib.sha256(password).digest()
    else:
        version, costs = rest.split("$")
        memory, passes, lanes = (int(part.split("=")[1]) for part in costs.split(","))
        hash_secret(password, b"dummy salt", time_cost=passes, memory_cost=memory, parallelism=lanes,
                    hash_len=32, type={"argon2id": Type.ID, "argon2i": Type.I, "argon2d": Type.D}[kind],
                    version=int(version[2:]))


def _b64(text: str, length: int | None = None) -> bytes | None:
    """Standard base64, padded (Django) or not (PHC strings); None when it does not decode."""
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if length is not None and len(raw) != length:
        return None
    return raw


def _check_bcrypt(stored: str, password: str) -> bool:
    # The legacy systems hashed at most 72 bytes (bcrypt's limit; bcrypt ≥ 5 refuses more
    # instead of truncating): the same truncation verifies what they stored.
    return bcrypt.checkpw(password.encode("utf-8")[:72], stored.encode("ascii"))


def _check_pbkdf2(stored: str, password: str) -> bool:
    # As Django's PBKDF2PasswordHasher: UTF-8 password and salt, 32-byte key, base64.
    _, iterations, salt, digest = stored.split("$")
    derived = hashlib.pbkdf2_hmac(
        "sha256", password.encode("utf-8"), salt.encode("utf-8"), int(iterations)
    )
    return hmac.compare_digest(derived, base64.b64decode(digest))


def _check_sha256(stored: str, password: str) -> bool:
    _, salt, digest = stored.split("$")
    derived = hashlib.sha256((salt + password).encode("utf-8")).digest()
    return hmac.compare_digest(derived, bytes.fromhex(digest))


# --- hashing -------------------------------------------------------------------------------

_DUMMY_PASSWORD = "dummy password for timing equality"  # nosec B105  # hashed as the stand-in for unknown names, never a credential
# The padding is one of this many argon2id dummies of 1/N … N/N of the configured memory.
PAD_STEPS = 8
# Weight of the newest measurement in the running estimates of a check's time.
_ESTIMATE_WEIGHT = 0.2
# The floor lies this far above the dearest check's estimated time, so that the dearest accounts'
# own checks end at the floor's deadline too instead of around it.
FLOOR_MARGIN = 1.3
# Rounds of the measurement of a stored parameter set against argon2id; the largest ratio counts.
_CALIBRATION_ROUNDS = 2


class PasswordHashing:
    """argon2id with configured parameters; a dummy hash keeps unknown-user timing equal,
    padding keeps cheaper legacy hashes' timing equal, and a floor keeps dearer ones' equal.

    ``watch_stored`` tells it where to learn which parameter sets accounts still hold (the
    accounts table, through ``idp.accounts``); until it is told, it knows none.
    """

    def __init__(self, time_cost: int, memory_kib: int, parallelism: int, *,
                 sleep: Callable[[float], None] = time.sleep,
                 timer: Callable[[], float] = time.perf_counter) -> None:
        self.hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism
        )
        self._sleep, self._timer = sleep, timer
        started = self._timer()
        self._dummy = self.hasher.hash(_DUMMY_PASSWORD)
        # Hashing costs what verifying costs: the first estimate of one verification, refined
        # by every verification at the current parameters (so it follows the machine's load).
        self._argon2_seconds = self._timer() - started
        self._current = self._dummy[: self._dummy.rindex("$", 0, self._dummy.rindex("$"))]
        self._current_params = hash_params(self._dummy)
        self._pads: dict[int, str] = {}
        self._stored_params: Callable[[], Iterable[str]] = frozenset
        self._refresh_seconds = 0.0
        self._known: tuple[float, frozenset[str]] = (float("-inf"), frozenset())
        # Parameter set → how many argon2id verifications one check with it costs.
        self._ratios: dict[str, float] = {}

    def watch_stored(self, stored_params: Callable[[], Iterable[str]], refresh_seconds: float) -> None:
        """``stored_params()`` names every parameter set some account's hash still has; it is
        asked again at most every ``refresh_seconds`` (0: at every check)."""
        self._stored_params, self._refresh_seconds = stored_params, refresh_seconds
        self._known = (float("-inf"), frozenset())

    def hash(self, password: str) -> str:
        return self.hasher.hash(password)

    def verify(self, stored: str | None, password: str) -> bool:
        started = self._timer()
        floor = self.floor_seconds()
        ok = self._verify(stored, password, pad=not floor)
        if floor:
            left = floor - (self._timer() - started)
            if left > 0:
                self._sleep(left)
        return ok

    def _verify(self, stored: str | None, password: str, pad: bool) -> bool:
        if not stored:
            # Unknown login name or an account without a password: spend the same time, fail.
            self._check_current(self._dummy, password)
            return False
        if stored.startswith(self._current + "$"):
            return self._check_current(stored, password)
        started = self._timer()
        params = hash_params(stored)
        if params is None:
            self._check_current(self._dummy, password)
            return False
        kind = params.partition("$")[0]
        try:
            if kind == "bcrypt":
                ok = _check_bcrypt(stored, password)
            elif kind == "pbkdf2_sha256":
                ok = _check_pbkdf2(stored, password)
            elif kind == "sha256":
                ok = _check_sha256(stored, password)
            else:  # argon2 with other parameters or another variant
                ok = self._check(stored, password)
        except (ValueError, UnicodeError):
            ok = False
        elapsed = self._timer() - started
        if params in self._ratios:
            self._ratios[params] += (elapsed / self._argon2_seconds - self._ratios[params]) * _ESTIMATE_WEIGHT
        if pad:
            self._pad(elapsed)
        return ok

    def _check_current(self, stored: str, password: str) -> bool:
        started = self._timer()
        ok = self._check(stored, password)
        elapsed = self._timer() - started
        self._argon2_seconds += (elapsed - self._argon2_seconds) * _ESTIMATE_WEIGHT
        return ok

    def _check(self, stored: str, password: str) -> bool:
        try:
            return self.hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    def _pad(self, elapsed: float) -> None:
        """Top a legacy check up to one argon2id verification with real argon2id work.

        Real work rather than a sleep, so that the padding slows down under load exactly as an
        argon2id verification does: a dummy of k/PAD_STEPS of the configured memory costs about
        that fraction of a verification. A check that already took longer gets no padding:
        ``floor_seconds`` covers those.
        """
        budget = self._argon2_seconds
        steps = min(PAD_STEPS, round(PAD_STEPS * (budget - elapsed) / budget)) if budget > 0 else 0
        if steps <= 0:
            return
        pad = self._pads.get(steps)
        if pad is None:
            # Making the dummy costs what verifying it would: the first use pads as well.
            params = self.hasher
            memory = max(8 * params.parallelism, params.memory_cost * steps // PAD_STEPS)
            self._pads[steps] = PasswordHasher(
                time_cost=params.time_cost, memory_cost=memory, parallelism=params.parallelism
            ).hash(_DUMMY_PASSWORD)
        else:
            self._check(pad, "not the dummy password")

    def floor_seconds(self) -> float:
        """Seconds every check lasts at least while some account holds a hash dearer than one
        argon2id verification (0 when none does): the dearest such check's estimated time.

        A sleep rather than work: the floor can be many argon2id verifications (bcrypt 12 is
        about 8 at the defaults), and every sign-in attempt burning that much CPU would hand an
        attacker a lever on the whole service. The estimate is a ratio to the running argon2id
        estimate, measured once per parameter set and refined by every check with it, so it
        follows the machine's load as the checks themselves do.
        """
        checked, known = self._known
        now = time.monotonic()
        if now - checked >= self._refresh_seconds:
            known = frozenset(self._stored_params()) - {self._current_params}
            self._known = (now, known)
        ratio = max((self._ratio(params) for params in known), default=0.0)
        return ratio * FLOOR_MARGIN * self._argon2_seconds if ratio > 1 else 0.0

    def _ratio(self, params: str) -> float:
        ratio = self._ratios.get(params)
        if ratio is None:
            ratio = 0.0
            for _ in range(_CALIBRATION_ROUNDS):
                started = self._timer()
                _dummy_for(params)
                dear = self._timer() - started
                started = self._timer()
                self._check(self._dummy, "not the dummy password")
                ratio = max(ratio, dear / max(self._timer() - started, 1e-9))
            self._ratios[params] = ratio
        return ratio

    def needs_rehash(self, stored: str) -> bool:
        """True for any hash but argon2id with the current parameters (legacy formats too)."""
        try:
            return self.hasher.check_needs_rehash(stored)
        except InvalidHashError:
            return True


def hash_kind(stored: str | None) -> str:
    """The format name of a stored hash for the audit log, ``unknown`` when it has none."""
    try:
        return legacy_hash_format(stored)
    except UnsupportedHash:
        return "unknown"


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
