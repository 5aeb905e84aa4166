"""The interaction policy as data (idp.login.policy): each check returns its stable reason code
for the situation it is about and nothing for one where it is met; the first prompt missing
wins; the prompts of later features are present and satisfied until their fact is supplied.
The account and client are plain values with the attributes the checks read."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from idp.login.policy import POLICY, Situation
from idp.login.record import (ACR_FEDERATED, ACR_PASSWORD, ACR_SMS, ACR_TWO_FACTOR, Authentication,
                              acr_for, acr_values_supported)

NOW = 1_800_000_000.0


@dataclass
class Account:
    sub: str = "sub-zhang"
    account_type: str = "natural"
    must_change_password: bool = False
    verification_status: str = "verified_auto"


@dataclass
class Client:
    types: tuple = ("natural", "legal")
    require_verified: bool = False
    trusted: bool = False

    def allows_account_type(self, account_type: str) -> bool:
        return account_type in self.types


def _signed_in(**changes) -> Situation:
    authentication = Authentication(sub="sub-zhang", account_type="natural", sid="sid-1",
                                    auth_time=int(NOW) - 600, amr=("pwd",))
    base = Situation(account=Account(), authentication=authentication, client=Client(), now=NOW,
                     scopes=("openid",), consent_covers=lambda: True)
    return replace(base, **changes)


def _missing(situation: Situation) -> tuple[str, str] | None:
    missing = POLICY.missing(situation)
    return (missing.name, missing.reason) if missing else None


def test_a_signed_in_user_with_consent_lacks_nothing():
    assert _missing(_signed_in()) is None


def test_the_prompts_are_in_the_order_of_a_sign_in():
    assert [p.name for p in POLICY.prompts] == [
        "login", "upstream_provider", "second_factor", "account_type", "required_actions",
        "verification", "select_account", "consent"]


@pytest.mark.parametrize("changes, expected", [
    ({"account": None, "authentication": None}, ("login", "no_session")),
    ({"prompts": frozenset({"login"})}, ("login", "login_prompt")),
    ({"max_age": 300}, ("login", "max_age")),
    ({"hint_sub": "sub-li"}, ("login", "id_token_hint")),
    ({"upstream_required": True}, ("upstream_provider", "upstream_login_required")),
    ({"required_methods": frozenset({"sms", "otp"})}, ("second_factor", "second_factor_required")),
    ({"client": Client(types=("legal",))}, ("account_type", "account_type_not_allowed")),
    ({"account": Account(must_change_password=True)}, ("required_actions", "required_actions")),
    ({"client": Client(require_verified=True), "account": Account(verification_status="pending")},
     ("verification", "verification_required")),
    ({"represent_choices": ("unit-1", "unit-2")}, ("select_account", "select_account")),
    ({"represent_choices": ("dlg-1",), "represents_chosen": True, "prompts": frozenset({"select_account"})},
     ("select_account", "select_account")),                   # prompt=select_account: asked again
    ({"prompts": frozenset({"consent"})}, ("consent", "consent_prompt")),
    ({"consent_covers": lambda: False}, ("consent", "scopes_missing")),
])
def test_each_check_reports_its_reason_code(changes, expected):
    assert _missing(_signed_in(**changes)) == expected


@pytest.mark.parametrize("changes", [
    {"max_age": 3600},                                         # the sign-in is young enough
    {"max_age": 0, "fresh": True},                             # it happened for this request
    {"prompts": frozenset({"login"}), "fresh": True},
    {"hint_sub": "sub-zhang"},                                 # the hint names the signed-in user
    {"required_methods": frozenset({"sms"}),
     "authentication": Authentication(sub="sub-zhang", account_type="natural", sid="s",
                                      auth_time=int(NOW), amr=("pwd", "sms"))},
    {"client": Client(require_verified=True), "account": Account(verification_status="verified_manual")},
    {"prompts": frozenset({"consent"}), "client": Client(trusted=True)},  # first-party: never asked
    {"consent_covers": lambda: False, "client": Client(trusted=True)},
    {"represent_choices": ("dlg-1",), "represents_chosen": True},  # chosen for this client already
    {"represent_choices": ("dlg-1",), "represents_chosen": True, "represents_fresh": True,
     "prompts": frozenset({"select_account"})},                    # just chosen for this request
    {"represent_choices": ("dlg-1",), "represents_chosen": True,
     "client": Client(types=("legal",))},                          # a person acting for a unit at a system for units
])
def test_a_met_check_reports_nothing(changes):
    assert _missing(_signed_in(**changes)) is None


def test_the_first_missing_prompt_wins_and_later_checks_are_not_asked():
    asked = []
    situation = _signed_in(account=None, authentication=None,
                           consent_covers=lambda: asked.append("consent") or False)
    assert _missing(situation) == ("login", "no_session")
    assert asked == []  # the consent look-up (a database read) never ran


def test_each_prompt_names_the_error_a_client_hears_without_interaction():
    errors = {p.name: p.error for p in POLICY.prompts}
    assert errors == {"login": "login_required", "upstream_provider": "login_required",
                      "second_factor": "interaction_required", "account_type": "login_required",
                      "required_actions": "interaction_required", "verification": "interaction_required",
                      "select_account": "account_selection_required", "consent": "consent_required"}


# --- the authentication record: acr and amr derived from the methods ----------------------------


@pytest.mark.parametrize("methods, acr", [
    (("pwd",), ACR_PASSWORD), (("sms",), ACR_SMS), (("pwd", "sms"), ACR_TWO_FACTOR),
    (("pwd", "otp"), ACR_TWO_FACTOR), (("fed",), ACR_FEDERATED), (("fed", "sms"), ACR_FEDERATED),
])
def test_the_acr_is_derived_from_the_methods_used(methods, acr):
    assert acr_for(methods) == acr
    record = Authentication(sub="s", account_type="natural", sid=None, auth_time=1, amr=methods, acr="forged")
    assert record.acr == acr  # a given acr that disagrees with the methods is not kept


def test_a_record_without_a_known_method_is_refused():
    for amr in ((), ("password",), ("pwd", "face")):
        with pytest.raises(ValueError):
            Authentication(sub="s", account_type="natural", sid=None, auth_time=1, amr=amr)


def test_a_record_survives_its_json_form_whole():
    record = Authentication(sub="s", account_type="legal", sid="sid", auth_time=7, amr=("pwd", "otp"))
    assert Authentication.from_json(record.as_json()) == record
    assert record.claims() == {"sub": "s", "account_type": "legal", "sid": "sid", "auth_time": 7,
                               "acr": ACR_TWO_FACTOR, "amr": ["pwd", "otp"]}


def test_discovery_advertises_the_acr_of_each_way_of_signing_in_offered():
    assert acr_values_supported() == [ACR_PASSWORD]
