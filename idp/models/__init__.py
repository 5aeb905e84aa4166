"""The provider's persistent model, one module per aggregate."""

from idp.models.accounts import Account  # noqa: F401
from idp.models.audit import AuditEvent  # noqa: F401
from idp.models.cases import ReviewCase  # noqa: F401
from idp.models.clients import Client  # noqa: F401
from idp.models.federation import UpstreamLink  # noqa: F401
from idp.models.legacy import LegacyImportRecord, LegacyImportRun, LegacyImportSkip  # noqa: F401
from idp.models.staff import InitialAccessToken, StaffUser  # noqa: F401
from idp.models.oauth import (  # noqa: F401
    AuthorizationCode,
    Consent,
    Job,
    RefreshToken,
    SigningKey,
    SsoSession,
)
from idp.models.delegations import DelegatedSignIn, Delegation  # noqa: F401
