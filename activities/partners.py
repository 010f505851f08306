"""Activities of partner onboarding that call outside systems, and the sanctions screening.

- :class:`PartnerCheckActivities`: the checks, which run in parallel: the VAT number
  (``vies``), the company registry (``registry``), the company's credit score (``credit``: a
  check of amount 0 reserves nothing and answers the score), and the sanctions list (a file,
  on the hub's queue).
- :class:`PartnerProvisioningActivities`: the wholesale billing account (``billing``), the
  organization in the CRM (``crm``), the OAuth2 client at the identity provider
  (``identity``), and the connectivity test against the partner's callback (``partner``).

Secrets: the identity provider's client secret and registration access token are sealed
(:mod:`hub.sealing`) inside the activity that receives them, so what reaches the workflow, its
history and the Temporal UI is a sealed token; the connectivity test unseals the webhook
signing secret where it signs with it. Tokens are bound to the application (the sealing
context) and to their field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from activities.definitions import HUB, defn
from activities.errors import outside_call
from adapters.billing import BillingClient
from adapters.callbacks import CallbackClient
from adapters.credit import CreditAgencyClient
from adapters.crm import CrmClient
from adapters.registry import CompanyRegistryClient
from adapters.vies import ViesClient
from hub.errors import PermanentError
from hub.partners import sanctions
from hub.partners.vat import parse_vat_id
from hub.sealing import Sealer, Unsealer

#: Sealed fields: each token opens only as its field of its application.
CLIENT_SECRET = "client_secret"
REGISTRATION_TOKEN = "registration_access_token"
WEBHOOK_SECRET = "webhook_secret"


class RegisteredClientLike(Protocol):
    """``adapters.identity.RegisteredClient``: what the provider answers a registration."""

    @property
    def client_id(self) -> str: ...

    @property
    def client_secret(self) -> str: ...

    @property
    def registration_access_token(self) -> str: ...

    @property
    def registration_client_uri(self) -> str: ...


class IdentityProvider(Protocol):
    """What the hub needs of the identity provider (``adapters.identity``): RFC 7591 dynamic
    client registration, and RFC 7592 deletion (idempotent)."""

    @property
    def token_endpoint(self) -> str: ...

    async def register_client(
        self, *, client_name: str, scopes: list[str], partner_id: str
    ) -> RegisteredClientLike: ...

    async def delete_client(
        self, registration_client_uri: str, registration_access_token: str
    ) -> None: ...


class NoIdentityProvider:
    """Stands in where no identity provider is configured (``HUB_OIDC_ISSUER``): registering a
    client fails (the provisioning compensates), deleting one has nothing to delete."""

    token_endpoint = ""

    async def register_client(
        self, *, client_name: str, scopes: list[str], partner_id: str
    ) -> RegisteredClientLike:
        raise PermanentError(
            "no identity provider is configured for partner clients", system="identity"
        )

    async def delete_client(
        self, registration_client_uri: str, registration_access_token: str
    ) -> None:
        return None


def require_sealing(sealer: Sealer | None, unsealer: Unsealer | None) -> tuple[Sealer, Unsealer]:
    """Partner secrets are never kept or passed in clear: no seal keys, no provisioning."""
    if sealer is None or unsealer is None:
        raise PermanentError(
            "partner credentials need HUB_SEAL_KEYS on the worker (python -m hub.sealing)",
            system="hub",
        )
    return sealer, unsealer


# --- Checks ----------------------------------------------------------------------------------


@dataclass
class VatCheckInput:
    vat_id: str


@dataclass
class VatCheckResult:
    vat_id: str
    valid: bool
    name: str | None
    address: str | None
    request_date: str


@dataclass
class RegistryLookupInput:
    registration_number: str


@dataclass
class RegistryLookupResult:
    found: bool
    name: str | None = None
    legal_form: str | None = None
    status: str | None = None
    country: str | None = None


@dataclass
class CompanyScoreInput:
    organization_id: str
    name: str
    idempotency_key: str
    currency: str = "EUR"


@dataclass
class CompanyScoreResult:
    score: int
    check_id: str


@dataclass
class ScreeningInput:
    #: The company's name, its trading name, its representatives' names.
    names: list[str]
    threshold: float


@dataclass
class ScreeningResult:
    hits: list[dict[str, Any]]
    #: Which list was screened against: its file name and how many names it holds.
    list_name: str
    listed_names: int


class PartnerCheckActivities:
    def __init__(
        self,
        *,
        vies: ViesClient,
        registry: CompanyRegistryClient,
        credit: CreditAgencyClient,
        sanctions_list: Any,
    ) -> None:
        self.vies = vies
        self.registry = registry
        self.credit = credit
        #: A ``pathlib.Path`` to an FSF XML file.
        self.sanctions_list = sanctions_list

    @defn("vies.check_vat")
    async def check_vat(self, data: VatCheckInput) -> VatCheckResult:
        vat = parse_vat_id(data.vat_id)
        with outside_call():
            answer = await self.vies.check_vat(vat.country, vat.number)
        return VatCheckResult(
            str(vat), answer.valid, answer.name, answer.address, answer.request_date.isoformat()
        )

    @defn("registry.lookup_company")
    async def lookup_company(self, data: RegistryLookupInput) -> RegistryLookupResult:
        with outside_call():
            company = await self.registry.company(data.registration_number)
        if company is None:
            return RegistryLookupResult(found=False)
        return RegistryLookupResult(
            True, company.name, company.legal_form, company.status, company.country
        )

    @defn("credit.company_score")
    async def company_score(self, data: CompanyScoreInput) -> CompanyScoreResult:
        """The company's score: a check of amount 0, which reserves nothing."""
        with outside_call():
            decision = await self.credit.check(
                customer_id=data.organization_id,
                name=data.name,
                amount=0.0,
                currency=data.currency,
                idempotency_key=data.idempotency_key,
            )
        return CompanyScoreResult(decision.score, decision.check_id)

    @defn("partners.screen_sanctions", system=HUB)
    async def screen_sanctions(self, data: ScreeningInput) -> ScreeningResult:
        with outside_call():
            try:
                listed = sanctions.load_list(self.sanctions_list)
            except (OSError, ValueError) as exc:
                # A list that cannot be read clears nobody: the step fails and parks.
                raise PermanentError(str(exc), system="sanctions") from exc
        hits = sanctions.screen(data.names, listed, data.threshold)
        return ScreeningResult(
            [hit.as_dict() for hit in hits], self.sanctions_list.name, len(listed)
        )


