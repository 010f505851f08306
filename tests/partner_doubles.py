"""An identity provider with the interface of ``adapters.identity.IdentityProviderClient``,
for tests until that adapter (and the OpenID provider it talks to) is in this branch: it
keeps the clients it registered, so a test can assert none is left behind."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field


@dataclass
class RegisteredClient:
    client_id: str
    client_secret: str
    registration_access_token: str
    registration_client_uri: str


@dataclass
class IdentityProviderDouble:
    token_endpoint: str = "https://idp.test/token"
    #: Registered clients by client id: name, scopes, partner.
    clients: dict[str, dict[str, object]] = field(default_factory=dict)
    #: Partner ids whose registration fails (the provider refuses).
    refuse: set[str] = field(default_factory=set)
    #: The secrets it handed out, to prove none of them reaches a history.
    secrets_issued: list[str] = field(default_factory=list)

    async def register_client(
        self, *, client_name: str, scopes: list[str], partner_id: str
    ) -> RegisteredClient:
        from hub.errors import PermanentError

        if partner_id in self.refuse:
            raise PermanentError("registration refused: invalid_client_metadata", system="identity")
        client_id = f"client-{uuid.uuid4().hex[:12]}"
        secret, token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.secrets_issued += [secret, token]
        self.clients[client_id] = {
            "name": client_name,
            "scopes": list(scopes),
            "partner": partner_id,
            "token": token,
        }
        return RegisteredClient(client_id, secret, token, f"https://idp.test/reg/{client_id}")

    async def delete_client(
        self, registration_client_uri: str, registration_access_token: str
    ) -> None:
        from hub.errors import AuthenticationError

        client_id = registration_client_uri.rsplit("/", 1)[-1]
        client = self.clients.get(client_id)
        if client is None:
            return  # RFC 7592: gone already is fine for the hub
        if client["token"] != registration_access_token:
            raise AuthenticationError("invalid registration access token", system="identity")
        del self.clients[client_id]

    def of(self, partner_id: str) -> list[str]:
        return [cid for cid, client in self.clients.items() if client["partner"] == partner_id]
