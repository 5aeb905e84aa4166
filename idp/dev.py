"""Development-only pages (registered only when IDP_ENV=development): the SMS outbox."""

from flask import Blueprint, render_template

from idp.extensions import services

bp = Blueprint("dev", __name__, url_prefix="/dev")


def init_app(app) -> None:
    app.register_blueprint(bp)


@bp.get("/sms-outbox")
def sms_outbox():
    sender = services().sms
    messages = sender.messages() if hasattr(sender, "messages") else []
    return render_template("dev/sms_outbox.html", messages=messages)
