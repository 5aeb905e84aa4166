"""The one way the provider calls out over HTTP: request-forgery-safe (SSRF) fetching.

Whoever can store a URL here (a relying party registering itself, a console user, an operator's
configuration) could otherwise make the provider knock on addresses only it can reach: its own
loopback services, the database, the cloud metadata service at 169.254.169.254, the intranet.
Every outbound call (back-channel logout, the SMS gateway, the real-name verifier, the upstream
national platform) therefore goes through ``post`` or ``get`` here, and every URL the provider
may call later goes through ``check_stored`` when it is stored. The rules, each refusal a stable
reason code (``OutboundRefused.reason``):

- Only ``https`` (``scheme_not_allowed``, ``https_required``); plain ``http`` only in development,
  only to loopback, and only while ``IDP_ALLOW_LOOPBACK_HTTP`` is on (refused in production by
  the settings). No user information in the URL (``userinfo_not_allowed``), a host is required
  (``missing_host``), host names are plain DNS names (``invalid_host``).
- IP addresses are written canonically or not at all: ``http://2130706433/``, ``http://0x7f.1/``,
  ``http://127.1/`` and ``http://0177.0.0.1/`` are what browsers and some libraries read as
  127.0.0.1 (WHATWG URL §3.5, IPv4 parser), so a host whose last label is numeric must be a
  dotted quad (``ambiguous_ip_address``). An IP literal is refused (``ip_literal_not_allowed``)
  unless it is the development loopback case: a relying party has a name and a certificate.
- The host is resolved, and the call refused when ANY address is not a public unicast address:
  ``loopback``, ``private``, ``link_local``, ``multicast``, ``unspecified``, ``reserved``,
  ``shared_address_space`` (100.64.0.0/10, RFC 6598), ``not_global`` (documentation, benchmark
  and other special-purpose ranges of the IANA registries), and IPv6 forms that carry an IPv4
  address (IPv4-mapped ``::ffff:0:0/96``, 6to4 ``2002::/16``, NAT64 ``64:ff9b::/96``; Teredo
  is refused outright) judged by the IPv4 address inside. ``*.localhost`` names are loopback
  whatever DNS says (RFC 6761 §6.3).
- The connection is pinned to the address that was checked: the name is resolved once, the
  socket connects to that address, and the original name goes into the Host header, TLS SNI
  and certificate verification. There is no second lookup an attacker's DNS could answer
  differently (DNS rebinding).
- Redirects are never followed (a 3xx is ``redirect_not_followed``), the whole exchange has a
  deadline (``timeout``), and the body is read up to a small cap and refused beyond it
  (``response_too_large``). Proxies from the environment are not used.

A host name that does not resolve when a URL is stored is accepted (relying parties register
names before their DNS exists) and checked when called. The check at call time is the one that
protects; the one at storage gives a clear error to whoever typed the URL.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from idp.errors import Refused

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_TIMEOUT = 5.0

_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


# The refusals that concern where a URL leads (as opposed to how it is written).
ADDRESS_REASONS = ("loopback", "private", "link_local", "multicast", "unspecified", "reserved",
                   "shared_address_space", "not_global", "ipv4_embedded_literal", "ip_literal_not_allowed",
                   "ambiguous_ip_address", "invalid_address")


class OutboundRefused(Refused, ValueError):
    """The URL or the address it leads to is not one the provider may call."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, message=f"{reason}: {detail}" if detail else reason)


