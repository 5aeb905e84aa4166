"""Cut-offs in the revocation list (idp.oauth.revocations): "every credential of this account or
client issued until then is dead", known to every process at once, also to one that starts
listening afterwards, and forgotten once nothing it concerns can still live."""

from __future__ import annotations

from idp.clock import FrozenClock
from idp.oauth.revocations import StoreRevocationList
from idp.store import MemoryStore
from tests.unit.test_revocations import TOKEN_LIFETIME, clock, eventually, process  # noqa: F401

AT = 1_700_000_000.5


def test_a_cut_off_made_in_one_process_is_known_in_another_that_was_listening(process, clock):
    first, second = process(), process()
    assert second.wait_until_listening(5)
    first.cut_off("sub:abc", AT, TOKEN_LIFETIME)
    assert eventually(lambda: second.cut_off_at("sub:abc") == AT)
    assert second.cut_off_at("sub:other") is None


def test_a_process_that_starts_listening_later_reads_the_cut_offs_already_made(process, clock):
    process().cut_off("client:c1", AT, TOKEN_LIFETIME)
    late = process()
    assert late.wait_until_listening(5)
    assert late.cut_off_at("client:c1") == AT


def test_a_later_cut_off_replaces_an_earlier_one(process, clock):
    first, second = process(), process()
    assert second.wait_until_listening(5)
    first.cut_off("sub:abc", AT, TOKEN_LIFETIME)
    first.cut_off("sub:abc", AT + 10, TOKEN_LIFETIME)
    assert eventually(lambda: second.cut_off_at("sub:abc") == AT + 10)


def test_a_cut_off_is_forgotten_once_its_tokens_have_expired(process, clock):
    first = process()
    first.cut_off("sub:abc", AT, TOKEN_LIFETIME)
    clock.advance(TOKEN_LIFETIME + 61)
    assert first.cut_off_at("sub:abc") is None


def test_the_in_process_store_keeps_cut_offs_too():
    clock = FrozenClock(start=AT)
    revocations = StoreRevocationList(MemoryStore(clock), clock)
    revocations.cut_off("sub:abc", AT, 60)
    assert revocations.cut_off_at("sub:abc") == AT
    revocations.cut_off("sub:none", AT, 0)  # nothing can still live: nothing kept
    assert revocations.cut_off_at("sub:none") is None
    clock.advance(121)
    assert revocations.cut_off_at("sub:abc") is None
