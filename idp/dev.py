"""Development-only pages (registered only when IDP_ENV=development): the SMS outbox, and beside
it the mail outbox (IDP_MAIL_SENDER=outbox)."""

from flask import Blueprint, render_template

from idp.extensions import services

bp = Blueprint("dev", __name__, url_prefix="/dev")


def init_app(app) -> None:
    app.register_blueprint(bp)


def _messages(sender) -> list[dict]:
    return sender.messages() if hasattr(sender, "messages") else []


@bp.get("/sms-outbox")
def sms_outbox():
    return render_template("dev/sms_outbox.html", messages=_messages(services().sms),
                           mails=_messages(services().mail))
