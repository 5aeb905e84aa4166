"""Domain events. Areas announce what happened; the audit log (and later SMS notices,
back-channel logout) subscribe instead of being called inline.

Every signal is sent with keyword arguments ``subject`` (login name or id), ``outcome``
(success / failure / refused) and optional ``details`` (a JSON-able dict without secrets).
The audit log commits each event at once, so that a refused request, which commits nothing of
its own, still leaves its trace; a sender that commits right after passes
``committed_by_sender=True``, and the event is committed in the sender's transaction.
"""

from blinker import Namespace

_events = Namespace()

account_registered = _events.signal("account_registered")
login_succeeded = _events.signal("login_succeeded")
login_failed = _events.signal("login_failed")
account_locked = _events.signal("account_locked")
logged_out = _events.signal("logged_out")
profile_updated = _events.signal("profile_updated")
password_changed = _events.signal("password_changed")
# A password hash replaced at sign-in by argon2id with the current parameters (details: from)
password_rehashed = _events.signal("password_rehashed")
sms_code_sent = _events.signal("sms_code_sent")
sms_code_refused = _events.signal("sms_code_refused")
request_refused = _events.signal("request_refused")  # CSRF failures, oversized bodies …
pii_key_rotated = _events.signal("pii_key_rotated")
token_revoked = _events.signal("token_revoked")
consent_granted = _events.signal("consent_granted")
consent_revoked = _events.signal("consent_revoked")
client_changed = _events.signal("client_changed")
session_ended = _events.signal("session_ended")  # SSO session ended (logout, user centre, RP)
signing_key_rotated = _events.signal("signing_key_rotated")
captcha_failed = _events.signal("captcha_failed")  # a wrong, missing or expired captcha answer
sms_code_rejected = _events.signal("sms_code_rejected")  # a wrong, expired or unrequested SMS code
sms_unavailable = _events.signal("sms_unavailable")  # the SMS gateway did not take a message
staff_login_succeeded = _events.signal("staff_login_succeeded")
staff_login_failed = _events.signal("staff_login_failed")
staff_enrolled = _events.signal("staff_enrolled")
staff_action = _events.signal("staff_action")  # any change made in the console
# A review case was approved or rejected (sent by idp.cases on every decision); subscribers:
# the audit log, and the SMS notice of real-name verification (idp.verification.service).
case_decided = _events.signal("case_decided")
verification_checked = _events.signal("verification_checked")  # an automatic real-name check ran
verification_submitted = _events.signal("verification_submitted")  # documents submitted for review
verification_voided = _events.signal("verification_voided")  # a review or a verification voided by a data change
identity_conflict = _events.signal("identity_conflict")  # identity data already verified elsewhere
personal_data_viewed = _events.signal("personal_data_viewed")  # a reviewer saw clear data or a document
legacy_import_finished = _events.signal("legacy_import_finished")  # a legacy import run ended (idp.legacy)
legacy_lookup = _events.signal("legacy_lookup")  # a public account lookup (/account-lookup) answered
outbound_refused = _events.signal("outbound_refused")  # a call to a URL or address the rules forbid (SSRF)
# Every answer of the token endpoint (subject: the client id as sent; details: grant_type, and
# error when refused). Not a security event of the audit log (one row per token request would
# double the endpoint's writes): operations count it and log the refused ones (idp.ops.events).
token_requested = _events.signal("token_requested")

SECURITY_EVENTS = (
    account_registered, login_succeeded, login_failed, account_locked, logged_out,
    profile_updated, password_changed, password_rehashed, sms_code_sent, sms_code_refused, request_refused,
    pii_key_rotated, token_revoked, consent_granted, consent_revoked, client_changed,
    session_ended, signing_key_rotated, captcha_failed, sms_code_rejected, sms_unavailable,
    staff_login_succeeded, staff_login_failed, staff_enrolled,
    staff_action, case_decided, verification_checked, verification_submitted, verification_voided,
    identity_conflict, personal_data_viewed, outbound_refused, legacy_import_finished, legacy_lookup,
)
