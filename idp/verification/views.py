"""上传自然人信息 / 上传法人信息: the manual path of real-name verification. The rules live in
``idp.verification.service``; this module maps the request to it and its reasons to messages."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from idp.accounts.profile import profile_rows
from idp.accounts.views import current_account, login_required
from idp.verification import service
from idp.verification.images import MAX_BYTES

bp = Blueprint("verification", __name__)

MESSAGES = {
    "already_verified": _l("Your real name is verified: the uploaded information can only be viewed."),
    "too_many_uploads": _l("Too many uploads in a short time. Please wait a minute and try again."),
    "identity_incomplete": _l("Please complete your identity data with “Edit personal information” or "
                              "“Edit legal-entity information” first."),
    "document_missing": _l("Please upload this document."),
    "document_too_large": _l("The file is larger than 1 MB. Please upload a smaller photo."),
    "document_bad_extension": _l("Only jpg, jpeg and png files can be uploaded."),
    "document_not_an_image": _l("This file is not a jpg or png image. Please upload a photo of the document."),
    "document_damaged": _l("This image is damaged or incomplete. Please upload the photo again."),
    "document_too_many_pixels": _l("This image has too many pixels. Please upload a photo of at most 25 megapixels."),
}


def _page(account, errors=None, message=None, status=200):
    kinds = service.DOCUMENT_KINDS[account.account_type]
    latest = service.latest_case(account)
    uploaded = service.document_kinds(latest) if latest is not None and latest.state != "voided" else []
    return render_template(
        "verification/upload.html", account=account, rows=profile_rows(account),
        kinds=[(kind, service.DOCUMENT_LABELS[kind]) for kind in kinds], errors=errors or {},
        message=message, read_only=service.is_verified(account), uploaded=uploaded,
        pending=account.verification_status == "pending",
    ), status


@bp.route("/center/profile/documents", methods=["GET", "POST"])
@login_required
def upload():
    account = current_account()
    if request.method == "GET":
        return _page(account)
    # The body limit of this path is raised in idp.http.IdpRequest (two photos of 1 MB).
    files = {}
    for kind in service.DOCUMENT_KINDS[account.account_type]:
        storage = request.files.get(kind)
        if storage is not None and storage.filename:
            files[kind] = (storage.filename, storage.stream.read(MAX_BYTES + 1))
    try:
        service.submit_documents(account, files)
    except service.DocumentError as error:
        return _page(account, errors={error.field: str(MESSAGES[error.reason])}, status=400)
    except service.VerificationError as error:
        status = 429 if error.reason == "too_many_uploads" else 409 if error.reason == "already_verified" else 400
        return _page(account, message=(error.reason, str(MESSAGES[error.reason])), status=status)
    flash(_("Your documents have been submitted for manual review. You will be told the outcome "
            "here and by SMS."))
    return redirect(url_for("accounts.profile"))
