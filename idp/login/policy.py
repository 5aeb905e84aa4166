"""The interaction policy: what a sign-in still lacks for one authorization request, as data.

Modelled on node-oidc-provider's interaction policy (lib/helpers/interaction_policy): an
ordered list of prompts, each made of checks; a check looks at the ``Situation`` (the request's
parameters that bear on the interaction, the client's requirements, the browser session's
sign-in) and returns None when satisfied or a stable reason code. The first prompt with an
unsatisfied check is what is missing. The authorization endpoint (idp.oauth.views) either
answers the client with the prompt's error when it may not interact (``prompt=none``, OIDC Core
§3.1.2.6) or hands the browser to the prompt's interaction; the sign-in page, the required
actions, the refusal pages and the consent page are those interactions.

Prompts that a later feature fills (an upstream provider as another first step, a second
factor, choosing whom to act for) are here already with real checks over facts nothing sets
yet (``upstream_required``, ``required_methods``, ``represent_choices``): they are satisfied
until that feature supplies the fact, and then work without touching the endpoint.

docs/sign-in.md shows the list with every reason code; tests/unit/test_interaction_policy.py
checks each.

This module knows nothing of HTTP and imports nothing of the protocol layer (idp.oauth).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from idp.login.record import Authentication
from idp.models.accounts import VERIFIED_STATUSES


@dataclass(frozen=True)
class Situation:
    """What the policy decides on. ``account`` is the signed-in account (None: nobody) and
    ``authentication`` its sign-in; ``hint_sub`` the ``sub`` of an ``id_token_hint`` the
    protocol layer has verified; ``fresh`` that the sign-in just finished was for this very
    request (so ``prompt=login`` and ``max_age`` are met by it); ``consent_covers`` asks the
    stored consents (only called when needed: it reads the database)."""

    account: object | None
    authentication: Authentication | None
    client: object
    now: float
    prompts: frozenset[str] = frozenset()
    max_age: int | None = None
    hint_sub: str | None = None
    scopes: tuple[str, ...] = ()
    fresh: bool = False
    consent_covers: Callable[[], bool] = lambda: False
    # Filled by later features: the client or the account wants a second factor (methods
    # such as "sms" or "otp"), a sign-in through the upstream provider, or a choice among
    # the units the user may act for.
    required_methods: frozenset[str] = frozenset()
    upstream_required: bool = False
    represent_choices: tuple = ()
    # Delegation: a choice of whom to act for is remembered for this client (``self`` or one
    # of ``represent_choices``), and was made for this very request.
    represents_chosen: bool = False
    represents_fresh: bool = False


@dataclass(frozen=True)
class Check:
    """``test`` returns True when the check is NOT met; the check then reports ``reason``."""

    reason: str
    test: Callable[[Situation], bool]
    description: str = ""

    def __call__(self, situation: Situation) -> str | None:
        return self.reason if self.test(situation) else None


@dataclass(frozen=True)
class Prompt:
    """``error``: what the client hears when it asked for no interaction (``prompt=none``);
    ``interaction``: where the browser is handed otherwise (``login``: the sign-in page and the
    required actions after it; ``refusal``: a page that says why, nothing the user can do here;
    ``consent``: the consent page)."""

    name: str
    checks: tuple[Check, ...]
    error: str
    interaction: str

    def missing(self, situation: Situation) -> str | None:
        for check in self.checks:
            reason = check(situation)
            if reason is not None:
                return reason
        return None


@dataclass(frozen=True)
class Missing:
    prompt: Prompt
    reason: str

    @property
    def name(self) -> str:
        return self.prompt.name


@dataclass(frozen=True)
class Policy:
    prompts: tuple[Prompt, ...] = field(default=())

    def missing(self, situation: Situation) -> Missing | None:
        """The first prompt this request still lacks, with the reason, or None: answer it."""
        for prompt in self.prompts:
            reason = prompt.missing(situation)
            if reason is not None:
                return Missing(prompt, reason)
        return None

    def prompt(self, name: str) -> Prompt:
        return next(p for p in self.prompts if p.name == name)


# Required actions other features add: (endpoint, test(account) -> bool), registered with
# ``add_required_action`` (the national platform's sign-in asks what an account made from its
# claims lacks). The login package imports none of them.
_EXTRA_ACTIONS: list[tuple[str, Callable]] = []


def add_required_action(endpoint: str, needed: Callable) -> None:
    """``endpoint``: a view endpoint (``blueprint.view``); ``needed(account)``: whether it must run."""
    if all(name != endpoint for name, _ in _EXTRA_ACTIONS):
        _EXTRA_ACTIONS.append((endpoint, needed))


def required_actions(account) -> list[str]:
    """Actions the account must complete before a sign-in finishes (each a view endpoint,
    Keycloak's "required actions"): a forced password change (``update_password`` of the login
    blueprint), then those features registered (``add_required_action``)."""
    actions = []
    if account.must_change_password:
        actions.append("update_password")
    actions.extend(endpoint for endpoint, needed in _EXTRA_ACTIONS if needed(account))
    return actions


# -- the checks ---------------------------------------------------------------------------

def _no_session(s: Situation) -> bool:
    return s.account is None or s.authentication is None


def _login_prompt(s: Situation) -> bool:
    """OIDC Core §3.1.2.1 prompt=login: sign in again, unless that just happened for this request."""
    return "login" in s.prompts and not s.fresh


def _max_age(s: Situation) -> bool:
    """OIDC Core §3.1.2.1 max_age: the sign-in is older than the client accepts."""
    return (s.max_age is not None and not s.fresh
            and s.now - s.authentication.auth_time > s.max_age)


def _id_token_hint(s: Situation) -> bool:
    """OIDC Core §3.1.2.1 id_token_hint names another user than the one signed in."""
    return s.hint_sub is not None and s.hint_sub != s.authentication.sub


def _upstream_required(s: Situation) -> bool:
    return s.upstream_required and "fed" not in s.authentication.amr


def _second_factor(s: Situation) -> bool:
    return bool(s.required_methods) and not (s.required_methods & set(s.authentication.amr))


def _account_type(s: Situation) -> bool:
    """A system for units also serves a person who may act for a unit there (delegation): the
    person then must choose a unit (``_select_account``), never themselves."""
    if s.account.account_type == "natural" and s.represent_choices:
        return False
    return not s.client.allows_account_type(s.account.account_type)


def _required_actions(s: Situation) -> bool:
    return bool(required_actions(s.account))


def _verification(s: Situation) -> bool:
    return bool(s.client.require_verified) and s.account.verification_status not in VERIFIED_STATUSES


def _select_account(s: Situation) -> bool:
    """Whom to act for (delegation): asked when the user may act for units at this client and
    has not chosen for it in this session, or when the client asks again
    (``prompt=select_account``, OIDC Core §3.1.2.1) and the choice was not just made."""
    if not s.represent_choices:
        return False
    return not s.represents_chosen or ("select_account" in s.prompts and not s.represents_fresh)


def may_act_for_oneself(client) -> bool:
    """Whether the choice of whom to act for offers "oneself": not at a system for units."""
    return client.allows_account_type("natural")


def _consent_prompt(s: Situation) -> bool:
    """OIDC Core §3.1.2.1 prompt=consent; a trusted (first-party) client is never asked."""
    return "consent" in s.prompts and not s.client.trusted


def _scopes_missing(s: Situation) -> bool:
    return not s.client.trusted and not s.consent_covers()


POLICY = Policy((
    Prompt("login", (
        Check("no_session", _no_session, "nobody is signed in in this browser"),
        Check("login_prompt", _login_prompt, "prompt=login"),
        Check("max_age", _max_age, "the sign-in is older than max_age"),
        Check("id_token_hint", _id_token_hint, "id_token_hint names another user"),
    ), error="login_required", interaction="login"),
    Prompt("upstream_provider", (
        Check("upstream_login_required", _upstream_required, "the sign-in must come from the upstream provider"),
    ), error="login_required", interaction="login"),
    Prompt("second_factor", (
        Check("second_factor_required", _second_factor, "a second factor is required and was not used"),
    ), error="interaction_required", interaction="login"),
    Prompt("account_type", (
        Check("account_type_not_allowed", _account_type, "the client does not serve this kind of account"),
    ), error="login_required", interaction="refusal"),
    Prompt("required_actions", (
        Check("required_actions", _required_actions, "the account has actions to complete (a new password, real-name data)"),
    ), error="interaction_required", interaction="login"),
    Prompt("verification", (
        Check("verification_required", _verification, "the client requires a real-name verified user"),
    ), error="interaction_required", interaction="refusal"),
    Prompt("select_account", (
        Check("select_account", _select_account, "the user must choose whom to act for"),
    ), error="account_selection_required", interaction="select_account"),
    Prompt("consent", (
        Check("consent_prompt", _consent_prompt, "prompt=consent"),
        Check("scopes_missing", _scopes_missing, "the user has not allowed these scopes to this client"),
    ), error="consent_required", interaction="consent"),
))
