"""Personal data protection: the keyring (AES-GCM, rotation, blind index) and masking."""

from __future__ import annotations

import json
import stat
from datetime import date

import pytest
from cryptography.exceptions import InvalidTag

from idp.security.pii import (
    Keyring,
    KeyringError,
    mask_date,
    mask_document,
    mask_email,
    mask_phone,
    mask_text,
)

# Either is acceptable as "does not decrypt"; what matters is that no plaintext comes back.
DECRYPT_FAILURES = (KeyringError, InvalidTag)


@pytest.fixture
def ring_path(tmp_path):
    return tmp_path / "pii-keyring.json"


@pytest.fixture
def ring(ring_path) -> Keyring:
    return Keyring.load(ring_path, create=True)


# --- keyring file ------------------------------------------------------------------------


def test_load_creates_a_private_keyring_file_when_asked(ring, ring_path):
    assert ring_path.exists()
    assert stat.S_IMODE(ring_path.stat().st_mode) == 0o600
    data = json.loads(ring_path.read_text())
    assert data["active"] == ring.active == "k1"
    assert set(data["keys"]) == {"k1"}


def test_load_refuses_a_missing_keyring_unless_asked_to_create(tmp_path):
    with pytest.raises(KeyringError):
        Keyring.load(tmp_path / "absent.json", create=False)
    assert not (tmp_path / "absent.json").exists()


def test_a_reloaded_keyring_decrypts_what_the_first_encrypted(ring, ring_path):
    token = ring.encrypt("13800138000", "accounts.phone")
    again = Keyring.load(ring_path, create=False)
    assert again.decrypt(token, "accounts.phone") == "13800138000"


def test_an_active_key_outside_the_ring_is_refused():
    with pytest.raises(KeyringError):
        Keyring({"k1": b"\0" * 32}, "k2", b"\1" * 32)


# --- encryption --------------------------------------------------------------------------


@pytest.mark.parametrize("plaintext", [
    "13800138000", "11010519491231002X", "zhang.san@example.com", "北京市东城区东长安街1号", "", "😀",
])
def test_encrypt_then_decrypt_gives_back_the_plaintext(ring, plaintext):
    token = ring.encrypt(plaintext, "accounts.address")
    assert ring.decrypt(token, "accounts.address") == plaintext


def test_the_ciphertext_hides_the_plaintext_and_names_its_key(ring):
    token = ring.encrypt("11010519491231002X", "accounts.document_number")
    assert "11010519491231002X" not in token
    assert token.startswith("v1.k1.")
    assert ring.key_id_of(token) == "k1"


def test_the_same_plaintext_encrypts_differently_each_time(ring):
    assert ring.encrypt("13800138000", "accounts.phone") != ring.encrypt("13800138000", "accounts.phone")


def test_a_ciphertext_does_not_decrypt_under_another_context(ring):
    token = ring.encrypt("13800138000", "accounts.phone")
    with pytest.raises(DECRYPT_FAILURES):
        ring.decrypt(token, "accounts.landline")


def test_a_tampered_ciphertext_does_not_decrypt(ring):
    token = ring.encrypt("13800138000", "accounts.phone")
    prefix, body = token.rsplit(".", 1)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    with pytest.raises(DECRYPT_FAILURES):
        ring.decrypt(f"{prefix}.{flipped}", "accounts.phone")


@pytest.mark.parametrize("token", ["garbage", "v1.k9.AAAA", "v2.k1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"])
def test_a_malformed_or_unknown_ciphertext_raises_keyring_error(ring, token):
    with pytest.raises(KeyringError):
        ring.decrypt(token, "accounts.phone")


def test_another_keyring_cannot_decrypt(ring, tmp_path):
    other = Keyring.load(tmp_path / "other.json", create=True)
    token = ring.encrypt("13800138000", "accounts.phone")
    with pytest.raises(DECRYPT_FAILURES):
        other.decrypt(token, "accounts.phone")


# --- rotation ----------------------------------------------------------------------------


