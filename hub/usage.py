"""Usage records on both sides of billing reconciliation, as Arrow schemas.

**Network usage** comes from mediation as CDR files: one row per record, flattened from the
3GPP TS 32.298 PGW-CDR (data) and MSC records (voice; SMS: one record per short message, no
duration or volume). ``record_id`` is the record's identity
across systems: the recording node's id and its local sequence number (``pgw-vie-01:42``).

**Rated usage** comes from billing: the same ``record_id`` (billing keeps the CDR's key), the
quantity it rated, the tariff applied, the charge, and whether the charge was billed.

**Tariffs** come from billing over SOAP (``GetTariffs``): per plan, a price per megabyte of
data (10^6 octets), a price per minute of voice, charged per second, and a price per SMS where
billing has one (the element came later and is optional: a plan without it cannot price SMS).

Charges and prices are decimal amounts carried as float64 (rounded to :data:`CHARGE_DECIMALS`
where they are produced); comparisons always go through a tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa

#: Charges are rounded to this many decimals by the rating engine (and by the generator).
CHARGE_DECIMALS = 4
BYTES_PER_MB = 1_000_000

UTC_MILLIS = pa.timestamp("ms", tz="UTC")

NETWORK_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("record_type", pa.string(), nullable=False),  # data | voice | sms
        pa.field("node_id", pa.string()),
        pa.field("local_sequence_number", pa.int64()),
        pa.field("served_imsi", pa.string()),
        pa.field("served_msisdn", pa.string()),
        pa.field("charging_id", pa.int64()),  # data: the bearer's charging id
        pa.field("record_opening_time", UTC_MILLIS, nullable=False),
        pa.field("duration", pa.int64()),  # seconds
        pa.field("rating_group", pa.int32()),  # data
        pa.field("uplink_volume", pa.int64()),  # data: octets
        pa.field("downlink_volume", pa.int64()),  # data: octets
        pa.field("rat_type", pa.string()),  # data: EUTRAN, NR...
        pa.field("apn", pa.string()),  # data
        pa.field("a_number", pa.string()),  # voice: calling party
        pa.field("b_number", pa.string()),  # voice: called party
    ]
)

RATED_SCHEMA = pa.schema(
    [
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("msisdn", pa.string()),
        pa.field("usage_type", pa.string(), nullable=False),  # data | voice | sms
        pa.field("start_time", UTC_MILLIS, nullable=False),
        pa.field("volume", pa.int64()),  # data: octets rated
        pa.field("duration", pa.int64()),  # voice: seconds rated
        pa.field("tariff", pa.string()),  # the plan whose tariff was applied
        pa.field("charge", pa.float64()),
        pa.field("billed", pa.bool_()),
    ]
)

#: Billing's subscriptions, exported beside the rated usage: which plan an MSISDN is on, so
#: usage billing never rated can still be priced.
SUBSCRIPTION_SCHEMA = pa.schema(
    [pa.field("msisdn", pa.string(), nullable=False), pa.field("plan", pa.string())]
)


class Category(StrEnum):
    """What a discrepancy is. Revenue impact is signed: positive is revenue lost."""

    #: The network carried it, billing has no record: priced at the subscriber's tariff.
    MISSING_IN_BILLING = "missing_in_billing"
    #: Billing charged usage the network never reported: the charge is at risk (refund).
    MISSING_IN_NETWORK = "missing_in_network"
    #: Mediation delivered the record more than once: no revenue impact by itself.
    DUPLICATE_IN_NETWORK = "duplicate_in_network"
    #: Billing rated the record more than once: every extra charge is over-billing.
    DUPLICATE_IN_BILLING = "duplicate_in_billing"
    #: Data volume differs beyond tolerance: the difference at the tariff. (An SMS has no
    #: quantity to differ: it is one message on both sides.)
    VOLUME_MISMATCH = "volume_mismatch"
    #: Voice duration differs beyond tolerance: the difference at the tariff.
    DURATION_MISMATCH = "duration_mismatch"
    #: Charge is not tariff x rated quantity: the difference.
    RATING_MISMATCH = "rating_mismatch"
    #: Rated but never billed, for usage the network carried: the whole charge.
    UNBILLED = "unbilled"
    #: The sides disagree on the kind of usage (data, voice, SMS): quantities cannot be
    #: compared. No revenue impact is claimed.
    USAGE_TYPE_MISMATCH = "usage_type_mismatch"
    #: Billing rated with a plan its tariffs lack, or whose tariff has no price for the kind of
    #: usage (an SMS on a plan without an SMS price): the charge cannot be checked.
    UNKNOWN_TARIFF = "unknown_tariff"


@dataclass(frozen=True)
class Tariff:
    """A plan's usage prices, in the account currency."""

    plan: str
    data_price_per_mb: float
    voice_price_per_minute: float
    #: None when billing gave no SMS price for the plan: its SMS are not priced, never guessed.
    sms_price_per_message: float | None = None
