"""Hypothesis properties of the parsers that read what outsiders send or store: redirect URIs,
scope strings, JWTs, request ids, outbound URLs and legacy password hashes. Whatever the input,
each answers with its own refusal (a reason code, None, a refusal exception), never with an
exception nobody catches (a 500 page), and never lets through what its rule forbids.

(Passwords and identity documents have their properties in test_passwords.py and
test_identifiers.py; the JSON endpoints as a whole are fuzzed by schemathesis,
tests/integration/test_schemathesis.py.)
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from idp.ops.logs import request_id_from
from idp.security import outbound
from idp.security.passwords import UnsupportedHash, legacy_hash_format

# The app fixture is built once per test and only read by the examples.
with_app = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
URL_CHARS = st.sampled_from(list("abcAB09-._~:/?#[]@!$&'()*+,;=% \t\n\\\x00é中\u3000\u202e"))
URLISH = st.one_of(
    ANY_TEXT,
    st.builds(lambda scheme, rest: scheme + rest,
              st.sampled_from(["https://", "http://", "HTTPS://", "javascript:", "//", "https:/", ""]),
              st.text(alphabet=URL_CHARS, max_size=80)),
)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- redirect URIs (idp.clients.check_uri, Client.check_redirect_uri) --------------------------

@with_app
@given(uri=URLISH)
@example(uri="https://rp.example/cb#frag")
@example(uri="https://*.rp.example/cb")
@example(uri="https://rp.example:99999/cb")
@example(uri="https://[::1/cb")
def test_a_redirect_uri_is_either_refused_with_a_reason_or_exact_absolute_and_without_fragment(app, uri):
    from idp.clients import ClientError, check_uri

    try:
        kept = check_uri(uri, "redirect_uris")
    except ClientError as error:
        assert error.field == "redirect_uris"
        assert error.reason in ("invalid_uri", "wildcard_not_allowed", "fragment_not_allowed",
                                "https_required")
        return
    assert kept == uri.strip() and 0 < len(kept) <= 500
    assert kept.split("://", 1)[0].lower() in ("https", "http") and "://" in kept
    assert "*" not in kept and "#" not in kept and not any(c.isspace() for c in kept)


def _variants(uri: str) -> list[str]:
    return [uri + "/", uri.rstrip("/"), uri.upper(), uri + "#", uri + "?", uri + "%20", " " + uri,
            uri.replace("https://", "http://"), uri.replace("/", "%2F", 3), uri + "/../cb"]


@given(path=st.text(alphabet="abcxyz0129-_/.~%", max_size=30),
       asked=st.one_of(URLISH, st.just("")))
def test_redirect_uri_matching_is_exact_string_equality(path, asked):
    """RFC 9700 §4.1.3 / OAuth 2.1: exact matching; no case folding, trailing-slash,
    fragment, encoding or dot-segment leniency."""
    from idp.models.clients import Client

    registered = "https://rp.example/" + path
    client = Client(redirect_uris=[registered])
    assert client.check_redirect_uri(registered)
    assert client.check_redirect_uri(asked) == (asked == registered)
    for variant in _variants(registered):
        assert client.check_redirect_uri(variant) == (variant == registered)


# -- scope strings (Client.get_allowed_scope over Authlib's scope_to_list) ----------------------

SCOPE_WORDS = st.sampled_from(["openid", "profile", "email", "phone", "offline_access", "org",
                               "OPENID", "openid\u200b", "admin", "", "é"])
SEPARATORS = st.sampled_from([" ", "  ", "\t", "\n", "\u3000", "\u00a0", "+", ",", "%20", "\x00"])
SCOPE_STRINGS = st.one_of(
    ANY_TEXT,
    st.lists(st.tuples(SCOPE_WORDS, SEPARATORS), max_size=12).map(
        lambda pairs: "".join(word + sep for word, sep in pairs)),
)


@given(scope=SCOPE_STRINGS, allowed=st.lists(st.sampled_from(["openid", "profile", "email", "phone"]),
                                              unique=True, max_size=4))
@example(scope="openid openid profile openid", allowed=["openid", "profile"])
def test_the_allowed_scope_is_only_registered_scopes_each_once_in_the_order_asked(scope, allowed):
    from authlib.oauth2.rfc6749 import scope_to_list

    from idp.models.clients import Client

    granted = Client(scopes=allowed).get_allowed_scope(scope)
    assert isinstance(granted, str)
    tokens = granted.split(" ") if granted else []
    assert all(token in allowed for token in tokens)
    assert len(tokens) == len(set(tokens))  # no duplicates (RFC 6749 §3.3: a set of scopes)
    asked = scope_to_list(scope) or []
    assert tokens == list(dict.fromkeys(t for t in asked if t in allowed))


# -- JWTs (idp.oauth.keys.decode, idp.oauth.server.decode_access_token) -------------------------

SEGMENT = st.one_of(
    st.binary(max_size=120).map(_b64),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
    st.dictionaries(st.sampled_from(["alg", "kid", "typ", "jku", "jwk", "crit", "x5c", "b64"]),
                    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20),
                              st.sampled_from(["RS256", "ES256", "none", "HS256", "EdDSA"]),
                              st.lists(st.integers(), max_size=3)),
                    max_size=5).map(lambda header: _b64(json.dumps(header).encode())),
)
TOKENS = st.one_of(
    ANY_TEXT,
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.lists(SEGMENT, min_size=1, max_size=5).map(".".join),
)


@with_app
@given(token=TOKENS)
@example(token="..")
@example(token="e30.e30.")
@example(token=_b64(b'{"alg":"none"}') + "." + _b64(b"{}") + ".")
@example(token=_b64(b'{"alg":"RS256","kid":"\\u0000"}') + ".e30.AAAA")
@example(token=_b64(b"[]") + ".e30.x")
@example(token=_b64(b'"a"') + ".e30.x")
@example(token=_b64(b'{"alg":"RS256","kid":"k"}') + "." + _b64(b"[1]") + ".x")
def test_any_text_as_a_jwt_is_refused_with_invalid_token_and_nothing_else(app, token):
    from idp.oauth import keys
    from idp.oauth.server import decode_access_token, verify_access_token

    with pytest.raises(keys.InvalidToken):
        keys.decode(token)
    assert decode_access_token(token) is None
    assert verify_access_token(token) is None


@with_app
@given(position=st.integers(min_value=0), replacement=st.characters(codec="ascii"),
       segment=st.integers(min_value=0, max_value=2), payload=st.binary(max_size=64))
def test_a_real_token_with_any_part_changed_or_replaced_is_refused(app, position, replacement, segment,
                                                                  payload):
    """A genuine signed token, one character changed or one segment replaced by other bytes:
    never accepted, never an exception other than the refusal."""
    from idp.oauth import keys
    from idp.oauth.server import sign

    token = sign({"iss": app.config["ISSUER"], "sub": "s", "exp": 2**31, "scope": "openid"}, typ="at+jwt")
    keys.decode(token)  # the original is accepted
    parts = token.split(".")
    original = parts[segment]
    index = position % max(len(original), 1)
    changed = original[:index] + replacement + original[index + 1:]
    for forged in (changed, _b64(payload)):
        assume(forged != original)
        parts_forged = list(parts)
        parts_forged[segment] = forged
        try:
            decoded = keys.decode(".".join(parts_forged))
        except keys.InvalidToken:
            continue
        # Base64url's unused low bits of a last character may change without changing the bytes.
        assert decoded.claims == keys.decode(token).claims and decoded.header == keys.decode(token).header


# -- request ids (idp.ops.logs.request_id_from) --------------------------------------------------

SANE = re.compile(r"[A-Za-z0-9._:+/=-]{1,128}")


@given(header=st.one_of(st.none(), ANY_TEXT, st.text(alphabet="abcdef0123456789-", max_size=200)),
       trusted=st.booleans())
@example(header="x\r\nSet-Cookie: a=b", trusted=True)
@example(header='"} {"level":"fake', trusted=True)
@example(header="a" * 129, trusted=True)
def test_a_request_id_is_the_trusted_proxys_sane_id_or_a_new_one_and_always_log_safe(header, trusted):
    request_id = request_id_from(header, trusted)
    assert SANE.fullmatch(request_id)
    if request_id == header:
        assert trusted
    if trusted and header is not None and SANE.fullmatch(header):
        assert request_id == header


# -- outbound URLs (idp.security.outbound) --------------------------------------------------------

POLICIES = st.builds(outbound.Policy, production=st.booleans(), allow_loopback_http=st.booleans())
IPV4 = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
IPV6 = st.one_of(
    st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address),
    IPV4.map(lambda v4: ipaddress.IPv6Address("::ffff:" + str(v4))),
    IPV4.map(lambda v4: ipaddress.IPv6Address(int(ipaddress.IPv6Address("64:ff9b::")) + int(v4))),
    IPV4.map(lambda v4: ipaddress.IPv6Address((0x2002 << 112) | (int(v4) << 80))),
    IPV4.map(lambda v4: ipaddress.IPv6Address(int(v4))),
)


def _effective(ip):
    """The address a connection reaches: the IPv4 address inside a mapped, NAT64 or 6to4 one."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = outbound._embedded_ipv4(ip)
        if inner is not None:
            return inner
    return ip


