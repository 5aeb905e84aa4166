"""Imports between idp's packages run one way: ``oauth`` → ``login`` → ``accounts`` /
``security``, never back (ARCHITECTURE.md, README "Architecture"). The protocol layer asks the
sign-in what is missing; the sign-in hands a finished interaction back through a registered
function (idp.login.interaction.on_resume), not an import. Every import counts, also one inside
a function: a deferred import is still a cycle of packages."""

from __future__ import annotations

import ast
from pathlib import Path

IDP = Path(__file__).resolve().parents[2] / "idp"

# package → the packages it must never import
FORBIDDEN = {
    "login": {"oauth", "admin", "delegations", "federation", "legacy", "recovery"},
    "accounts": {"oauth", "login"},
    "security": {"oauth", "login", "accounts"},
    "federation": {"oauth", "admin"},  # beside the sign-in: it registers itself with login
}


def _imported_packages(path: Path) -> set[tuple[str, int]]:
    """(idp package, line) of every import of an idp package in the module at ``path``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] if node.module != "idp" else [f"idp.{a.name}" for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "idp" and len(parts) > 1:
                found.add((parts[1], node.lineno))
    return found


def _violations(package: str, forbidden: set[str]) -> list[str]:
    return [f"idp/{package}/{path.relative_to(IDP / package)}:{line} imports idp.{target}"
            for path in sorted((IDP / package).rglob("*.py"))
            for target, line in sorted(_imported_packages(path)) if target in forbidden]


def test_the_sign_in_the_accounts_and_security_never_import_the_layers_above_them():
    problems = [v for package, forbidden in FORBIDDEN.items() for v in _violations(package, forbidden)]
    assert problems == []


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from idp.oauth import storage\n    import idp.login.flow\n")
    assert _imported_packages(module) == {("oauth", 2), ("login", 3)}
