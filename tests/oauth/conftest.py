"""The hub with OAuth2 on, against the session's real OpenID provider (``idp`` fixture)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from hub.settings import Settings
from tests.conftest import IdentityProvider


@pytest.fixture
def hub_settings(hub_settings: Settings, idp: IdentityProvider) -> Settings:
    # A short refetch interval, so a rotation is seen at once; its rate limit is unit-tested.
    return hub_settings.model_copy(
        update=idp.hub_settings() | {"oidc_jwks_refetch_interval": timedelta(milliseconds=200)}
    )