def _numeric_forms(v4: ipaddress.IPv4Address) -> list[str]:
    """Ways of writing an IPv4 address that some resolvers read as one (inet_aton)."""
    n = int(v4)
    octets = str(v4).split(".")
    return [str(n), hex(n), "0" + oct(n)[2:], ".".join("0x%02x" % int(o) for o in octets),
            ".".join("0" + o for o in octets), f"{octets[0]}.{n & 0xFFFFFF}",
            f"{octets[0]}.{octets[1]}.{n & 0xFFFF}"]


@given(ip=st.one_of(IPV4, IPV6), policy=POLICIES)
@example(ip=ipaddress.IPv6Address("::ffff:127.0.0.1"), policy=outbound.Policy(production=False,
                                                                             allow_loopback_http=True))
@example(ip=ipaddress.IPv6Address("2001::1"), policy=outbound.Policy())  # Teredo
@example(ip=ipaddress.IPv4Address("100.64.0.1"), policy=outbound.Policy())
def test_an_address_is_accepted_only_if_global_or_the_allowed_development_loopback(ip, policy):
    reason = outbound.address_refusal(str(ip), policy)
    if reason is None:
        effective = _effective(ip)
        assert effective.is_global or (effective is ip and ip.is_loopback and policy.allow_loopback_http
                                       and not policy.production)
        assert not effective.is_multicast and not effective.is_private or effective.is_loopback
    else:
        assert reason in outbound.ADDRESS_REASONS


