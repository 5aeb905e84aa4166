"""Every reason code the account service can raise has a message on the pages; an unknown one
gets a generic message, never the raw code.

The reasons are read from the source (every ``FieldError(field, "reason")`` and every reason
the helpers it passes through can return), so a new reason without a message fails here.
"""

from __future__ import annotations

import ast
import inspect

import pytest

from idp.accounts import service, views
from idp.security import passwords, sms_codes


def _returned_strings(function) -> set[str]:
    tree = ast.parse(inspect.getsource(function))
    return {node.value.value for node in ast.walk(tree)
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def _literal_field_error_reasons() -> set[str]:
    tree = ast.parse(inspect.getsource(service))
    reasons = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"FieldError", "_CodeSpentMeanwhile"}:
            reason = node.args[1]
            if isinstance(reason, ast.Constant):
                reasons.add(reason.value)
    return reasons


def raisable_reasons() -> set[str]:
    return (_literal_field_error_reasons()
            | _returned_strings(passwords.password_problem)
            | _returned_strings(sms_codes.verify_code)
            | _returned_strings(sms_codes.verify_keyed)  # verify_code's answers, for any identity
            | _returned_strings(sms_codes.check_code))


def test_the_service_declares_every_reason_it_can_raise():
    found = raisable_reasons()
    assert "document_taken" in found and "password_too_short" in found and "sms_code_wrong" in found
    assert found <= set(service.REASONS), found - set(service.REASONS)


@pytest.mark.parametrize("reason", service.REASONS)
def test_every_reason_of_the_service_has_its_own_message(app, reason):
    with app.test_request_context("/?lang=en"):
        message = views.field_message(reason)
        assert message != str(views.GENERIC_FIELD_MESSAGE)
        assert reason not in message


def test_an_unknown_reason_gets_the_generic_message_not_the_code(app):
    with app.test_request_context("/?lang=en"):
        message = views.field_message("some_future_reason")
        assert message == str(views.GENERIC_FIELD_MESSAGE)
        assert "some_future_reason" not in message


def test_the_password_messages_are_those_of_the_forms(app):
    from idp.accounts.forms import PASSWORD_MESSAGES

    for reason, message in PASSWORD_MESSAGES.items():
        assert views.FIELD_MESSAGES[reason] is message
