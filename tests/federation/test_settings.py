"""The national platform's issuer follows the rules of every outbound call."""

from __future__ import annotations

import pytest

from idp.federation.upstream import Upstream
from idp.settings import ConfigurationError, _check_outbound


def _cfg(**extra):
    return {"ENV": "production", "ALLOW_LOOPBACK_HTTP": False, "OUTBOUND_MAX_BYTES": 65536, "SMS_GATEWAY": "outbox",
            "VERIFIER": "local", **extra}


@pytest.mark.parametrize("issuer", ["http://national.example.gov.cn", "https://127.0.0.1", "https://10.0.0.8",
                                    "https://localhost"])
def test_production_refuses_a_national_issuer_that_is_not_https_to_a_public_name(issuer):
    with pytest.raises(ConfigurationError, match="IDP_NATIONAL_ISSUER"):
        _check_outbound(_cfg(NATIONAL_ISSUER=issuer))


def test_production_accepts_an_https_national_issuer():
    _check_outbound(_cfg(NATIONAL_ISSUER="https://national.example.gov.cn"))


@pytest.mark.parametrize("missing", ["NATIONAL_ISSUER", "NATIONAL_CLIENT_ID", "NATIONAL_CLIENT_SECRET"])
def test_the_upstream_is_configured_only_with_issuer_id_and_secret(missing):
    cfg = {"NATIONAL_ISSUER": "https://national.example.gov.cn/", "NATIONAL_CLIENT_ID": "idp",
           "NATIONAL_CLIENT_SECRET": "secret"}
    assert Upstream.from_config(cfg).issuer == "https://national.example.gov.cn"
    cfg[missing] = ""
    assert Upstream.from_config(cfg) is None
