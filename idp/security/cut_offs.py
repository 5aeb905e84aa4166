"""Cut-offs: the end of every credential of an account or a client, at once.

A disabled, staff-locked or deleted account, a disabled or deleted client: everything issued
to it until that moment is dead, whatever it is (an access token, a code, a refresh token, a
browser session). The moment is kept in the revocation list (idp.oauth.revocations), which
every process hears at once; refresh tokens and SSO sessions are also ended in the database.
"""

from __future__ import annotations

from flask import current_app

from idp.extensions import services

ACCOUNT = "sub:"
CLIENT = "client:"


def _cut_off(name: str) -> None:
    """Everything of ``name`` issued until now is dead, for as long as any of it could live
    (an access token or a code; refresh tokens and sessions are ended in the database)."""
    cfg = current_app.config
    services().revocations.cut_off(name, services().clock.time(), max(cfg["ACCESS_TOKEN_TTL"], cfg["CODE_TTL"]))


def cut_off_account(sub: str) -> None:
    """A disabled, staff-locked or deleted account: every credential it was issued so far dies."""
    _cut_off(ACCOUNT + sub)


def cut_off_client(client_id: str) -> None:
    """A disabled or deleted client: every credential it was issued so far dies."""
    _cut_off(CLIENT + client_id)


_EXACT = 1e-6  # a datetime column's resolution


def issued_before_cut_off(sub: str | None, client_id: str | None, issued_at: float,
                          whole_seconds: bool = True) -> bool:
    """Whether a credential of ``sub`` for ``client_id`` issued at ``issued_at`` was cut off.
    A token's ``iat`` and a sign-in's ``auth_time`` are whole seconds: a cut-off within that
    second counts (what was issued in the same second after it must be asked for again); the
    issue time of a code or refresh token is exact to the microsecond the database keeps, so
    it counts as before the cut-off only when earlier by more than that (a code issued at the
    very instant of the cut-off, after it, read back rounded down, is not taken for an older one)."""
    names = [ACCOUNT + sub] if sub else []
    if client_id:
        names.append(CLIENT + client_id)
    # The latest of the two decides: whatever an earlier one cuts off, a later one does too.
    cut = services().revocations.latest_cut_off(names)
    return cut is not None and (issued_at <= cut if whole_seconds else issued_at < cut - _EXACT)


# -- delegation: tokens issued while acting for a unit (``represents``) -----------------------

DELEGATION = "delegation:"
REPRESENTED = "represented:"


def cut_off_delegation(delegation_id: str) -> None:
    """An authorisation revoked, declined or changed: every credential issued while acting
    under it so far dies."""
    _cut_off(DELEGATION + delegation_id)


def cut_off_represented(unit_sub: str) -> None:
    """A unit no longer verified: every credential issued while acting for it so far dies (a
    unit disabled or deleted is cut off as an account: ``cut_off_account``)."""
    _cut_off(REPRESENTED + unit_sub)


def represents_ended(represents: dict, issued_at: float, whole_seconds: bool = True) -> bool:
    """Whether a credential issued at ``issued_at`` while acting for ``represents`` (its
    ``represents`` claim) is dead: the authorisation's validity is over, or the authorisation or
    its unit was cut off since (revoked, declined, changed; unit unverified, disabled, deleted).
    Asked at every use: dictionary look-ups once the revocation list is listening, no query."""
    valid_until = represents.get("valid_until")
    if valid_until is not None and services().clock.time() >= valid_until:
        return True
    unit_sub = str(represents.get("sub"))
    cut = services().revocations.latest_cut_off(
        [DELEGATION + str(represents.get("delegation_id")), REPRESENTED + unit_sub, ACCOUNT + unit_sub])
    return cut is not None and (issued_at <= cut if whole_seconds else issued_at < cut - _EXACT)
