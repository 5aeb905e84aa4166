"""Domain events. Areas announce what happened; the audit log (and later SMS notices,
back-channel logout) subscribe instead of being called inline.

Every signal is sent with keyword arguments ``subject`` (login name or id), ``outcome``
(success / failure / refused) and optional ``details`` (a JSON-able dict without secrets).
The audit log writes an event in the transaction of the work it describes (idp.unit_of_work):
the request, command or job commits both or neither. A refusal must leave its trace although
its request rolls back: an event whose outcome is not success, or one of ``KEPT_EVENTS``, is
written through a short transaction of its own.
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
# Password recovery (idp.recovery): a step refused or throttled, a reset done (by SMS code, e-mail
# link or approved appeal), an appeal submitted, a reset link or confirmation mail sent, an
# e-mail address confirmed, the mail server unavailable.
recovery_refused = _events.signal("recovery_refused")
password_recovered = _events.signal("password_recovered")
appeal_submitted = _events.signal("appeal_submitted")
recovery_mail_sent = _events.signal("recovery_mail_sent")
email_confirmed = _events.signal("email_confirmed")
mail_unavailable = _events.signal("mail_unavailable")
# A job of the durable queue (idp.jobs) gave up after its last attempt (details: job_id, kind,
# attempts, error): a notice never delivered, a verification never asked again.
job_failed = _events.signal("job_failed")
# The national platform (upstream OpenID Connect provider, idp.federation): an identity linked
# to an account (details: origin link/create), a link removed (by the user or staff), a sign-in
# through it that failed (details: reason), a back-channel logout from it.
upstream_linked = _events.signal("upstream_linked")
upstream_unlinked = _events.signal("upstream_unlinked")
upstream_login_failed = _events.signal("upstream_login_failed")
upstream_logged_out = _events.signal("upstream_logged_out")
# Asks the SSO sessions (idp.oauth.sessions) to end one session, browser copy included, from a
# request that is not that browser's (an upstream back-channel logout). Not audited itself: the
# session's end is (session_ended).
sso_session_end_requested = _events.signal("sso_session_end_requested")
# Every answer of the token endpoint (subject: the client id as sent; details: grant_type, and
# error when refused). Not a security event of the audit log (one row per token request would
# double the endpoint's writes): operations count it and log the refused ones (idp.ops.events).
token_requested = _events.signal("token_requested")
# Delegation (用户授权管理): a unit authorised a person, changed or revoked it; the person
# accepted or declined it; its validity ran out (details: delegation_id, person, clients …).
delegation_granted = _events.signal("delegation_granted")
delegation_changed = _events.signal("delegation_changed")
delegation_accepted = _events.signal("delegation_accepted")
delegation_declined = _events.signal("delegation_declined")
delegation_revoked = _events.signal("delegation_revoked")
delegation_expired = _events.signal("delegation_expired")
# Housekeeping (idp.ops.housekeeping): one purge run deleted rows that could no longer matter
# (details: deleted, the rows per table; retention, jobs_retention).
rows_purged = _events.signal("rows_purged")

SECURITY_EVENTS = (
    account_registered, login_succeeded, login_failed, account_locked, logged_out,
    profile_updated, password_changed, password_rehashed, sms_code_sent, sms_code_refused, request_refused,
    pii_key_rotated, token_revoked, consent_granted, consent_revoked, client_changed,
    session_ended, signing_key_rotated, captcha_failed, sms_code_rejected, sms_unavailable,
    staff_login_succeeded, staff_login_failed, staff_enrolled,
    staff_action, case_decided, verification_checked, verification_submitted, verification_voided,
    identity_conflict, personal_data_viewed, outbound_refused,
    delegation_granted, delegation_changed, delegation_accepted, delegation_declined,
    delegation_revoked, delegation_expired,
    recovery_refused, password_recovered, appeal_submitted, recovery_mail_sent, email_confirmed, mail_unavailable,
    upstream_linked, upstream_unlinked, upstream_login_failed, upstream_logged_out,
    legacy_import_finished, legacy_lookup, job_failed, rows_purged,
)

# Kept whatever happens to the work around them (idp.unit_of_work.keep): attempts that failed or
# were refused, and effects outside the database that cannot be rolled back (an SMS sent, clear
# data shown), whatever their outcome.
KEPT_EVENTS = (
    login_failed, account_locked, staff_login_failed, captcha_failed, sms_code_sent, sms_code_refused,
    sms_code_rejected, sms_unavailable, request_refused, outbound_refused, identity_conflict,
    personal_data_viewed,
)
