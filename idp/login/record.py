"""The authentication record: what is known of one finished sign-in, as one frozen value.

It is built once, when the interaction finishes (``idp.login.flow.finish``), and then travels
whole: into the browser session and the SSO session, into every authorization code issued in
that session, and from the code into the refresh-token family. It is the only source of the
sign-in's claims in ID tokens, access tokens, introspection and userinfo (``sub``,
``account_type``, ``sid``, ``auth_time``, ``acr``, ``amr``, ``represents``), so a new fact about
a sign-in is added here and nowhere else.

``amr`` lists the methods actually used (RFC 8176 names: ``pwd``, ``sms``, ``otp``; ``fed`` for
a sign-in through an upstream provider); ``acr`` is derived from them by ``acr_for`` (OIDC
Core §2: the class the methods reach), never set by hand. docs/sign-in.md lists the values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The methods a sign-in may use (RFC 8176 §2 names, ``fed`` for an upstream provider).
METHODS = ("pwd", "sms", "otp", "fed")
SECOND_FACTORS = frozenset({"sms", "otp"})

ACR_PASSWORD = "urn:cn:most:idp:acr:password"  # nosec B105  # an acr value (OIDC Core §2), not a secret
ACR_SMS = "urn:cn:most:idp:acr:sms"
ACR_TWO_FACTOR = "urn:cn:most:idp:acr:two_factor"
ACR_FEDERATED = "urn:cn:most:idp:acr:federated"

# The sets of methods the sign-in offers today (a password); each feature that adds a way to
# sign in adds its set, and discovery advertises the acr of each (acr_values_supported).
OFFERED = (("pwd",),)


def acr_for(methods) -> str:
    """The authentication context class the methods reach: a password plus a second factor is
    two-factor; an upstream provider's sign-in is federated (its own strength is the upstream's
    to state); else the single method's class."""
    used = set(methods)
    if "fed" in used:
        return ACR_FEDERATED
    if "pwd" in used and used & SECOND_FACTORS:
        return ACR_TWO_FACTOR
    if "pwd" in used:
        return ACR_PASSWORD
    if used & SECOND_FACTORS:
        return ACR_SMS
    raise ValueError(f"no authentication method among {sorted(used)!r}")


# Where a feature that is offered only when configured (the national platform) adds its set of
# methods for one app: ``offer``; the discovery document passes them to ``acr_values_supported``.
OFFERED_EXTENSION = "idp.offered_methods"


def offer(app, methods: tuple[str, ...]) -> None:
    app.extensions.setdefault(OFFERED_EXTENSION, []).append(tuple(methods))


def acr_values_supported(also=()) -> list[str]:
    return list(dict.fromkeys(acr_for(methods) for methods in (*OFFERED, *also)))


@dataclass(frozen=True)
class Authentication:
    """One finished sign-in. ``represents``: the unit the user chose to act for (INTERFACES.md
    "represents"), set in the record of each code issued while acting for a unit
    (idp.oauth.views, docs/delegation.md), and then carried like every other field."""

    sub: str
    account_type: str
    sid: str | None
    auth_time: int
    amr: tuple[str, ...]
    acr: str = ""
    represents: Mapping | None = None

    def __post_init__(self) -> None:
        unknown = set(self.amr) - set(METHODS)
        if not self.amr or unknown:
            raise ValueError(f"amr must name methods among {METHODS!r}, not {self.amr!r}")
        # Derived, never chosen: a stored or passed value that disagrees is corrected.
        object.__setattr__(self, "amr", tuple(dict.fromkeys(self.amr)))
        object.__setattr__(self, "acr", acr_for(self.amr))
        object.__setattr__(self, "represents", dict(self.represents) if self.represents else None)

    def as_json(self) -> dict:
        """The stored form (codes, refresh-token families, SSO and browser sessions): ``acr``
        is left out, since it is derived from ``amr`` on reading (``__post_init__``), and so is
        an empty ``represents`` (bench/PROFILE.md round 7: every byte is kept per session and
        per refresh token)."""
        data = {"sub": self.sub, "account_type": self.account_type, "sid": self.sid,
                "auth_time": self.auth_time, "amr": list(self.amr)}
        if self.represents:
            data["represents"] = self.represents
        return data

    @classmethod
    def from_json(cls, data: dict) -> Authentication:
        return cls(sub=data["sub"], account_type=data["account_type"], sid=data.get("sid"),
                   auth_time=int(data["auth_time"]), amr=tuple(data.get("amr") or ("pwd",)),
                   represents=data.get("represents"))

    def claims(self) -> dict:
        """The sign-in's claims, as ID tokens, access tokens and introspection carry them."""
        claims = {"sub": self.sub, "account_type": self.account_type, "auth_time": self.auth_time,
                  "acr": self.acr, "amr": list(self.amr)}
        if self.sid:
            claims["sid"] = self.sid
        if self.represents:
            claims["represents"] = dict(self.represents)
        return claims
