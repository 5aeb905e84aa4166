"""Extensions and per-application services, unbound until ``create_app`` binds them."""

from __future__ import annotations

from flask import current_app
from flask_babel import Babel
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# SQLAlchemy's default session: objects expire at a commit. A unit of work commits once, at its
# end (idp.unit_of_work), so nothing reloads rows after a commit within a request any more.
db = SQLAlchemy(model_class=Base)
csrf = CSRFProtect()
migrate = Migrate()
babel = Babel()


class Services:
    """The application's outside services and shared components, looked up by role."""

    def __init__(self, **kwargs) -> None:
        self.__dict__.update(kwargs)


def services() -> Services:
    return current_app.extensions["idp.services"]
