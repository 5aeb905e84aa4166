"""The real-name verifier role: checks a person's or a unit's identity data.

Implementations, chosen by ``IDP_VERIFIER``:

- ``LocalVerifier`` (``local``, development and the demo): the check digits of the document
  number or unified social credit code, plus, when ``IDP_VERIFIER_REGISTRY`` names a file, that
  registry of known identities: a known identity with matching data is a ``match``, a known
  number with other data a ``mismatch``, an unknown number ``not_found``. Without a registry
  every well-formed identity matches.
- ``HttpVerifier`` (``http``): the national interface, a signed JSON request as INTERFACES.md
  ("Outside services") fixes it, with a timeout and ``IDP_VERIFIER_RETRIES`` further attempts.
  Timeouts, connection errors, 5xx and malformed answers raise ``VerifierUnavailable``.
"""

from __future__ import annotations

import csv
import json
import secrets
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from idp.security import identifiers
from idp.security.signing import signed_headers

MATCH = "match"
MISMATCH = "mismatch"
NOT_FOUND = "not_found"
RESULTS = (MATCH, MISMATCH, NOT_FOUND)


class VerifierUnavailable(RuntimeError):
    """The verifier could not answer (timeout, refused, 5xx, bad answer)."""


@dataclass(frozen=True)
class Verdict:
    result: str  # match | mismatch | not_found
    reference: str | None = None


class Verifier(Protocol):
    def verify_person(self, name: str, document_type: str, document_number: str) -> Verdict: ...

    def verify_unit(self, org_name: str, uscc: str, legal_representative: str | None) -> Verdict: ...


def _norm(text: str | None) -> str:
    return "".join((text or "").split())


class LocalVerifier:
    def __init__(self, registry: str | Path | None = None) -> None:
        self.people: dict[tuple[str, str], str] = {}
        self.units: dict[str, tuple[str, str]] = {}
        if registry:
            self._load(Path(registry))
        self.has_registry = bool(registry)

    def _load(self, path: Path) -> None:
        text = path.read_text(encoding="utf-8-sig")
        if path.suffix.lower() == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
        else:
            rows = json.loads(text)
        for row in rows:
            kind = (row.get("kind") or "natural").strip()
            if kind == "legal":
                uscc = _norm(row.get("uscc")).upper()
                self.units[uscc] = (_norm(row.get("org_name")), _norm(row.get("legal_representative")))
            else:
                number = identifiers.normalise_document_number(_norm(row.get("document_number")))
                doc_type = (row.get("document_type") or "resident_id").strip()
                self.people[(doc_type, number)] = _norm(row.get("name"))

    def verify_person(self, name: str, document_type: str, document_number: str) -> Verdict:
        number = identifiers.normalise_document_number(document_number or "")
        if identifiers.validate_document_number(document_type, number):
            return Verdict(MISMATCH, "local")
        if not self.has_registry:
            return Verdict(MATCH, "local-" + secrets.token_hex(6))
        known = self.people.get((document_type, number))
        if known is None:
            return Verdict(NOT_FOUND, "local")
        return Verdict(MATCH if known == _norm(name) else MISMATCH, "local-" + secrets.token_hex(6))

    def verify_unit(self, org_name: str, uscc: str, legal_representative: str | None) -> Verdict:
        uscc = _norm(uscc).upper()
        if identifiers.validate_unit_code("domestic", uscc):
            return Verdict(NOT_FOUND, "local")  # not a mainland code: not in the national register
        if not self.has_registry:
            return Verdict(MATCH, "local-" + secrets.token_hex(6))
        known = self.units.get(uscc)
        if known is None:
            return Verdict(NOT_FOUND, "local")
        known_name, known_rep = known
        ok = known_name == _norm(org_name) and (not known_rep or not legal_representative
                                                 or known_rep == _norm(legal_representative))
        return Verdict(MATCH if ok else MISMATCH, "local-" + secrets.token_hex(6))


class HttpVerifier:
    def __init__(self, url: str, secret: str, timeout: float, retries: int, clock) -> None:
        if not url or not secret:
            raise ValueError("IDP_VERIFIER_URL and IDP_VERIFIER_SECRET are required for IDP_VERIFIER=http")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.retries = max(0, retries)
        self.clock = clock

    def verify_person(self, name: str, document_type: str, document_number: str) -> Verdict:
        return self._ask({"kind": "natural", "name": name, "document_type": document_type,
                          "document_number": document_number})

    def verify_unit(self, org_name: str, uscc: str, legal_representative: str | None) -> Verdict:
        return self._ask({"kind": "legal", "org_name": org_name, "uscc": uscc,
                          "legal_representative": legal_representative or ""})

    def _ask(self, payload: dict) -> Verdict:
        payload = {"request_id": secrets.token_hex(16), **payload}
        body = json.dumps(payload, ensure_ascii=False).encode()
        last: Exception | None = None
        for _ in range(1 + self.retries):
            # Signed afresh for each attempt (the timestamp); the same request_id, so the
            # interface can recognise a repeated question.
            headers = signed_headers(self.secret, int(self.clock.time()), body)
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as response:  # nosec B310  # the operator's configured verifier URL, not user input
                    answer = json.loads(response.read(65536) or b"{}")
            except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTPError is a URLError
                last = exc
                if isinstance(exc, urllib.error.HTTPError) and exc.code < 500:
                    break  # refused as malformed: asking again would not help
                continue
            result = answer.get("result") if isinstance(answer, dict) else None
            if result not in RESULTS:
                raise VerifierUnavailable("verifier answer without a known result")
            reference = answer.get("reference")
            return Verdict(result, str(reference)[:100] if reference else None)
        raise VerifierUnavailable(str(last))


def create_verifier(config: dict, clock) -> Verifier:
    kind = config["VERIFIER"]
    if kind == "local":
        return LocalVerifier(config.get("VERIFIER_REGISTRY") or None)
    if kind == "http":
        return HttpVerifier(config["VERIFIER_URL"], config["VERIFIER_SECRET"], config["VERIFIER_TIMEOUT"],
                            config["VERIFIER_RETRIES"], clock)
    raise ValueError(f"unknown IDP_VERIFIER {kind!r}")