def test_add_key_makes_a_new_active_key_and_old_ciphertexts_still_decrypt(ring):
    old = ring.encrypt("13800138000", "accounts.phone")
    kid = ring.add_key()
    assert kid == "k2"
    assert ring.active == "k2"
    new = ring.encrypt("13800138000", "accounts.phone")
    assert ring.key_id_of(old) == "k1"
    assert ring.key_id_of(new) == "k2"
    assert ring.decrypt(old, "accounts.phone") == "13800138000"
    assert ring.decrypt(new, "accounts.phone") == "13800138000"


def test_rotation_survives_saving_and_reloading(ring, ring_path):
    old = ring.encrypt("a@example.com", "accounts.email")
    ring.add_key()
    ring.save()
    again = Keyring.load(ring_path, create=False)
    assert again.active == "k2"
    assert again.decrypt(old, "accounts.email") == "a@example.com"
    assert again.key_id_of(again.encrypt("x", "accounts.email")) == "k2"


def test_key_ids_keep_counting_up(ring):
    assert [ring.add_key(), ring.add_key(), ring.add_key()] == ["k2", "k3", "k4"]
    ring.retire_inactive()
    assert ring.add_key() == "k5"


def test_retire_inactive_drops_old_keys_and_their_ciphertexts_no_longer_decrypt(ring):
    old = ring.encrypt("13800138000", "accounts.phone")
    ring.add_key()
    new = ring.encrypt("13800138000", "accounts.phone")
    assert ring.retire_inactive() == ["k1"]
    assert set(ring.keys) == {"k2"}
    assert ring.decrypt(new, "accounts.phone") == "13800138000"
    with pytest.raises(KeyringError):
        ring.decrypt(old, "accounts.phone")


def test_retire_inactive_keeps_the_active_key_when_it_is_the_only_one(ring):
    assert ring.retire_inactive() == []
    assert set(ring.keys) == {"k1"}


# --- following the keyring file while running (idp pii rotate-key in another process) --------


class Ticker:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticker() -> Ticker:
    return Ticker()


@pytest.fixture
def server(ring, ring_path, ticker) -> Keyring:
    """The keyring of a running server, loaded before the rotation."""
    return Keyring.load(ring_path, create=False, monotonic=ticker)


def rotate_elsewhere(ring_path, retire: bool) -> Keyring:
    """What ``idp pii rotate-key [--retire-old]`` does to the file, from its own process."""
    cli = Keyring.load(ring_path, create=False)
    cli.add_key()
    cli.save()
    if retire:
        cli.retire_inactive()
        cli.save()
    return cli


def test_a_running_keyring_encrypts_with_the_new_key_once_the_file_changed(server, ring_path, ticker):
    rotate_elsewhere(ring_path, retire=True)
    ticker.now += server.reload_interval
    token = server.encrypt("13800138000", "accounts.phone")
    assert server.key_id_of(token) == "k2"
    assert set(server.keys) == {"k2"}
    # and the command's own keyring (anyone reading the file) decrypts it
    assert Keyring.load(ring_path, create=False).decrypt(token, "accounts.phone") == "13800138000"


def test_the_keyring_looks_at_the_file_at_most_once_per_interval(server, ring_path, ticker):
    rotate_elsewhere(ring_path, retire=False)
    ticker.now += server.reload_interval / 2
    assert server.key_id_of(server.encrypt("x", "accounts.email")) == "k1"  # not looked yet
    ticker.now += server.reload_interval / 2
    assert server.key_id_of(server.encrypt("x", "accounts.email")) == "k2"


def test_a_value_written_with_a_key_not_yet_seen_is_decrypted_at_once(server, ring_path):
    cli = rotate_elsewhere(ring_path, retire=False)
    token = cli.encrypt("13800138000", "accounts.phone")  # another process, already on k2
    assert server.decrypt(token, "accounts.phone") == "13800138000"  # no waiting for the interval
    assert server.active == "k2"


def test_the_index_follows_a_new_index_key_in_the_file(server, ring_path, ticker, tmp_path):
    other = Keyring.load(tmp_path / "other.json", create=True)
    before = server.index("13800138000", "phone")
    ring_path.write_text((tmp_path / "other.json").read_text())
    ticker.now += server.reload_interval
    assert server.index("13800138000", "phone") == other.index("13800138000", "phone") != before


