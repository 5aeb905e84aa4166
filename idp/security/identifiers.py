"""Checks for the personal and organisational identifiers collected at registration.

Registration on the platform asks people for an identity document and a phone
number, and organisations for a registration code. Verifying those against the
issuing authority is slow, costs money per lookup and happens later in the
flow; most mistakes, though, are typing mistakes, and the national standards
build check characters into the numbers exactly so that such mistakes can be
caught at the keyboard. This module applies those local checks so a form can
reject a mistyped number immediately, with a reason the UI can translate.

Everything here is a pure function over strings: no Flask, no database, no
network. Reason codes returned by the ``validate_*`` functions are stable
identifiers meant to be mapped to translated messages by the caller and must
not be renamed casually.

Only ASCII digits and Latin letters are accepted as identifier characters.
Python's ``str.isdigit`` and ``\\d`` also match other scripts' digits, which
would let visually confusable input through, so the checks below spell out the
ASCII ranges explicitly.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Final

__all__ = [
    "DOCUMENT_TYPES",
    "IDENTITY_REGIONS",
    "INVALID_CHECK_DIGIT",
    "INVALID_FORMAT",
    "UNIT_KINDS",
    "UNIT_REGIONS",
    "UNKNOWN_DOCUMENT_TYPE",
    "UNKNOWN_REGION",
    "is_valid_landline",
    "is_valid_mobile",
    "is_valid_resident_id",
    "is_valid_uscc",
    "normalise_document_number",
    "normalise_mobile",
    "resident_id_check_digit",
    "uscc_check_char",
    "validate_document_number",
    "validate_unit_code",
]

# ---------------------------------------------------------------------------
# Reason codes
# ---------------------------------------------------------------------------

INVALID_CHECK_DIGIT: Final = "invalid_check_digit"
"""The number is well formed but its check character does not match: almost
always a single mistyped or swapped character, so the UI can say so."""

INVALID_FORMAT: Final = "invalid_format"
"""Wrong length, a character outside the permitted set, or an impossible
embedded date."""

UNKNOWN_DOCUMENT_TYPE: Final = "unknown_document_type"
"""The caller passed a document type that is not a key of DOCUMENT_TYPES;
this points at a programming or tampering error rather than a user typo."""

UNKNOWN_REGION: Final = "unknown_region"
"""The caller passed a unit region that is not a key of UNIT_REGIONS."""

# ---------------------------------------------------------------------------
# Code lists
# ---------------------------------------------------------------------------

# Read-only views so a caller cannot accidentally mutate the shared lists that
# drive form choices; insertion order is the order shown to users.
DOCUMENT_TYPES: Final[Mapping[str, str]] = MappingProxyType(
    {
        "resident_id": "居民身份证",
        "passport": "护照",
        "hk_macao_permit": "港澳居民来往内地通行证",
        "taiwan_permit": "台湾居民来往大陆通行证",
        "hmt_residence_permit": "港澳台居民居住证",
        "foreign_permanent_residence": "外国人永久居留身份证",
        "other": "其他",
    }
)

IDENTITY_REGIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "mainland": "中华人民共和国大陆地区",
        "hmt": "港澳台地区",
        "other": "其他",
    }
)

UNIT_REGIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "domestic": "境内",
        "hmt": "港澳台",
        "foreign": "境外",
    }
)

UNIT_KINDS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "enterprise": "企业法人",
        "social_org": "社会组织法人",
        "public_institution": "机关事业单位法人",
    }
)

_DIGITS: Final = frozenset("0123456789")


def _is_ascii_digits(value: str) -> bool:
    # Empty strings are rejected so callers need not special-case them.
    return bool(value) and all(c in _DIGITS for c in value)


# ---------------------------------------------------------------------------
# Citizen identity number, GB 11643-1999
# ---------------------------------------------------------------------------

# GB 11643-1999 §5.5: weight of position i (0-based from the left, 17 body
# digits) is 2^(17-i) mod 11, i.e. ISO 7064 MOD 11-2 weights 7 9 10 5 8 4 2 1
# 6 3 7 9 10 5 8 4 2.
_RESIDENT_ID_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))

# GB 11643-1999 §5.3 allows any real calendar date; 1800 is a floor that is
# comfortably older than any living holder while still catching junk such as
# year 0000 produced by placeholder input.
_MIN_BIRTH_YEAR: Final = 1800


def resident_id_check_digit(first17: str) -> str:
    """Return the GB 11643-1999 §5.5 check character for 17 body digits.

    Exposed separately from the validator so that test fixtures and data
    migrations can build valid numbers instead of hard-coding real people's
    identity numbers.

    Raises ValueError unless ``first17`` is exactly 17 ASCII digits, since a
    check character for anything else would be meaningless.
    """
    if len(first17) != 17 or not _is_ascii_digits(first17):
        raise ValueError("GB 11643 body must be exactly 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(first17, _RESIDENT_ID_WEIGHTS))
    check = (12 - total % 11) % 11
    # GB 11643-1999 §5.5: the value 10 is written as the Roman numeral X.
    return "X" if check == 10 else str(check)


def _is_real_birth_date(yyyymmdd: str) -> bool:
    year, month, day = int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:])
    if year < _MIN_BIRTH_YEAR:
        return False
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _gb11643_problem(value: str, *, check_birth_date: bool = True) -> str | None:
    """Reason code for an already-normalised (upper-case) 18-character number.

    Format problems are reported before the checksum so that a wrong-length
    entry is not misreported as a typo in the last character.
    """
    if len(value) != 18:
        return INVALID_FORMAT
    body, check = value[:17], value[17]
    if not _is_ascii_digits(body) or not (check in _DIGITS or check == "X"):
        return INVALID_FORMAT
    # GB 11643-1999 §5.1/§5.3: positions 7-14 carry the date of birth.
    if check_birth_date and not _is_real_birth_date(body[6:14]):
        return INVALID_FORMAT
    if resident_id_check_digit(body) != check:
        return INVALID_CHECK_DIGIT
    return None


def is_valid_resident_id(value: str) -> bool:
    """True for an 18-character citizen identity number per GB 11643-1999 §5.

    Users commonly type the check character X in lower case, so input is
    upper-cased first; surrounding whitespace is *not* tolerated here, use
    normalise_document_number for user input.
    """
    if not isinstance(value, str):
        return False
    return _gb11643_problem(value.upper()) is None


# ---------------------------------------------------------------------------
# Unified Social Credit Code, GB 32100-2015
# ---------------------------------------------------------------------------

# GB 32100-2015 §4: the code alphabet is the digits plus upper-case Latin
# letters without I, O, Z, S and V (too easily confused with 1, 0, 2, 5, U).
# A character's numeric value is its index in this string.
_USCC_ALPHABET: Final = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUES: Final[Mapping[str, int]] = MappingProxyType(
    {c: i for i, c in enumerate(_USCC_ALPHABET)}
)
# GB 32100-2015 §4 check character: weights 3^i mod 31 for positions 1-17.
_USCC_WEIGHTS: Final = tuple(pow(3, i, 31) for i in range(17))
# GB 32100-2015 §4 registration-authority codes (position 1); the set is
# deliberately a superset of the codes currently assigned so that a newly
# assigned authority does not lock its registrants out.
_USCC_REGISTRATION_AUTHORITIES: Final = frozenset("123456789ABCDEFGNY")


def uscc_check_char(first17: str) -> str:
    """Return the GB 32100-2015 check character for the first 17 characters.

    Exposed so fixtures can generate valid codes rather than borrow real
    organisations' codes. Lower case is accepted because people type it.

    Raises ValueError unless the input is 17 characters of the code alphabet.
    """
    body = first17.upper()
    if len(body) != 17 or any(c not in _USCC_VALUES for c in body):
        raise ValueError(
            "USCC body must be 17 characters of " + _USCC_ALPHABET
        )
    total = sum(_USCC_VALUES[c] * w for c, w in zip(body, _USCC_WEIGHTS))
    return _USCC_ALPHABET[(31 - total % 31) % 31]


def _uscc_problem(value: str) -> str | None:
    """Reason code for an already upper-cased candidate code."""
    if len(value) != 18 or any(c not in _USCC_VALUES for c in value):
        return INVALID_FORMAT
    # GB 32100-2015 §4: position 1 is the registration authority and
    # positions 3-8 the GB/T 2260 administrative division of the registrar.
    if value[0] not in _USCC_REGISTRATION_AUTHORITIES:
        return INVALID_FORMAT
    if not _is_ascii_digits(value[2:8]):
        return INVALID_FORMAT
    if uscc_check_char(value[:17]) != value[17]:
        return INVALID_CHECK_DIGIT
    return None


def is_valid_uscc(value: str) -> bool:
    """True for an 18-character Unified Social Credit Code (GB 32100-2015).

    The mod-31 check character detects every single-character substitution
    and every transposition of adjacent characters, so a True here means the
    code was at least copied faithfully from something valid.
    """
    if not isinstance(value, str):
        return False
    return _uscc_problem(value.upper()) is None


# ---------------------------------------------------------------------------
# Telephone numbers
# ---------------------------------------------------------------------------

# Separators people type or paste from business cards; \s also covers the
# ideographic space U+3000 produced by Chinese input methods.
_PHONE_SEPARATORS: Final = re.compile(r"[\s\-]+")
# Mainland mobile numbering plan: 11 digits, 1 followed by 3-9.
_MAINLAND_MOBILE: Final = re.compile(r"1[3-9][0-9]{9}")
# +86, 0086 (international dialling prefix) and bare 86 all denote China.
_MAINLAND_MOBILE_WITH_CC: Final = re.compile(r"(?:\+86|0086|86)(1[3-9][0-9]{9})")
# ITU-T E.164 §6: at most 15 digits including the country code, which never
# starts with 0; 8 is a practical lower bound for a real subscriber number.
_E164: Final = re.compile(r"\+([1-9][0-9]{7,14})")


def normalise_mobile(value: str) -> str | None:
    """Return the canonical form of a mobile number, or None if invalid.

    Mainland numbers are stored as the bare 11 digits because that is how SMS
    gateways and the real-name registry key them, whichever prefix the user
    typed. Other countries keep the E.164 ``+`` form so the country code is
    never lost. A ``+86`` number that is not a valid mainland mobile is
    rejected rather than kept as international: it cannot receive our SMS.
    """
    if not isinstance(value, str):
        return None
    compact = _PHONE_SEPARATORS.sub("", value)
    if _MAINLAND_MOBILE.fullmatch(compact):
        return compact
    match = _MAINLAND_MOBILE_WITH_CC.fullmatch(compact)
    if match:
        return match.group(1)
    match = _E164.fullmatch(compact)
    if match and not match.group(1).startswith("86"):
        return "+" + match.group(1)
    return None


def is_valid_mobile(value: object) -> bool:
    """Yes/no form for validators that do not need the canonical value.

    Delegates to normalise_mobile so the two can never disagree about what a
    valid number is.
    """
    return isinstance(value, str) and normalise_mobile(value) is not None


_LANDLINE: Final = re.compile(r"\+?[0-9 ()\-]+")


def is_valid_landline(value: object) -> bool:
    """Loose check for an office telephone number.

    Landline formats (area codes, extensions, international prefixes) vary too
    much to validate structurally, and the number is only ever shown to staff,
    so this merely keeps out obvious garbage.
    """
    if not isinstance(value, str):
        return False
    candidate = value.strip()
    if not _LANDLINE.fullmatch(candidate):
        return False
    digits = sum(1 for c in candidate if c in _DIGITS)
    return 6 <= digits <= 20


# ---------------------------------------------------------------------------
# Identity documents
# ---------------------------------------------------------------------------

# Mainland travel permit for Hong Kong/Macao residents (回乡证): H for Hong
# Kong, M for Macao; the card generation has 8 digits, the older booklet 10.
_HK_MACAO_PERMIT: Final = re.compile(r"[HM](?:[0-9]{8}|[0-9]{10})")
# Mainland travel permit for Taiwan residents (台胞证): 8 digits on the card,
# 10 on older documents, sometimes shown with a leading letter.
_TAIWAN_PERMIT: Final = re.compile(r"[A-Z]?(?:[0-9]{8}|[0-9]{10})")
# Passport numbers differ by issuing state; ICAO 9303 allows up to 9 characters
# in the MRZ but some states print longer numbers, hence the generous range.
_PASSPORT: Final = re.compile(r"[A-Z0-9]{5,17}")
# 2017 edition foreign permanent residence ID: ISO 3166-1 alpha-3 nationality
# followed by 12 digits.
_FOREIGN_PR_OLD: Final = re.compile(r"[A-Z]{3}[0-9]{12}")
_OTHER_DOCUMENT: Final = re.compile(r"[A-Z0-9\-]{4,30}")


def normalise_document_number(number: str) -> str:
    """Canonical form used for both validation and storage.

    Numbers are copied from cards that print them in groups, and lower-case
    letters are common on phones; normalising before storing means the same
    document always compares equal, which duplicate-account detection relies
    on.
    """
    return "".join(number.split()).upper()


def _hmt_residence_permit_problem(number: str) -> str | None:
    # Residence permits for Hong Kong, Macao and Taiwan residents use a
    # GB 11643 number whose address code is 810000, 820000 or 830000
    # respectively (港澳台居民居住证申领发放办法, 国办发〔2018〕81号).
    if not number.startswith(("81", "82", "83")):
        return INVALID_FORMAT
    return _gb11643_problem(number)


def _passport_problem(number: str) -> str | None:
    return None if _PASSPORT.fullmatch(number) else INVALID_FORMAT


def _hk_macao_permit_problem(number: str) -> str | None:
    return None if _HK_MACAO_PERMIT.fullmatch(number) else INVALID_FORMAT


def _taiwan_permit_problem(number: str) -> str | None:
    return None if _TAIWAN_PERMIT.fullmatch(number) else INVALID_FORMAT


def _foreign_permanent_residence_problem(number: str) -> str | None:
    if _FOREIGN_PR_OLD.fullmatch(number):
        return None
    # 2023 edition (National Immigration Administration, 新版外国人永久居留
    # 身份证机读信息规则 §二): 18 characters, leading 9 as the foreigner
    # marker, check character computed as in GB 11643-1999 §5.5. Only the
    # check character is verified; the embedded fields are not relied on.
    if len(number) == 18 and number.startswith("9"):
        return _gb11643_problem(number, check_birth_date=False)
    return INVALID_FORMAT


def _other_document_problem(number: str) -> str | None:
    return None if _OTHER_DOCUMENT.fullmatch(number) else INVALID_FORMAT


_DOCUMENT_VALIDATORS: Final[Mapping[str, Callable[[str], str | None]]] = (
    MappingProxyType(
        {
            "resident_id": _gb11643_problem,
            "passport": _passport_problem,
            "hk_macao_permit": _hk_macao_permit_problem,
            "taiwan_permit": _taiwan_permit_problem,
            "hmt_residence_permit": _hmt_residence_permit_problem,
            "foreign_permanent_residence": _foreign_permanent_residence_problem,
            "other": _other_document_problem,
        }
    )
)


def validate_document_number(document_type: str, number: str) -> str | None:
    """Return a reason code if ``number`` cannot be a ``document_type``, else None.

    The number is checked in its normalise_document_number form, so callers
    should store that form too; otherwise a value that validated here could
    be stored with spaces or lower-case letters.
    """
    if not isinstance(document_type, str):
        return UNKNOWN_DOCUMENT_TYPE
    check = _DOCUMENT_VALIDATORS.get(document_type)
    if check is None:
        return UNKNOWN_DOCUMENT_TYPE
    if not isinstance(number, str):
        return INVALID_FORMAT
    return check(normalise_document_number(number))


# ---------------------------------------------------------------------------
# Organisation registration codes
# ---------------------------------------------------------------------------

# Home-jurisdiction registration numbers (e.g. a Hong Kong Business
# Registration number or a foreign company number) have no common structure;
# allow the separators they are usually printed with, but not at either end.
_FOREIGN_UNIT_CODE: Final = re.compile(
    r"[A-Za-z0-9\-/.](?:[A-Za-z0-9\-/. ]*[A-Za-z0-9\-/.])?"
)


def validate_unit_code(region: str, code: str) -> str | None:
    """Return a reason code if ``code`` is not a plausible code for ``region``.

    Mainland units must present a Unified Social Credit Code, which carries a
    check character; units outside the mainland register with whatever their
    home jurisdiction issues, so only the character set and length are
    checked. Surrounding whitespace is ignored and, for USCCs, lower case is
    accepted; callers should store ``code.strip()`` (upper-cased for
    ``domestic``).
    """
    if not isinstance(region, str) or region not in UNIT_REGIONS:
        return UNKNOWN_REGION
    if not isinstance(code, str):
        return INVALID_FORMAT
    candidate = code.strip()
    if region == "domestic":
        return _uscc_problem(candidate.upper())
    # "hmt" and "foreign"
    if 4 <= len(candidate) <= 40 and _FOREIGN_UNIT_CODE.fullmatch(candidate):
        return None
    return INVALID_FORMAT