# --- Provisioning ----------------------------------------------------------------------------


@dataclass
class WholesaleAccountInput:
    organization_id: str
    name: str
    vat_id: str
    currency: str
    idempotency_key: str


@dataclass
class WholesaleAccountResult:
    account_id: str
    opened: bool


@dataclass
class CrmOrganizationInput:
    organization_id: str
    name: str
    trading_name: str | None
    vat_id: str
    registration_number: str
    billing_account_id: str | None
    status: str
    idempotency_key: str


@dataclass
class DeleteCrmOrganizationInput:
    organization_id: str
    idempotency_key: str


@dataclass
class RegisterClientInput:
    application_id: str
    organization_id: str
    client_name: str
    scopes: list[str]


@dataclass
class RegisterClientResult:
    client_id: str
    registration_client_uri: str
    #: Sealed tokens (``hub.sealing``), never the values.
    client_secret_sealed: str
    registration_token_sealed: str
    token_endpoint: str


@dataclass
class DeleteClientInput:
    application_id: str
    registration_client_uri: str
    registration_token_sealed: str


@dataclass
class ConnectivityInput:
    application_id: str
    organization_id: str
    callback_url: str
    webhook_secret_sealed: str
    #: ``webhook-id``: the same for every attempt of the step, so the partner can dedupe.
    message_id: str
    timeout: float


