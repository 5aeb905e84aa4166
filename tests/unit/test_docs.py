"""The documentation keeps up with the code: every setting is described."""

from pathlib import Path

from idp.settings import SETTINGS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_every_setting_is_in_the_configuration_docs():
    text = (DOCS / "configuration.md").read_text(encoding="utf-8")
    missing = [s.env for s in SETTINGS if f"`{s.env}`" not in text]
    assert not missing, f"docs/configuration.md does not describe {missing}"