class OutboundFailed(RuntimeError):
    """The call was allowed but did not give a usable answer (network, TLS, status, size)."""

    def __init__(self, reason: str, detail: str = "", status: int | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Policy:
    """What may be called, from the settings (``from_config``)."""

    production: bool = True
    allow_loopback_http: bool = False
    max_bytes: int = DEFAULT_MAX_BYTES

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Policy":
        production = config.get("ENV") == "production"
        return cls(production=production,
                   allow_loopback_http=bool(config.get("ALLOW_LOOPBACK_HTTP")) and not production,
                   max_bytes=int(config.get("OUTBOUND_MAX_BYTES") or DEFAULT_MAX_BYTES))


@dataclass(frozen=True)
class Target:
    """A checked URL: where to connect (``addresses``, empty when the name did not resolve at
    storage time) and what to say (``host`` for Host, SNI and the certificate)."""

    url: str
    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


# -- checking ---------------------------------------------------------------------------------

def _loopback_allowed(policy: Policy) -> bool:
    return policy.allow_loopback_http and not policy.production


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str, policy: Policy) -> str | None:
    """The reason code why this address may not be called, or None if it may."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # an IPv6 zone index: link-local
    except ValueError:
        return "invalid_address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.teredo is not None:
            return "reserved"
        inner = _embedded_ipv4(ip)
        if inner is not None:
            # The address inside decides; loopback inside is never the development exception.
            reason = address_refusal(str(inner), Policy(production=True))
            return reason
        if ip in _IPV4_COMPATIBLE and not (ip.is_loopback or ip.is_unspecified):
            return "reserved"  # deprecated IPv4-compatible form (RFC 4291 §2.5.5.1)
    if ip.is_loopback:
        return None if _loopback_allowed(policy) else "loopback"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_multicast:
        return "multicast"
    if ip.is_link_local:
        return "link_local"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _SHARED_ADDRESS_SPACE:
        return "shared_address_space"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "not_global"
    return None


def _host_of(url: str) -> tuple[Any, str]:
    """The split URL and its host, with the refusals that need no DNS."""
    if not isinstance(url, str) or not url or len(url) > 2000 or any(c.isspace() or ord(c) < 32 for c in url):
        raise OutboundRefused("invalid_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 — raises on a malformed port
    except ValueError as exc:
        raise OutboundRefused("invalid_url", str(exc)) from None
    if parts.scheme not in ("https", "http"):
        raise OutboundRefused("scheme_not_allowed", parts.scheme)
    netloc = parts.netloc
    if "@" in netloc:
        raise OutboundRefused("userinfo_not_allowed")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise OutboundRefused("missing_host")
    if "%" in netloc or "\\" in netloc:
        raise OutboundRefused("invalid_host", host)
    return parts, host


def _literal(host: str, netloc: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address the host names literally, or None for a DNS name."""
    if netloc.startswith("["):
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise OutboundRefused("invalid_host", host) from None
    labels = host.split(".")
    if _NUMERIC_LABEL.match(labels[-1]):
        try:
            return ipaddress.IPv4Address(host)  # dotted quad of decimals without leading zeros
        except ValueError:
            raise OutboundRefused("ambiguous_ip_address", host) from None
    return None


