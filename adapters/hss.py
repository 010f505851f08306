"""The HSS/UDM subscriber store (REST), with documents shaped like Open5GS's subscriber.

Keys (K, OPc) go to the HSS and nowhere else: they are never logged, and the HSS never echoes
them back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from adapters.rest import RestClient

#: Open5GS's AMBR unit code for bit/s (0 bps, 1 Kbps, 2 Mbps, 3 Gbps, 4 Tbps).
_UNIT_BPS = 0
#: Open5GS session type 3 = IPv4v6.
_SESSION_IPV4V6 = 3


@dataclass(frozen=True)
class QosProfile:
    """What a plan gives a subscriber in the core network."""

    qci: int
    ambr_downlink: int
    ambr_uplink: int
    data_quota: int = 0
    arp_priority: int = 8


def _ambr(downlink: int, uplink: int) -> dict[str, Any]:
    return {
        "downlink": {"value": downlink, "unit": _UNIT_BPS},
        "uplink": {"value": uplink, "unit": _UNIT_BPS},
    }


def qos_document(qos: QosProfile) -> dict[str, Any]:
    """The plan-dependent part of a subscriber document (what a plan change patches)."""
    return {
        "ambr": _ambr(qos.ambr_downlink, qos.ambr_uplink),
        "data_quota": qos.data_quota,
        "slice": [
            {
                "sst": 1,
                "sd": None,
                "default_indicator": True,
                "session": [
                    {
                        "name": "internet",
                        "type": _SESSION_IPV4V6,
                        "qos": {
                            "index": qos.qci,
                            "arp": {
                                "priority_level": qos.arp_priority,
                                "pre_emption_capability": 1,
                                "pre_emption_vulnerability": 1,
                            },
                        },
                        "ambr": _ambr(qos.ambr_downlink, qos.ambr_uplink),
                    }
                ],
            }
        ],
    }


def subscriber_document(
    *, imsi: str, msisdn: str, k: str, opc: str, qos: QosProfile
) -> dict[str, Any]:
    """A full Open5GS-style subscriber document. ``msisdn`` is E.164 with or without '+'."""
    return {
        "imsi": imsi,
        "msisdn": [msisdn.removeprefix("+")],
        "security": {"k": k.lower(), "opc": opc.lower(), "amf": "8000", "sqn": 0},
        "subscriber_status": 0,
        "access_restriction_data": 32,
        "network_access_mode": 0,
        "subscribed_rau_tau_timer": 12,
        **qos_document(qos),
    }


class HssClient(RestClient):
    system = "hss"

    async def create_subscriber(self, document: dict[str, Any], *, idempotency_key: str) -> None:
        await self.request("POST", "/subscribers", json=document, idempotency_key=idempotency_key)

    async def get_subscriber(self, imsi: str) -> dict[str, Any]:
        return self.body(await self.request("GET", f"/subscribers/{imsi}"))

    async def list_subscribers(self, offset: int, limit: int) -> tuple[list[dict[str, Any]], int]:
        """A page of subscribers in IMSI order (keys redacted) and how many there are."""
        body = self.body(
            await self.request("GET", f"/subscribers?offset={int(offset)}&limit={int(limit)}")
        )
        return list(body["items"]), int(body["total"])

    async def update_subscriber(
        self, imsi: str, patch: dict[str, Any], *, idempotency_key: str
    ) -> dict[str, Any]:
        response = await self.request(
            "PATCH", f"/subscribers/{imsi}", json=patch, idempotency_key=idempotency_key
        )
        return self.body(response)

    async def delete_subscriber(self, imsi: str, *, idempotency_key: str) -> bool:
        """Delete a subscriber; False when it was already gone."""
        response = await self.request(
            "DELETE",
            f"/subscribers/{imsi}",
            idempotency_key=idempotency_key,
            ok_statuses=frozenset({404}),
        )
        return response.status_code != 404


def qos_from_document(document: dict[str, Any]) -> QosProfile:
    """Read back the plan-dependent part of a subscriber document (inverse of qos_document)."""
    session = document["slice"][0]["session"][0]
    ambr = document["ambr"]
    scale = {0: 1, 1: 10**3, 2: 10**6, 3: 10**9, 4: 10**12}
    return QosProfile(
        qci=int(session["qos"]["index"]),
        ambr_downlink=int(ambr["downlink"]["value"]) * scale[int(ambr["downlink"].get("unit", 0))],
        ambr_uplink=int(ambr["uplink"]["value"]) * scale[int(ambr["uplink"].get("unit", 0))],
        data_quota=int(document.get("data_quota") or 0),
        arp_priority=int(session["qos"]["arp"]["priority_level"]),
    )