@dataclass
class ConnectivityResult:
    status: int
    delivered_at: datetime
    message_id: str = ""
    notes: list[str] = field(default_factory=list)


class PartnerProvisioningActivities:
    def __init__(
        self,
        *,
        billing: BillingClient,
        crm: CrmClient,
        identity: IdentityProvider,
        callbacks: CallbackClient,
        sealer: Sealer | None,
        unsealer: Unsealer | None,
    ) -> None:
        self.billing = billing
        self.crm = crm
        self.identity = identity
        self.callbacks = callbacks
        self.sealer = sealer
        self.unsealer = unsealer

    @defn("billing.open_wholesale_account")
    async def open_wholesale_account(self, data: WholesaleAccountInput) -> WholesaleAccountResult:
        with outside_call():
            account_id, opened = await self.billing.create_wholesale_account(
                partner_id=data.organization_id,
                name=data.name,
                currency=data.currency,
                vat_id=data.vat_id,
                idempotency_key=data.idempotency_key,
            )
        return WholesaleAccountResult(account_id, opened)

    @defn("crm.upsert_organization")
    async def upsert_organization(self, data: CrmOrganizationInput) -> None:
        with outside_call():
            await self.crm.upsert_organization(
                data.organization_id,
                name=data.name,
                trading_name=data.trading_name,
                vat_id=data.vat_id,
                registration_number=data.registration_number,
                billing_account_id=data.billing_account_id,
                status=data.status,
                idempotency_key=data.idempotency_key,
            )

    @defn("crm.delete_organization")
    async def delete_organization(self, data: DeleteCrmOrganizationInput) -> None:
        with outside_call():
            await self.crm.delete_organization(
                data.organization_id, idempotency_key=data.idempotency_key
            )

    @defn("identity.register_client")
    async def register_client(self, data: RegisterClientInput) -> RegisterClientResult:
        """An OAuth2 client for the partner (RFC 7591); its secrets sealed before they leave."""
        sealer, _ = require_sealing(self.sealer, self.unsealer)
        with outside_call():
            client = await self.identity.register_client(
                client_name=data.client_name,
                scopes=list(data.scopes),
                partner_id=data.organization_id,
            )
        context = data.application_id
        return RegisterClientResult(
            client_id=client.client_id,
            registration_client_uri=client.registration_client_uri,
            client_secret_sealed=sealer.seal(CLIENT_SECRET, client.client_secret, context=context),
            registration_token_sealed=sealer.seal(
                REGISTRATION_TOKEN, client.registration_access_token, context=context
            ),
            token_endpoint=self.identity.token_endpoint,
        )

    @defn("identity.delete_client")
    async def delete_client(self, data: DeleteClientInput) -> None:
        """Delete the partner's client (RFC 7592); one already gone is fine."""
        _, unsealer = require_sealing(self.sealer, self.unsealer)
        token = unsealer.unseal(
            REGISTRATION_TOKEN, data.registration_token_sealed, context=data.application_id
        )
        with outside_call():
            await self.identity.delete_client(data.registration_client_uri, token)

    @defn("partner.connectivity_test")
    async def connectivity_test(self, data: ConnectivityInput) -> ConnectivityResult:
        """A signed test notification to the partner's callback, which must answer 2xx."""
        _, unsealer = require_sealing(self.sealer, self.unsealer)
        secret = unsealer.unseal(
            WEBHOOK_SECRET, data.webhook_secret_sealed, context=data.application_id
        )
        payload = {
            "eventId": data.message_id,
            "eventType": "PartnerConnectivityTestEvent",
            "eventTime": datetime.now(UTC).isoformat(),
            "event": {"organization": {"id": data.organization_id}},
        }
        with outside_call():
            status = await self.callbacks.notify(
                data.callback_url,
                payload,
                secret=secret,
                message_id=data.message_id,
                timeout=data.timeout,
            )
        return ConnectivityResult(status, datetime.now(UTC), data.message_id)