def check_url(url: str, policy: Policy, *, resolve: bool = True, unresolved_ok: bool = False) -> Target:
    """Every rule of the module docstring; raises ``OutboundRefused``. With ``unresolved_ok``
    (storage), a name that does not resolve yet is accepted without addresses."""
    parts, host = _host_of(url)
    host = host.lower()
    scheme = parts.scheme
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    literal = _literal(host, parts.netloc.rsplit("@", 1)[-1])
    if literal is not None:
        if isinstance(literal, ipaddress.IPv6Address) and _embedded_ipv4(literal) is not None:
            raise OutboundRefused("ipv4_embedded_literal", host)
        reason = address_refusal(str(literal), policy)
        if reason is not None:
            raise OutboundRefused(reason, host)
        if not literal.is_loopback:
            raise OutboundRefused("ip_literal_not_allowed", host)
        return Target(url, scheme, str(literal), port, path, (str(literal),))
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise OutboundRefused("invalid_host", host) from None
    if len(ascii_host) > 253 or not all(_HOST_LABEL.match(label) for label in ascii_host.split(".")):
        raise OutboundRefused("invalid_host", host)
    if ascii_host == "localhost" or ascii_host.endswith(".localhost"):
        if not _loopback_allowed(policy):
            raise OutboundRefused("loopback", host)
    if scheme == "http" and not _loopback_allowed(policy):
        raise OutboundRefused("https_required", host)
    if not resolve:
        if scheme == "http" and ascii_host != "localhost" and not ascii_host.endswith(".localhost"):
            raise OutboundRefused("https_required", host)  # loopback cannot be known without DNS
        return Target(url, scheme, ascii_host, port, path)
    try:
        infos = socket.getaddrinfo(ascii_host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        if unresolved_ok:
            return Target(url, scheme, ascii_host, port, path)
        raise OutboundFailed("name_not_resolved", ascii_host) from exc
    addresses = tuple(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        if unresolved_ok:
            return Target(url, scheme, ascii_host, port, path)
        raise OutboundFailed("name_not_resolved", ascii_host)
    for address in addresses:
        reason = address_refusal(address, policy)
        if reason is not None:
            raise OutboundRefused(reason, f"{ascii_host} resolves to {address}")
    loopback = [ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in addresses]
    if scheme == "http" and not all(loopback):
        raise OutboundRefused("https_required", host)
    return Target(url, scheme, ascii_host, port, path, addresses)


def check_stored(url: str, policy: Policy) -> None:
    """The check when a URL is stored; raises ``OutboundRefused``. A name without DNS yet is
    accepted (it is checked again when called)."""
    check_url(url, policy, unresolved_ok=True)


def check_configured(url: str, policy: Policy) -> None:
    """The check at start-up of an operator's service URL: everything but DNS (the service may
    be down while the provider starts; the address is checked at every call)."""
    check_url(url, policy, resolve=False)


# -- calling ----------------------------------------------------------------------------------

def _connect(addresses: tuple[str, ...], port: int, timeout: float) -> socket.socket:
    """A socket to the first checked address that answers; never a new DNS lookup."""
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error or OSError("no address")


class _Held:
    """http.client closes the connection's socket as soon as the answer says it will close;
    held open here until the body is read, so that every read gets the remaining deadline."""

    held = True

    def close(self) -> None:
        if not self.held:
            super().close()

    def release(self) -> None:
        self.held = False
        self.close()


class _PinnedHTTPConnection(_Held, http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: tuple[str, ...], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = self.raw_socket = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(_Held, http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: tuple[str, ...], timeout: float,
                 context: ssl.SSLContext) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._addresses = addresses
        self._tls = context

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        # SNI and certificate verification against the name, not the address.
        self.sock = self.raw_socket = self._tls.wrap_socket(sock, server_hostname=self.host)


def _tls_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def post(url: str, body: bytes, headers: dict[str, str], *, policy: Policy, timeout: float, purpose: str,
         max_bytes: int | None = None, context: ssl.SSLContext | None = None) -> Response:
    """POST ``body`` to ``url`` under every rule of this module. Raises ``OutboundRefused``
    (the URL or its address is not allowed: nothing was sent; audited as ``outbound_refused``
    with ``purpose``) or ``OutboundFailed``."""
    return _exchange("POST", url, body, headers, policy=policy, timeout=timeout, purpose=purpose,
                     max_bytes=max_bytes, context=context)


def get(url: str, headers: dict[str, str], *, policy: Policy, timeout: float, purpose: str,
        max_bytes: int | None = None, context: ssl.SSLContext | None = None) -> Response:
    """GET ``url`` under every rule of this module (an upstream provider's discovery document
    and keys); raises like ``post``."""
    return _exchange("GET", url, None, headers, policy=policy, timeout=timeout, purpose=purpose,
                     max_bytes=max_bytes, context=context)


def _exchange(method: str, url: str, body: bytes | None, headers: dict[str, str], *, policy: Policy,
              timeout: float, purpose: str, max_bytes: int | None = None,
              context: ssl.SSLContext | None = None) -> Response:
    deadline = time.monotonic() + timeout
    try:
        target = check_url(url, policy)
    except OutboundRefused as refused:
        _audit_refusal(url, refused, purpose)
        raise
    cap = max_bytes if max_bytes is not None else policy.max_bytes
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(target.host, target.port, target.addresses, timeout,
                                            context or _tls_context())
    else:
        connection = _PinnedHTTPConnection(target.host, target.port, target.addresses, timeout)
    watchdog: threading.Timer | None = None
    expired = threading.Event()

    def expire() -> None:
        # The deadline holds for the whole exchange, however slowly the other side trickles
        # its headers or body: the socket is shut, and the blocked read returns.
        expired.set()
        try:
            connection.raw_socket.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    try:
        connection.connect()
        watchdog = threading.Timer(_remaining(deadline), expire)
        watchdog.daemon = True
        watchdog.start()
        connection.request(method, target.path, body=body,
                           headers={"User-Agent": "idp-outbound", "Connection": "close", **headers})
        connection.raw_socket.settimeout(_remaining(deadline))
        answer = connection.getresponse()
        status = answer.status
        answer_headers = {k.lower(): v for k, v in answer.getheaders()}
        if 300 <= status < 400:
            raise OutboundFailed("redirect_not_followed", str(status), status)
        chunks: list[bytes] = []
        size = 0
        while True:
            connection.raw_socket.settimeout(_remaining(deadline))
            chunk = answer.read1(min(8192, cap + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > cap:
                raise OutboundFailed("response_too_large", f"more than {cap} bytes", status)
        if expired.is_set():
            raise OutboundFailed("timeout", "deadline passed")
    except OutboundFailed:
        raise
    except (socket.timeout, TimeoutError) as exc:
        raise OutboundFailed("timeout", str(exc)) from exc
    except ssl.SSLError as exc:
        raise OutboundFailed("timeout" if expired.is_set() else "tls_error", str(exc)) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise OutboundFailed("timeout" if expired.is_set() else "connection_failed", str(exc)) from exc
    finally:
        if watchdog is not None:
            watchdog.cancel()
        connection.release()
    return Response(status, answer_headers, b"".join(chunks))


def _audit_refusal(url: str, refused: OutboundRefused, purpose: str) -> None:
    from flask import current_app, has_app_context

    from idp import signals

    if has_app_context():
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        signals.outbound_refused.send(current_app._get_current_object(), subject=purpose, outcome="refused",
                                      details={"reason": refused.reason, "host": (host or "")[:100]})


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise OutboundFailed("timeout", "deadline passed")
    return left
