"""Activities against the HSS. OPc is derived here, so OP never reaches the HSS."""

from __future__ import annotations

from dataclasses import dataclass

from activities.definitions import defn
from activities.errors import outside_call
from adapters.hss import HssClient, QosProfile, qos_document, qos_from_document, subscriber_document
from hub.errors import InvalidKeys
from hub.milenage import derive_opc_hex


@dataclass
class CreateSubscriberInput:
    imsi: str
    msisdn: str
    ki: str
    qos: QosProfile
    idempotency_key: str
    opc: str | None = None
    op: str | None = None


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
    def __init__(self, client: HssClient) -> None:
        self.client = client

    @defn("hss.create_subscriber")
    async def create_subscriber(self, data: CreateSubscriberInput) -> None:
        with outside_call():
            if data.opc:
                opc = data.opc
            elif data.op:
                try:
                    opc = derive_opc_hex(data.ki, data.op)
                except ValueError as exc:
                    # The message names lengths, never key material.
                    raise InvalidKeys(f"cannot derive OPc: {exc}") from exc
            else:
                raise InvalidKeys("neither OPc nor OP given")
            document = subscriber_document(
                imsi=data.imsi, msisdn=data.msisdn, k=data.ki, opc=opc, qos=data.qos
            )
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
