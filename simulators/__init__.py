"""Simulators of the hub's outside systems, as real HTTP/SOAP servers on loopback.

Each module (``credit``, ``crm``, ``hss``, ``billing``, ``regulator``, ``vies``, ``registry``,
``partner``) exposes
``create_app(state_file)`` returning a FastAPI app with its own state, idempotency memory and
fault injection; the shared machinery lives in :mod:`simulators.base`. ``python -m simulators``
runs them all.
"""

from __future__ import annotations

SYSTEMS = ("credit", "crm", "hss", "billing", "regulator", "vies", "registry", "partner")
DEFAULT_PORTS = {
    "credit": 8101,
    "crm": 8102,
    "hss": 8103,
    "billing": 8104,
    "regulator": 8105,
    "vies": 8106,
    "registry": 8107,
    "partner": 8108,
}