@given(ip=st.one_of(IPV4, IPV6), policy=POLICIES, scheme=st.sampled_from(["https", "http"]),
       port=st.one_of(st.none(), st.integers(min_value=0, max_value=70000)))
def test_a_url_naming_an_ip_literal_reaches_only_the_allowed_loopback(ip, policy, scheme, port):
    host = f"[{ip}]" if ip.version == 6 else str(ip)
    url = f"{scheme}://{host}{'' if port is None else f':{port}'}/cb"
    try:
        target = outbound.check_url(url, policy, resolve=False)
    except outbound.OutboundRefused:
        return
    assert ip.is_loopback and policy.allow_loopback_http and not policy.production
    assert target.addresses == (str(ip),)


@given(v4=IPV4, policy=POLICIES, form=st.integers(min_value=0, max_value=6))
@example(v4=ipaddress.IPv4Address("127.0.0.1"), policy=outbound.Policy(), form=0)
@example(v4=ipaddress.IPv4Address("169.254.169.254"), policy=outbound.Policy(), form=1)
def test_an_ipv4_address_written_as_a_number_is_refused_as_ambiguous(v4, policy, form):
    url = f"https://{_numeric_forms(v4)[form]}/latest/meta-data"
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_url(url, policy, resolve=False)


@given(url=URLISH, policy=POLICIES)
@example(url="https://user@evil.example@169.254.169.254/", policy=outbound.Policy())
@example(url="https://evil.example\\@127.0.0.1/", policy=outbound.Policy())
@example(url="https://[fe80::1%25eth0]/", policy=outbound.Policy())
@example(url="https://xn--/", policy=outbound.Policy())
@example(url="https://" + "a" * 64 + ".example/", policy=outbound.Policy())
def test_any_text_as_an_outbound_url_is_refused_or_checked_never_an_unexpected_error(url, policy):
    """Without DNS (``resolve=False``): a name is checked again, resolved, when it is called."""
    try:
        target = outbound.check_url(url, policy, resolve=False)
    except outbound.OutboundRefused as refused:
        assert re.fullmatch(r"[a-z0-9_]+", refused.reason)
        return
    assert target.scheme in ("https", "http")
    for address in target.addresses:
        assert outbound.address_refusal(address, policy) is None


# -- legacy password hashes (idp.security.passwords.legacy_hash_format) -------------------------

HASH_PREFIXES = st.sampled_from(["$2a$", "$2b$", "$2y$", "$2x$", "pbkdf2_sha256$", "sha256$",
                                 "$argon2id$", "$argon2i$", "$argon2d$", "$argon2id$v=19$", ""])
HASH_TEXT = st.one_of(
    ANY_TEXT,
    st.builds(lambda prefix, rest: prefix + rest, HASH_PREFIXES,
              st.text(alphabet=st.sampled_from(list("$=,./0123456789abcdefABCDEFmtpv\x00é")), max_size=120)),
    st.none(), st.integers(), st.binary(max_size=40), st.lists(st.text(max_size=5), max_size=3),
)


@given(text=HASH_TEXT)
@example(text="$2b$99$" + "a" * 53)
@example(text="pbkdf2_sha256$999999999999999999999$salt$hash")
@example(text="$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdA$aGFzaA")
@example(text="$argon2id$v=19$m=65536,t=2,p=1$$")
@example(text="sha256$$")
def test_any_stored_hash_is_named_or_refused_with_unsupported_hash(text):
    try:
        name = legacy_hash_format(text)
    except UnsupportedHash as refused:
        assert re.fullmatch(r"[a-z0-9_]+", refused.reason)
        return
    assert name in ("bcrypt", "pbkdf2_sha256", "sha256", "argon2id", "argon2i", "argon2d")
    assert isinstance(text, str) and len(text) <= 255