@pytest.mark.parametrize("content", ["", "{not json", '{"active": "k9", "keys": {}, "index_key": ""}'],
                         ids=["empty", "truncated", "active key missing"])
def test_a_broken_keyring_file_keeps_the_keys_in_memory(server, ring_path, ticker, content):
    token = server.encrypt("13800138000", "accounts.phone")
    ring_path.write_text(content)
    ticker.now += server.reload_interval
    assert server.decrypt(token, "accounts.phone") == "13800138000"
    assert server.key_id_of(server.encrypt("x", "accounts.email")) == "k1"


# --- blind index -------------------------------------------------------------------------


def test_the_index_is_deterministic(ring, ring_path):
    first = ring.index("13800138000", "phone")
    assert ring.index("13800138000", "phone") == first
    assert Keyring.load(ring_path, create=False).index("13800138000", "phone") == first
    assert len(first) == 64 and all(c in "0123456789abcdef" for c in first)
    assert "13800138000" not in first


def test_the_index_separates_kinds(ring):
    assert ring.index("11010519491231002X", "document") != ring.index("11010519491231002X", "phone")


def test_the_index_separates_values(ring):
    assert ring.index("13800138000", "phone") != ring.index("13800138001", "phone")


def test_the_index_does_not_change_when_the_encryption_key_rotates(ring):
    before = ring.index("13800138000", "phone")
    ring.add_key()
    ring.retire_inactive()
    assert ring.index("13800138000", "phone") == before


def test_the_index_depends_on_the_index_key(ring, tmp_path):
    other = Keyring.load(tmp_path / "other.json", create=True)
    assert other.index("13800138000", "phone") != ring.index("13800138000", "phone")


# --- masks -------------------------------------------------------------------------------


@pytest.mark.parametrize("value, masked", [
    ("11010519491231002X", "110105********002X"),
    ("110105194912310021", "110105********0021"),
    ("110105491231002", "110105*****1002"),   # old 15-digit ID
])
def test_an_id_card_number_shows_the_first_6_and_last_4(value, masked):
    assert mask_document(value) == masked


def test_a_short_document_number_shows_2_and_2():
    assert mask_document("E12345678") == "E1*****78"


def test_a_mainland_mobile_number_shows_3_and_4():
    assert mask_phone("13800138000") == "138****8000"


def test_an_international_phone_number_is_masked_in_the_middle():
    masked = mask_phone("+85291234567")
    assert masked.startswith("+852") and masked.endswith("4567")
    assert "9123" not in masked


@pytest.mark.parametrize("value, masked", [
    ("zhang.san@example.com", "z***@example.com"),
    ("a@example.cn", "a***@example.cn"),
])
def test_an_email_keeps_the_first_letter_and_the_domain(value, masked):
    assert mask_email(value) == masked


@pytest.mark.parametrize("value", ["1949-12-31", date(1949, 12, 31)])
def test_a_date_shows_only_its_year(value):
    assert mask_date(value) == "1949-**-**"


def test_an_address_shows_only_its_beginning():
    address = "北京市东城区东长安街1号"
    masked = mask_text(address)
    assert masked.endswith("****")
    assert address.startswith(masked.removesuffix("****"))
    assert len(masked.removesuffix("****")) < len(address) // 2
    assert "东长安街1号" not in masked


def test_a_long_address_shows_at_most_6_characters():
    assert mask_text("福建省福州市鼓楼区五四路一百二十八号恒力城三十层") == "福建省福州市****"


@pytest.mark.parametrize("mask", [mask_document, mask_phone, mask_email, mask_date, mask_text])
@pytest.mark.parametrize("empty", [None, ""])
def test_absent_values_mask_to_an_empty_string(mask, empty):
    assert mask(empty) == ""


@pytest.mark.parametrize("mask, value", [
    (mask_document, "11010519491231002X"),
    (mask_phone, "13800138000"),
    (mask_email, "zhang.san@example.com"),
    (mask_date, "1949-12-31"),
    (mask_text, "北京市东城区东长安街1号"),
])
def test_no_mask_returns_the_value_in_full(mask, value):
    assert mask(value) != value
    assert "*" in mask(value)
