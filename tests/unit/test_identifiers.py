"""Unit tests for idp.security.identifiers.

The sample numbers below are either the worked examples published alongside
GB 11643-1999 / GB 32100-2015 or synthetic numbers built for these tests; none
belongs to a real person.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idp.security.identifiers import (
    DOCUMENT_TYPES,
    IDENTITY_REGIONS,
    INVALID_CHECK_DIGIT,
    INVALID_FORMAT,
    UNIT_KINDS,
    UNIT_REGIONS,
    UNKNOWN_DOCUMENT_TYPE,
    UNKNOWN_REGION,
    is_valid_landline,
    is_valid_mobile,
    is_valid_resident_id,
    is_valid_uscc,
    normalise_document_number,
    normalise_mobile,
    resident_id_check_digit,
    uscc_check_char,
    validate_document_number,
    validate_unit_code,
)

DIGITS = "0123456789"
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_REGISTRATION_AUTHORITIES = "123456789ABCDEFGNY"

# Published tables, written out literally so the tests do not share the
# module's way of deriving them.
GB11643_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
GB11643_CHECK_BY_REMAINDER = "10X98765432"
GB32100_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


# ---------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------

birth_dates = st.dates(
    min_value=datetime.date(1800, 1, 1), max_value=datetime.date(9999, 12, 31)
)


@st.composite
def resident_id_bodies(draw: st.DrawFn) -> str:
    """17 digits whose positions 7-14 form a real date."""
    address = draw(st.text(alphabet=DIGITS, min_size=6, max_size=6))
    birth = draw(birth_dates).strftime("%Y%m%d")
    sequence = draw(st.text(alphabet=DIGITS, min_size=3, max_size=3))
    return address + birth + sequence


@st.composite
def uscc_bodies(draw: st.DrawFn) -> str:
    """17 characters with a valid registration authority and division."""
    authority = draw(st.sampled_from(USCC_REGISTRATION_AUTHORITIES))
    kind = draw(st.sampled_from(USCC_ALPHABET))
    division = draw(st.text(alphabet=DIGITS, min_size=6, max_size=6))
    subject = draw(st.text(alphabet=USCC_ALPHABET, min_size=9, max_size=9))
    return authority + kind + division + subject


def substitutions(value: str, position: int, alphabet: str):
    for replacement in alphabet:
        if replacement != value[position]:
            yield value[:position] + replacement + value[position + 1 :]


# ---------------------------------------------------------------------------
# GB 11643-1999 citizen identity numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["11010519491231002X", "440524188001010014"])
def test_known_good_resident_id_is_valid(value):
    assert is_valid_resident_id(value)


def test_known_bad_resident_id_is_invalid():
    assert not is_valid_resident_id("110105194912310021")


def test_lower_case_x_check_char_is_accepted():
    assert is_valid_resident_id("11010519491231002x")


@pytest.mark.parametrize(
    ("body", "expected"),
    [("11010519491231002", "X"), ("44052418800101001", "4")],
)
def test_resident_id_check_digit_matches_published_examples(body, expected):
    assert resident_id_check_digit(body) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "11010519491231002",  # 17 characters
        "11010519491231002X0",  # 19 characters
        "11010519491231002Y",  # check char outside 0-9/X
        "1101051949123100X2",  # X in a body position
        "110105194902300012",  # 30 February, correct check digit
        "110105194913010015",  # month 13
        "110105179912310015",  # year before 1800
        "1101051949123100٢X",  # Arabic-Indic digit
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width digits
        " 11010519491231002X",  # surrounding whitespace is not normalised
    ],
)
def test_malformed_resident_id_is_invalid(value):
    assert not is_valid_resident_id(value)


def test_non_string_resident_id_is_invalid():
    assert not is_valid_resident_id(None)  # type: ignore[arg-type]
    assert not is_valid_resident_id(11010519491231002)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    ["", "1101051949123100", "1101051949123100A", "110105194912310021"],
)
def test_resident_id_check_digit_rejects_anything_but_17_digits(body):
    with pytest.raises(ValueError):
        resident_id_check_digit(body)


@given(resident_id_bodies())
def test_resident_id_check_digit_agrees_with_the_published_table(body):
    remainder = sum(int(c) * w for c, w in zip(body, GB11643_WEIGHTS)) % 11
    assert resident_id_check_digit(body) == GB11643_CHECK_BY_REMAINDER[remainder]


@given(resident_id_bodies())
def test_appending_the_check_digit_gives_a_valid_resident_id(body):
    assert is_valid_resident_id(body + resident_id_check_digit(body))


@given(resident_id_bodies())
def test_changing_any_single_resident_id_character_makes_it_invalid(body):
    value = body + resident_id_check_digit(body)
    for position in range(17):
        for mutated in substitutions(value, position, DIGITS):
            assert not is_valid_resident_id(mutated), mutated
    for mutated in substitutions(value, 17, DIGITS + "X"):
        assert not is_valid_resident_id(mutated), mutated


# ---------------------------------------------------------------------------
# GB 32100-2015 Unified Social Credit Codes
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["91350100M000100Y43", "91110000600037341L"])
def test_known_good_uscc_is_valid(value):
    assert is_valid_uscc(value)


def test_known_bad_uscc_is_invalid():
    assert not is_valid_uscc("91350100M000100Y4Z")


def test_uscc_with_wrong_check_char_from_the_alphabet_is_invalid():
    assert not is_valid_uscc("91350100M000100Y44")


def test_lower_case_uscc_is_accepted():
    assert is_valid_uscc("91350100m000100y43")
    assert is_valid_uscc("91110000600037341l")


@pytest.mark.parametrize(
    ("body", "expected"),
    [("91350100M000100Y4", "3"), ("91110000600037341", "L")],
)
def test_uscc_check_char_matches_known_codes(body, expected):
    assert uscc_check_char(body) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "91350100M000100Y4",  # 17 characters
        "91350100M000100Y433",  # 19 characters
        "91350100I000100Y43",  # I is not in the alphabet
        "91350100O000100Y43",  # O is not in the alphabet
        "01350100M000100Y4C",  # registration authority 0, correct check char
        "91AB0100M000100Y4T",  # letters in the division, correct check char
        "91350100M000100Y4３",  # full-width digit
    ],
)
def test_malformed_uscc_is_invalid(value):
    assert not is_valid_uscc(value)


def test_non_string_uscc_is_invalid():
    assert not is_valid_uscc(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "body",
    ["", "91350100M000100Y", "91350100M000100YZ", "91350100M000100Y43"],
)
def test_uscc_check_char_rejects_anything_but_17_alphabet_chars(body):
    with pytest.raises(ValueError):
        uscc_check_char(body)


@given(uscc_bodies())
def test_uscc_check_char_agrees_with_the_published_weights(body):
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(body, GB32100_WEIGHTS))
    assert uscc_check_char(body) == USCC_ALPHABET[(31 - total % 31) % 31]


@given(uscc_bodies())
def test_appending_the_check_char_gives_a_valid_uscc(body):
    assert is_valid_uscc(body + uscc_check_char(body))


@given(uscc_bodies())
def test_any_single_uscc_substitution_makes_it_invalid(body):
    value = body + uscc_check_char(body)
    for position in range(18):
        for mutated in substitutions(value, position, USCC_ALPHABET):
            assert not is_valid_uscc(mutated), mutated


@given(uscc_bodies())
def test_transposing_adjacent_different_uscc_chars_is_detected(body):
    value = body + uscc_check_char(body)
    for position in range(17):
        a, b = value[position], value[position + 1]
        if a == b:
            continue
        swapped = value[:position] + b + a + value[position + 2 :]
        assert not is_valid_uscc(swapped), swapped


# ---------------------------------------------------------------------------
# Telephone numbers
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("13800138000", "13800138000"),
        ("+86 138-0013-8000", "13800138000"),
        ("008613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("+8613800138000", "13800138000"),
        (" 199 0000 0000 ", "19900000000"),
        ("138\u30000013\u30008000", "13800138000"),  # ideographic spaces
        ("+85291234567", "+85291234567"),
        ("+853 6612 3456", "+85366123456"),
        ("+886 912-345-678", "+886912345678"),
        ("+1 415-555-2671", "+14155552671"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_valid_mobile_is_normalised(raw, expected):
    assert normalise_mobile(raw) == expected
    assert is_valid_mobile(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "12800138000",  # 12x is not a mobile prefix
        "10800138000",
        "1380013800",  # 10 digits
        "138001380000",  # 12 digits
        "+8612800138000",
        "+86 10 6512 3456",  # Beijing landline under +86 is not kept as international
        "85291234567",  # foreign number without +
        "+0123456789",  # country codes never start with 0
        "+1234567",  # 7 digits after +
        "+1234567890123456",  # 16 digits after +
        "138 0013 800O",  # letter O
        "(138)00138000",  # parentheses are not stripped
        "１３８００１３８０００",  # full-width digits
        "++8613800138000",
    ],
)
def test_invalid_mobile_is_rejected(raw):
    assert normalise_mobile(raw) is None
    assert not is_valid_mobile(raw)


@pytest.mark.parametrize("value", [None, 13800138000, b"13800138000"])
def test_non_string_mobile_is_rejected(value):
    assert normalise_mobile(value) is None  # type: ignore[arg-type]
    assert not is_valid_mobile(value)


@given(
    st.sampled_from("3456789"),
    st.text(alphabet=DIGITS, min_size=9, max_size=9),
    st.sampled_from(["", "+86", "86", "0086", "+86 ", "0086-"]),
)
def test_every_spelling_of_a_mainland_mobile_normalises_to_eleven_digits(second, rest, prefix):
    bare = "1" + second + rest
    spelled = prefix + bare[:3] + " " + bare[3:7] + "-" + bare[7:]
    assert normalise_mobile(spelled) == bare
    assert normalise_mobile(bare) == bare


@pytest.mark.parametrize(
    "value",
    [
        "010-65123456",
        "(010) 6512 3456",
        "+86 10 6512 3456",
        "0755-1234-5678",
        "123456",
        "12345678901234567890",  # 20 digits
        " 010-65123456 ",
    ],
)
def test_valid_landline_is_accepted(value):
    assert is_valid_landline(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "12345",  # 5 digits
        "123456789012345678901",  # 21 digits
        "010-6512-3456 ext 8",
        "010+65123456",  # + only allowed at the start
        "+",
        "(((---)))",
        "010.6512.3456",
        None,
        10_65123456,
    ],
)
def test_invalid_landline_is_rejected(value):
    assert not is_valid_landline(value)


# ---------------------------------------------------------------------------
# Identity documents
# ---------------------------------------------------------------------------


def test_document_types_are_listed_in_display_order_with_chinese_names():
    assert list(DOCUMENT_TYPES.items()) == [
        ("resident_id", "居民身份证"),
        ("passport", "护照"),
        ("hk_macao_permit", "港澳居民来往内地通行证"),
        ("taiwan_permit", "台湾居民来往大陆通行证"),
        ("hmt_residence_permit", "港澳台居民居住证"),
        ("foreign_permanent_residence", "外国人永久居留身份证"),
        ("other", "其他"),
    ]


def test_identity_regions_are_listed_in_display_order_with_chinese_names():
    assert list(IDENTITY_REGIONS.items()) == [
        ("mainland", "中华人民共和国大陆地区"),
        ("hmt", "港澳台地区"),
        ("other", "其他"),
    ]


def test_code_lists_cannot_be_modified_by_callers():
    for mapping in (DOCUMENT_TYPES, IDENTITY_REGIONS, UNIT_REGIONS, UNIT_KINDS):
        with pytest.raises(TypeError):
            mapping["new"] = "新"  # type: ignore[index]


@pytest.mark.parametrize("document_type", list(DOCUMENT_TYPES))
def test_every_document_type_has_a_validator(document_type):
    assert validate_document_number(document_type, "") != UNKNOWN_DOCUMENT_TYPE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("11010519491231002x", "11010519491231002X"),
        ("  e 1234 5678\t", "E12345678"),
        ("1101 0519 4912 3100 2X", "11010519491231002X"),
        ("h\u300012345678", "H12345678"),
    ],
)
def test_document_numbers_are_normalised_for_storage(raw, expected):
    assert normalise_document_number(raw) == expected


GOOD_DOCUMENTS = [
    ("resident_id", "11010519491231002X"),
    ("resident_id", "440524188001010014"),
    ("resident_id", "11010519491231002x"),
    ("resident_id", " 110105 19491231 002X "),
    ("hmt_residence_permit", "810000199408230021"),
    ("hmt_residence_permit", "820000200001010016"),
    ("hmt_residence_permit", "830000198512310047"),
    ("passport", "E12345678"),
    ("passport", "g1234567"),
    ("passport", "12345"),
    ("passport", "A" * 17),
    ("hk_macao_permit", "H12345678"),
    ("hk_macao_permit", "M1234567890"),
    ("hk_macao_permit", "h 1234 5678"),
    ("taiwan_permit", "12345678"),
    ("taiwan_permit", "1234567890"),
    ("taiwan_permit", "T12345678"),
    ("foreign_permanent_residence", "USA123456789012"),
    ("foreign_permanent_residence", "gbr123456789012"),
    ("foreign_permanent_residence", "91184019850101001X"),
    # Only the check character of the 2023 form is relied on, not its fields.
    ("foreign_permanent_residence", "91184000000000001X"),
    ("other", "AB-1234"),
    ("other", "1234"),
    ("other", "X" * 30),
]


@pytest.mark.parametrize(("document_type", "number"), GOOD_DOCUMENTS)
def test_good_document_number_is_accepted(document_type, number):
    assert validate_document_number(document_type, number) is None


BAD_DOCUMENTS = [
    ("resident_id", "110105194912310021", INVALID_CHECK_DIGIT),
    ("resident_id", "440524188001010015", INVALID_CHECK_DIGIT),
    ("resident_id", "11010519491231002", INVALID_FORMAT),
    ("resident_id", "110105194902300012", INVALID_FORMAT),  # 30 February
    ("resident_id", "11010519491231002Y", INVALID_FORMAT),
    ("resident_id", "", INVALID_FORMAT),
    ("hmt_residence_permit", "11010519491231002X", INVALID_FORMAT),  # mainland number
    ("hmt_residence_permit", "810000199408230022", INVALID_CHECK_DIGIT),
    ("hmt_residence_permit", "84000019940823002X", INVALID_FORMAT),
    ("hmt_residence_permit", "81000019940823002", INVALID_FORMAT),
    ("passport", "E123", INVALID_FORMAT),
    ("passport", "A" * 18, INVALID_FORMAT),
    ("passport", "E1234-5678", INVALID_FORMAT),
    ("passport", "护照12345", INVALID_FORMAT),
    ("hk_macao_permit", "H1234567", INVALID_FORMAT),
    ("hk_macao_permit", "H123456789", INVALID_FORMAT),
    ("hk_macao_permit", "X12345678", INVALID_FORMAT),
    ("hk_macao_permit", "12345678", INVALID_FORMAT),
    ("taiwan_permit", "1234567", INVALID_FORMAT),
    ("taiwan_permit", "123456789", INVALID_FORMAT),
    ("taiwan_permit", "AB12345678", INVALID_FORMAT),
    ("foreign_permanent_residence", "US1234567890123", INVALID_FORMAT),
    ("foreign_permanent_residence", "USA12345678901", INVALID_FORMAT),
    ("foreign_permanent_residence", "911840198501010010", INVALID_CHECK_DIGIT),
    ("foreign_permanent_residence", "11010519491231002X", INVALID_FORMAT),  # not starting with 9
    ("foreign_permanent_residence", "9118401985010100A0", INVALID_FORMAT),
    ("other", "ABC", INVALID_FORMAT),
    ("other", "X" * 31, INVALID_FORMAT),
    ("other", "AB_1234", INVALID_FORMAT),
    ("other", "证件1234", INVALID_FORMAT),
]


@pytest.mark.parametrize(("document_type", "number", "reason"), BAD_DOCUMENTS)
def test_bad_document_number_is_rejected_with_a_stable_reason(document_type, number, reason):
    assert validate_document_number(document_type, number) == reason


@pytest.mark.parametrize("document_type", ["driving_licence", "", "RESIDENT_ID", None])
def test_unknown_document_type_is_reported(document_type):
    assert validate_document_number(document_type, "11010519491231002X") == UNKNOWN_DOCUMENT_TYPE


def test_non_string_document_number_is_a_format_error():
    assert validate_document_number("passport", None) == INVALID_FORMAT  # type: ignore[arg-type]


@given(resident_id_bodies())
def test_generated_resident_ids_pass_document_validation(body):
    assert validate_document_number("resident_id", body + resident_id_check_digit(body)) is None


# ---------------------------------------------------------------------------
# Organisation registration codes
# ---------------------------------------------------------------------------


def test_unit_code_lists_hold_the_expected_chinese_names():
    assert dict(UNIT_REGIONS) == {"domestic": "境内", "hmt": "港澳台", "foreign": "境外"}
    assert dict(UNIT_KINDS) == {
        "enterprise": "企业法人",
        "social_org": "社会组织法人",
        "public_institution": "机关事业单位法人",
    }


@pytest.mark.parametrize(
    ("region", "code"),
    [
        ("domestic", "91350100M000100Y43"),
        ("domestic", "91110000600037341L"),
        ("domestic", "91110000600037341l"),
        ("domestic", " 91350100M000100Y43 "),
        ("domestic", "Y1110000MA01ABCD23"),
        ("hmt", "12345678"),
        ("hmt", "1234"),
        ("hmt", "12345678-000-05-23-0"),
        ("foreign", "HRB 123456"),
        ("foreign", "C-12/34.5"),
        ("foreign", "  Company No. 01234567  "),
        ("foreign", "A" * 40),
    ],
)
def test_good_unit_code_is_accepted(region, code):
    assert validate_unit_code(region, code) is None


@pytest.mark.parametrize(
    ("region", "code", "reason"),
    [
        ("domestic", "91350100M000100Y44", INVALID_CHECK_DIGIT),
        ("domestic", "91350100M000100Y4Z", INVALID_FORMAT),
        ("domestic", "91350100M000100Y4", INVALID_FORMAT),
        ("domestic", "01350100M000100Y4C", INVALID_FORMAT),
        ("domestic", "91AB0100M000100Y4T", INVALID_FORMAT),
        ("domestic", "12345678", INVALID_FORMAT),
        ("domestic", "", INVALID_FORMAT),
        ("hmt", "ABC", INVALID_FORMAT),
        ("hmt", "A" * 41, INVALID_FORMAT),
        ("hmt", "ABC_123", INVALID_FORMAT),
        ("hmt", "公司1234", INVALID_FORMAT),
        ("foreign", "AB@1234", INVALID_FORMAT),
        ("foreign", "AB\t1234", INVALID_FORMAT),
        ("foreign", "    ", INVALID_FORMAT),
        ("foreign", None, INVALID_FORMAT),
    ],
)
def test_bad_unit_code_is_rejected_with_a_stable_reason(region, code, reason):
    assert validate_unit_code(region, code) == reason


@pytest.mark.parametrize("region", ["mainland", "", "DOMESTIC", None])
def test_unknown_unit_region_is_reported(region):
    assert validate_unit_code(region, "91350100M000100Y43") == UNKNOWN_REGION


@given(uscc_bodies())
def test_generated_usccs_pass_domestic_unit_validation(body):
    assert validate_unit_code("domestic", body + uscc_check_char(body)) is None
