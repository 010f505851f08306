"""Activities against the HSS, the only place where subscriber keys are unsealed.

Ki and OPc arrive sealed (:mod:`hub.sealing`), bound to their field and the IMSI, and are
unsealed right before the HSS call; the plain values live in this activity only and are kept
out of every error it raises. Histories from before sealing carry plain values, and OP rather
than OPc: both are still accepted, and OPc is then derived here, so OP never reaches the HSS.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from temporalio.exceptions import ApplicationError

from activities.definitions import defn
from activities.errors import outside_call
from adapters.hss import HssClient, QosProfile, qos_document, qos_from_document, subscriber_document
from hub.errors import InvalidKeys
from hub.milenage import derive_opc_hex
from hub.redact import REDACTED
from hub.sealing import InvalidSealedValueError, UnknownSealKeyError, Unsealer, is_sealed

logger = logging.getLogger(__name__)


@dataclass
class CreateSubscriberInput:
    imsi: str
    msisdn: str
    #: Sealed tokens (plain hex in histories from before sealing).
    ki: str = field(repr=False)
    qos: QosProfile
    idempotency_key: str
    opc: str | None = field(default=None, repr=False)
    #: Only in histories from before sealing: the API now derives OPc itself.
    op: str | None = field(default=None, repr=False)


@dataclass
class UpdateQosInput:
    imsi: str
    qos: QosProfile
    idempotency_key: str


@dataclass
class ReadQosInput:
    imsi: str


@dataclass
class DeleteSubscriberInput:
    imsi: str
    idempotency_key: str


class HssActivities:
    def __init__(self, client: HssClient, unsealer: Unsealer | None = None) -> None:
        self.client = client
        self.unsealer = unsealer

    def _open(self, name: str, value: str, imsi: str) -> str:
        if not is_sealed(value):
            # A history from before sealing: its value is as the API received it.
            logger.info("hss.create_subscriber: %s of IMSI %s arrived unsealed", name, imsi)
            return value
        if self.unsealer is None:
            # Retryable: a worker started without HUB_SEAL_KEYS is repaired by its settings,
            # and the order parks meanwhile instead of failing.
            raise ApplicationError(
                f"{name} is sealed, and this worker has no HUB_SEAL_KEYS", type="SealKeyMissing"
            )
        try:
            return self.unsealer.unseal(name, value, context=imsi)
        except UnknownSealKeyError as exc:
            # Retryable too: the key may still be rolling out to this worker.
            raise ApplicationError(str(exc), type="SealKeyMissing") from None
        except InvalidSealedValueError as exc:
            raise ApplicationError(
                str(exc), type="InvalidSealedValue", non_retryable=True
            ) from None

    @defn("hss.create_subscriber")
    async def create_subscriber(self, data: CreateSubscriberInput) -> None:
        ki = self._open("ki", data.ki, data.imsi)
        with outside_call():  # keys that cannot work are a business rejection: no retry
            if data.opc:
                opc = self._open("opc", data.opc, data.imsi)
            elif data.op:
                try:
                    opc = derive_opc_hex(ki, self._open("op", data.op, data.imsi))
                except ValueError as exc:
                    # The message names lengths, never key material.
                    raise InvalidKeys(f"cannot derive OPc: {exc}") from exc
            else:
                raise InvalidKeys("neither OPc nor OP given")
        document = subscriber_document(
            imsi=data.imsi, msisdn=data.msisdn, k=ki, opc=opc, qos=data.qos
        )
        with keys_kept_out(ki, opc), outside_call():
            await self.client.create_subscriber(document, idempotency_key=data.idempotency_key)

    @defn("hss.read_qos")
    async def read_qos(self, data: ReadQosInput) -> QosProfile:
        """The subscriber's QoS now. A step of its own, so that the value a compensation
        restores is recorded in history before the change, whatever retries follow."""
        with outside_call():
            return qos_from_document(await self.client.get_subscriber(data.imsi))

    @defn("hss.update_qos")
    async def update_qos(self, data: UpdateQosInput) -> None:
        with outside_call():
            await self.client.update_subscriber(
                data.imsi, qos_document(data.qos), idempotency_key=data.idempotency_key
            )

    @defn("hss.delete_subscriber")
    async def delete_subscriber(self, data: DeleteSubscriberInput) -> None:
        with outside_call():
            await self.client.delete_subscriber(data.imsi, idempotency_key=data.idempotency_key)


@contextmanager
def keys_kept_out(*keys: str) -> Iterator[None]:
    """Re-raise an ``ApplicationError`` whose message quotes a key (an HSS that echoes what it
    refused) with the key replaced, and without the chained errors that quote it too."""
    pattern = re.compile("|".join(re.escape(key) for key in keys if key), re.IGNORECASE)
    try:
        yield
    except ApplicationError as exc:
        if not pattern.pattern or not pattern.search(exc.message):
            raise
        raise ApplicationError(
            pattern.sub(REDACTED, exc.message),
            *exc.details,
            type=exc.type,
            non_retryable=exc.non_retryable,
            next_retry_delay=exc.next_retry_delay,
        ) from None
