"""A bare Flask "hello" app: the floor of any Flask view under a given server."""

from flask import Flask


def create() -> Flask:
    app = Flask("hello")

    @app.get("/hello")
    def hello():
        return "hello"

    return app


app = create()
