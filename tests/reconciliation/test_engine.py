"""The reconciliation engine on its own: hashing, partitioning, classification and pricing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from adapters.usage_files import list_files, read_batches
from hub.reconciliation import engine as r
from hub.usage import NETWORK_SCHEMA, RATED_SCHEMA, Category, Tariff
from simulators.billing import PLANS
from simulators.usage import INJECTABLE, USAGE_MISMATCH, UsageSpec, generate

START = datetime(2026, 11, 1, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)
PERIOD = r.Period(START, END)
#: What the split reads: the period and the clock skew around it.
READ = PERIOD.widened(r.Tolerances().clock_skew_seconds)
#: The billing simulator's tariffs, as its GetTariffs answers them.
TARIFFS = r.TariffTable.of(
    [
        Tariff(
            code,
            float(plan.data_price_per_mb),
            float(plan.voice_price_per_minute),
            None if plan.sms_price_per_message is None else float(plan.sms_price_per_message),
        )
        for code, plan in PLANS.items()
    ]
)


# --- hashing ---------------------------------------------------------------------------------


def test_equal_ids_hash_equal_wherever_they_sit() -> None:
    ids = ["pgw-vie-01:1", "", "x" * 40, "msc:ü-2", "pgw-vie-01:1"]
    h1, h2 = r.hash_strings(pa.array(ids))
    assert h1[0] == h1[4] and h2[0] == h2[4]
    # Same strings in another array, sliced, chunked, or as large_string: same hashes.
    sliced = pa.array(["padding", *ids]).slice(1)
    chunked = pa.chunked_array([ids[:2], ids[2:]])
    large = pa.array(ids, pa.large_string())
    for other in (sliced, chunked, large):
        o1, o2 = r.hash_strings(other)
        assert np.array_equal(o1, h1) and np.array_equal(o2, h2)


def test_ids_differing_anywhere_hash_apart() -> None:
    base = "pgw-vie-01:000000123456-extra"
    variants = [base] + [base[:i] + chr(ord(base[i]) ^ 1) + base[i + 1 :] for i in range(len(base))]
    variants += [base + "\0", base[:-1]]
    h1, h2 = r.hash_strings(pa.array(variants))
    assert len(set(h1.tolist())) == len(variants)
    assert len(set(h2.tolist())) == len(variants)


def test_the_hash_spreads_sequential_ids_evenly() -> None:
    ids = pa.array([f"pgw-vie-01:{n}" for n in range(64_000)])
    parts = r.partition_of(r.hash_strings(ids)[0], 64)
    counts = np.bincount(parts, minlength=64)
    assert counts.min() > 800 and counts.max() < 1200  # 1000 each if uniform


def test_empty_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="record_id"):
        r.hash_strings(pa.array(["a", None]))


# --- classification on hand-made records -------------------------------------------------------


def network_rows(rows: list[dict[str, object]]) -> pa.Table:
    defaults = {"record_type": "data", "served_msisdn": "436600000001", "duration": 60}
    full = [
        {**defaults, "record_opening_time": START, "uplink_volume": 0, "downlink_volume": 0, **row}
        for row in rows
    ]
    return r.network_work(pa.Table.from_pylist(full, schema=r.NETWORK_INPUT), READ)


def billing_rows(rows: list[dict[str, object]]) -> pa.Table:
    defaults = {"msisdn": "436600000001", "usage_type": "data", "tariff": "STANDARD-5G"}
    full = [{**defaults, "start_time": START, "billed": True, **row} for row in rows]
    return r.billing_work(pa.Table.from_pylist(full, schema=r.RATED_INPUT), READ, TARIFFS)


def classify(
    network: pa.Table,
    billing: pa.Table,
    tariffs: r.TariffTable = TARIFFS,
    subscriptions: pa.Table | None = None,
) -> tuple[dict[tuple[str, str], float], r.PartitionSummary]:
    if subscriptions is None:
        subscriptions = pa.table({"msisdn": ["436600000001"], "plan": ["BASIC-4G"]})
    found, summary = r.reconcile(
        network, billing, tariffs, r.PlanLookup.of(subscriptions, tariffs), r.Tolerances(), PERIOD
    )
    return {
        (row["record_id"], row["category"]): row["revenue_impact"] for row in found.to_pylist()
    }, summary


def test_every_category_is_found_and_priced() -> None:
    mb = 1_000_000  # STANDARD-5G: 0.01/MB data, 0.06/min voice; BASIC-4G 0.02/MB, 0.09/min
    network = network_rows(
        [
            {"record_id": "ok", "downlink_volume": 10 * mb},
            {"record_id": "lost", "downlink_volume": 50 * mb},
            {"record_id": "lost-call", "record_type": "voice", "duration": 120},
            {"record_id": "dup-n", "downlink_volume": mb},
            {"record_id": "dup-n", "downlink_volume": mb},
            {"record_id": "dup-b", "downlink_volume": mb},
            {"record_id": "short", "downlink_volume": 30 * mb},
            {"record_id": "call", "record_type": "voice", "duration": 300},
            {"record_id": "misrated", "downlink_volume": 20 * mb},
            {"record_id": "unbilled", "downlink_volume": 5 * mb},
            {"record_id": "outside", "downlink_volume": mb, "record_opening_time": END},
        ]
    )
    billing = billing_rows(
        [
            {"record_id": "ok", "volume": 10 * mb, "charge": 0.10},
            {"record_id": "dup-n", "volume": mb, "charge": 0.01},
            {"record_id": "dup-b", "volume": mb, "charge": 0.01},
            {"record_id": "dup-b", "volume": mb, "charge": 0.01},
            {"record_id": "dup-b", "volume": mb, "charge": 0.01},
            {"record_id": "short", "volume": 20 * mb, "charge": 0.20},
            {"record_id": "call", "usage_type": "voice", "duration": 240, "charge": 0.24},
            {"record_id": "misrated", "volume": 20 * mb, "charge": 0.50},
            {"record_id": "unbilled", "volume": 5 * mb, "charge": 0.05, "billed": False},
            {"record_id": "ghost", "volume": 3 * mb, "charge": 0.03},
        ]
    )
    found, summary = classify(network, billing)
    assert found == {
        ("lost", Category.MISSING_IN_BILLING): 1.0,  # 50 MB at BASIC-4G's 0.02
        ("lost-call", Category.MISSING_IN_BILLING): 0.18,  # 2 min at 0.09
        ("dup-n", Category.DUPLICATE_IN_NETWORK): 0.0,
        ("dup-b", Category.DUPLICATE_IN_BILLING): -0.02,  # two extra charges of 0.01
        ("short", Category.VOLUME_MISMATCH): 0.10,  # 10 MB short at 0.01
        ("call", Category.DURATION_MISMATCH): 0.06,  # 60 s short at 0.06/min
        ("misrated", Category.RATING_MISMATCH): -0.30,  # tariff says 0.20, charged 0.50
        ("unbilled", Category.UNBILLED): 0.05,
        ("ghost", Category.MISSING_IN_NETWORK): -0.03,
    }
    assert summary.network_records == 10  # "outside" is after the period
    assert summary.billing_records == 10
    assert summary.matched_records == 7
    assert summary.billed_revenue == pytest.approx(0.10 + 0.01 + 0.03 + 0.20 + 0.24 + 0.50 + 0.03)
    assert summary.leakage == pytest.approx(1.0 + 0.18 + 0.10 + 0.06 + 0.05)


def test_differences_within_tolerance_are_not_discrepancies() -> None:
    network = network_rows(
        [
            {"record_id": "a", "downlink_volume": 10_000_000},
            {"record_id": "b", "record_type": "voice", "duration": 61},
        ]
    )
    billing = billing_rows(
        [
            {"record_id": "a", "volume": 9_990_000, "charge": 0.1049},  # 0.1%, 0.0050 off
            {"record_id": "b", "usage_type": "voice", "duration": 60, "charge": 0.06},
        ]
    )
    found, summary = classify(network, billing)
    assert found == {} and summary.matched_records == 2


def test_unknown_tariffs_and_subscribers_are_reported_not_guessed() -> None:
    network = network_rows(
        [{"record_id": "stranger", "served_msisdn": "439999", "downlink_volume": 10**6}]
    )
    billing = billing_rows([{"record_id": "odd", "tariff": "LEGACY-3G", "volume": 1, "charge": 9}])
    found, _ = classify(network, billing)
    # Missing in billing at an unknown price (0), in network at its full charge; no rating
    # mismatch can be claimed without the tariff, which is reported instead.
    assert found == {
        ("stranger", Category.MISSING_IN_BILLING): 0.0,
        ("odd", Category.MISSING_IN_NETWORK): -9.0,
        ("odd", Category.UNKNOWN_TARIFF): 0.0,
    }


def test_a_mismatch_under_an_unknown_tariff_is_priced_at_the_subscribers_plan() -> None:
    network = network_rows([{"record_id": "x", "downlink_volume": 50 * 10**6}])
    billing = billing_rows([{"record_id": "x", "tariff": None, "volume": 10**6, "charge": 0.02}])
    found, _ = classify(network, billing)
    # 49 MB short at BASIC-4G's 0.02 (the subscriber's plan), and the tariff reported.
    assert found == {
        ("x", Category.VOLUME_MISMATCH): 0.98,
        ("x", Category.UNKNOWN_TARIFF): 0.0,
    }


def test_copies_are_judged_the_same_in_any_order() -> None:
    mb = 10**6
    network = [
        {"record_id": "n", "downlink_volume": 30 * mb},
        {"record_id": "n", "downlink_volume": mb},
    ]
    billing = [
        {"record_id": "b", "volume": mb, "charge": 0.01},
        {"record_id": "b", "volume": mb, "charge": 0.50},
        {"record_id": "u", "volume": mb, "charge": 0.01, "billed": False},
        {"record_id": "u", "volume": mb, "charge": 0.01},
        {"record_id": "n", "volume": 30 * mb, "charge": 0.30},
    ]
    forwards = classify(network_rows(network), billing_rows(billing))[0]
    backwards = classify(network_rows(network[::-1]), billing_rows(billing[::-1]))[0]
    assert forwards == backwards
    assert forwards == {
        # The network's larger copy speaks for it: 30 MB, as billed.
        ("n", Category.DUPLICATE_IN_NETWORK): 0.0,
        # Billing's largest billed charge speaks for it; the other billed copy is over-billing.
        ("b", Category.DUPLICATE_IN_BILLING): -0.01,
        ("b", Category.MISSING_IN_NETWORK): -0.50,
        ("b", Category.RATING_MISMATCH): -0.49,
        # One copy billed: the usage was billed, and the unbilled copy cost nothing.
        ("u", Category.DUPLICATE_IN_BILLING): 0.0,
        ("u", Category.MISSING_IN_NETWORK): -0.01,
    }


def test_usage_billing_alone_knows_of_is_no_lost_revenue() -> None:
    billing = billing_rows([{"record_id": "p", "volume": 10**6, "charge": 0.05, "billed": False}])
    found, summary = classify(network_rows([]), billing)
    assert found == {
        ("p", Category.MISSING_IN_NETWORK): 0.0,
        ("p", Category.RATING_MISMATCH): -0.04,
    }
    assert summary.leakage == 0.0


def test_sides_that_disagree_on_the_kind_of_usage_are_not_compared() -> None:
    network = network_rows(
        [
            {"record_id": "t", "record_type": "voice", "duration": 120},
            {"record_id": "s", "record_type": "sms"},
            {"record_id": "d", "downlink_volume": 10**6},
        ]
    )
    billing = billing_rows(
        [
            {"record_id": "t", "volume": 120, "charge": 0.0},
            {"record_id": "s", "usage_type": "data", "volume": 10**6, "charge": 0.01},
            {"record_id": "d", "usage_type": "sms", "charge": 0.09},
        ]
    )
    found, _ = classify(network, billing)
    assert found == {
        ("t", Category.USAGE_TYPE_MISMATCH): 0.0,
        ("s", Category.USAGE_TYPE_MISMATCH): 0.0,
        ("d", Category.USAGE_TYPE_MISMATCH): 0.0,
    }


# --- SMS: a count, priced per message ------------------------------------------------------------

#: Tariffs with an SMS price per plan that tells the plans apart, and one plan without any.
SMS_PRICES = {"BASIC-4G": 0.12, "STANDARD-5G": 0.05, "UNLIMITED-5G": 0.03, "IOT-M2M": None}
SMS_TARIFFS = r.TariffTable.of(
    [
        Tariff(code, float(plan.data_price_per_mb), float(plan.voice_price_per_minute), price)
        for (code, plan), price in zip(PLANS.items(), SMS_PRICES.values(), strict=True)
    ]
)


def sms_network(rows: list[dict[str, object]]) -> pa.Table:
    return network_rows([{"record_type": "sms", "duration": None, **row} for row in rows])


def sms_billing(rows: list[dict[str, object]], tariffs: r.TariffTable = SMS_TARIFFS) -> pa.Table:
    defaults = {"msisdn": "436600000001", "usage_type": "sms", "tariff": "STANDARD-5G"}
    full = [{**defaults, "start_time": START, "billed": True, **row} for row in rows]
    return r.billing_work(pa.Table.from_pylist(full, schema=r.RATED_INPUT), READ, tariffs)


def test_sms_are_one_message_each_priced_at_the_tariff() -> None:
    # STANDARD-5G (billing's tariff) 0.05 per SMS; BASIC-4G (the subscriber's plan) 0.12.
    network = sms_network(
        [
            {"record_id": "ok"},
            # Whatever an SMS record carries beside, it is one message: nothing to mismatch.
            {"record_id": "odd", "duration": 30, "downlink_volume": 5_000_000},
            {"record_id": "lost"},
            {"record_id": "misrated"},
            {"record_id": "unbilled"},
            {"record_id": "dup-n"},
            {"record_id": "dup-n"},
            {"record_id": "dup-b"},
        ]
    )
    billing = sms_billing(
        [
            {"record_id": "ok", "charge": 0.05},
            {"record_id": "odd", "charge": 0.05},
            {"record_id": "misrated", "charge": 0.50},
            {"record_id": "unbilled", "charge": 0.05, "billed": False},
            {"record_id": "dup-n", "charge": 0.05},
            {"record_id": "dup-b", "charge": 0.05},
            {"record_id": "dup-b", "charge": 0.05},
            {"record_id": "dup-b", "charge": 0.05},
            {"record_id": "ghost", "charge": 0.05},
        ]
    )
    found, summary = classify(network, billing, SMS_TARIFFS)
    assert found == {
        ("lost", Category.MISSING_IN_BILLING): 0.12,  # one SMS at the subscriber's BASIC-4G
        ("misrated", Category.RATING_MISMATCH): -0.45,  # tariff says 0.05, charged 0.50
        ("unbilled", Category.UNBILLED): 0.05,
        ("dup-n", Category.DUPLICATE_IN_NETWORK): 0.0,
        ("dup-b", Category.DUPLICATE_IN_BILLING): -0.10,  # two extra charges of 0.05
        ("ghost", Category.MISSING_IN_NETWORK): -0.05,
    }
    assert summary.matched_records == 6
    assert summary.leakage == pytest.approx(0.12 + 0.05)
    rows, _ = r.reconcile(
        network, billing, SMS_TARIFFS, r.PlanLookup.empty(), r.Tolerances(), PERIOD
    )
    misrated = rows.filter(pc.equal(rows["record_id"], "misrated")).to_pylist()[0]
    assert misrated["usage_type"] == "sms"
    assert (misrated["network_quantity"], misrated["billed_quantity"]) == (1, 1)
    assert misrated["expected_charge"] == 0.05


def test_an_sms_under_a_tariff_without_an_sms_price_is_reported_not_guessed() -> None:
    network = sms_network([{"record_id": "m2m"}, {"record_id": "m2m-lost"}])
    billing = sms_billing([{"record_id": "m2m", "tariff": "IOT-M2M", "charge": 0.50}])
    # Data on the same plan is still checked: only the SMS price is missing.
    network = pa.concat_tables(
        [network, network_rows([{"record_id": "data", "downlink_volume": 10 * 10**6}])]
    )
    billing = pa.concat_tables(
        [
            billing,
            sms_billing(
                [{"record_id": "data", "usage_type": "data", "volume": 10 * 10**6,
                  "tariff": "IOT-M2M", "charge": 0.10}]  # 10 MB at 0.05 is 0.50
            ),
        ]
    )  # fmt: skip
    on_m2m = pa.table({"msisdn": ["436600000001"], "plan": ["IOT-M2M"]})
    found, summary = classify(network, billing, SMS_TARIFFS, on_m2m)
    assert found == {
        ("m2m", Category.UNKNOWN_TARIFF): 0.0,
        ("m2m-lost", Category.MISSING_IN_BILLING): 0.0,  # the plan has no SMS price
        ("data", Category.RATING_MISMATCH): 0.40,
    }
    assert summary.leakage == pytest.approx(0.40)


def test_billing_without_any_sms_price_leaves_every_sms_unpriced() -> None:
    """A billing whose GetTariffs predates the SMS price: data and voice as before."""
    old_tariffs = r.TariffTable.of(
        [
            Tariff(code, float(plan.data_price_per_mb), float(plan.voice_price_per_minute))
            for code, plan in PLANS.items()
        ]
    )
    network = pa.concat_tables(
        [
            sms_network([{"record_id": "sms"}, {"record_id": "sms-lost"}]),
            network_rows([{"record_id": "data", "downlink_volume": 10**6}]),
        ]
    )
    billing = pa.concat_tables(
        [
            sms_billing([{"record_id": "sms", "charge": 0.09}], old_tariffs),
            sms_billing(
                [{"record_id": "data", "usage_type": "data", "volume": 10**6, "charge": 0.01}],
                old_tariffs,
            ),
        ]
    )
    found, _ = classify(network, billing, old_tariffs)
    assert found == {
        ("sms", Category.UNKNOWN_TARIFF): 0.0,
        ("sms-lost", Category.MISSING_IN_BILLING): 0.0,
    }


def test_a_record_at_the_edge_of_the_period_counts_once() -> None:
    """The network's time decides; billing's clock may be off by the tolerated skew."""
    before_end = END - timedelta(milliseconds=1)
    after_end = END + timedelta(seconds=1)
    mb = 10**6
    network = [
        {"record_id": "late-bill", "downlink_volume": mb, "record_opening_time": before_end},
        {"record_id": "early-bill", "downlink_volume": mb, "record_opening_time": after_end},
    ]
    billing = [
        {"record_id": "late-bill", "volume": mb, "charge": 0.01, "start_time": after_end},
        {"record_id": "early-bill", "volume": mb, "charge": 0.01, "start_time": before_end},
    ]
    this_period, summary = classify(network_rows(network), billing_rows(billing))
    assert this_period == {} and summary.matched_records == 1
    assert summary.network_records == summary.billing_records == 1
    following = r.Period(END, END + timedelta(days=1))
    wide = following.widened(r.Tolerances().clock_skew_seconds)
    next_network = r.network_work(pa.Table.from_pylist(
        [{**row, "record_type": "data", "served_msisdn": "436600000001", "duration": 60,
          "uplink_volume": 0} for row in network],
        schema=r.NETWORK_INPUT,
    ), wide)  # fmt: skip
    next_billing = r.billing_work(pa.Table.from_pylist(
        [{**row, "msisdn": "436600000001", "usage_type": "data", "tariff": "STANDARD-5G",
          "billed": True} for row in billing],
        schema=r.RATED_INPUT,
    ), wide, TARIFFS)  # fmt: skip
    found, summary = r.reconcile(
        next_network, next_billing, TARIFFS, r.PlanLookup.empty(), r.Tolerances(), following
    )
    assert found.num_rows == 0 and summary.matched_records == 1


def test_a_hash_collision_falls_back_to_comparing_ids() -> None:
    network = network_rows([{"record_id": "one", "downlink_volume": 10**6}])
    billing = billing_rows([{"record_id": "two", "volume": 10**6, "charge": 0.01}])
    # Forge the first hash of "two" to equal that of "one": they must stay two records.
    billing = billing.set_column(1, "h1", network["h1"])
    found, summary = classify(network, billing)
    assert summary.matched_records == 0
    assert set(found) == {
        ("one", Category.MISSING_IN_BILLING),
        ("two", Category.MISSING_IN_NETWORK),
    }


def test_empty_sides() -> None:
    empty_n, empty_b = network_rows([]), billing_rows([])
    found, summary = classify(empty_n, empty_b)
    assert found == {} and summary.discrepancies == 0
    found, _ = classify(network_rows([{"record_id": "x", "downlink_volume": 10**6}]), empty_b)
    assert found == {("x", Category.MISSING_IN_BILLING): 0.02}


# --- split, partitions and the generator's ground truth ------------------------------------------


def run_engine(source: Path, work: Path, partitions: int) -> tuple[pa.Table, r.PartitionSummary]:
    sides = {
        "network": (r.NETWORK_INPUT, r.NETWORK_WORK, lambda t: r.network_work(t, PERIOD)),
        "billing": (r.RATED_INPUT, r.BILLING_WORK, lambda t: r.billing_work(t, PERIOD, TARIFFS)),
    }
    dictionaries = {"network": r.NETWORK_DICTIONARIES, "billing": r.RATED_DICTIONARIES}
    splits: dict[str, list[Path]] = {}
    for side, (schema, work_schema, to_work) in sides.items():
        files = list_files(str(source / side), exclude=("subscriptions.parquet",))
        splits[side] = []
        for index, item in enumerate(files):
            path = work / side / f"{index:05d}.arrow"
            groups = (
                r.split(to_work(batch), partitions)
                for batch in read_batches(
                    item.uri, schema, batch_rows=700, dictionaries=dictionaries[side]
                )
            )
            r.write_split(path, work_schema, groups)
            splits[side].append(path)
    plans = r.PlanLookup.of(pq.read_table(source / "billing" / "subscriptions.parquet"), TARIFFS)
    total, parts = r.PartitionSummary(), []
    for partition in range(partitions):
        network = r.read_partition(splits["network"], partition, partitions, r.NETWORK_WORK)
        billing = r.read_partition(splits["billing"], partition, partitions, r.BILLING_WORK)
        found, summary = r.reconcile(network, billing, TARIFFS, plans, r.Tolerances(), PERIOD)
        total.add(summary)
        parts.append(found)
    return pa.concat_tables(parts), total


@pytest.mark.parametrize(
    ("fmt", "partitions", "sms_share"),
    [("parquet", 1, 0.0), ("csv.gz", 8, 0.0), ("csv", 32, 0.0), ("parquet", 4, 0.1)],
)
def test_the_generators_ground_truth_is_found_exactly(
    tmp_path: Path, fmt: str, partitions: int, sms_share: float
) -> None:
    spec = UsageSpec(
        START,
        END,
        records=20_000,
        seed=partitions,
        sms_share=sms_share,
        network_format=fmt,  # type: ignore[arg-type]
        records_per_file=6_000,
        rates={name: 0.01 for name in INJECTABLE},
    )
    manifest = generate(spec, tmp_path / "data")
    found, summary = run_engine(tmp_path / "data", tmp_path / "work", partitions)
    truth = pq.read_table(tmp_path / "data" / "ground_truth.parquet")
    pairs = set(zip(found["record_id"].to_pylist(), found["category"].to_pylist(), strict=True))
    expected = set(zip(truth["record_id"].to_pylist(), truth["category"].to_pylist(), strict=True))
    assert pairs == expected
    if sms_share:
        # SMS get every discrepancy but a usage mismatch (they have no usage to mismatch).
        on_sms = pc.filter(found["category"], pc.equal(found["usage_type"], "sms"))
        assert set(on_sms.to_pylist()) == set(INJECTABLE) - {USAGE_MISMATCH}
    assert summary.network_records == manifest.network_rows
    assert summary.billing_records == manifest.billing_rows
    assert {name: total.count for name, total in summary.categories.items()} == manifest.injected


def test_split_keeps_every_row_and_co_partitions_the_sides(tmp_path: Path) -> None:
    ids = [f"id-{n}" for n in range(5_000)]
    network = network_rows([{"record_id": i} for i in ids])
    billing = billing_rows([{"record_id": i, "volume": 0, "charge": 0.0} for i in reversed(ids)])
    r.write_split(tmp_path / "n.arrow", r.NETWORK_WORK, [r.split(network, 16)])
    r.write_split(tmp_path / "b.arrow", r.BILLING_WORK, [r.split(billing, 16)])
    seen: list[str] = []
    for partition in range(16):
        n = r.read_partition([tmp_path / "n.arrow"], partition, 16, r.NETWORK_WORK)
        b = r.read_partition([tmp_path / "b.arrow"], partition, 16, r.BILLING_WORK)
        assert sorted(n["record_id"].to_pylist()) == sorted(b["record_id"].to_pylist())
        seen += n["record_id"].to_pylist()
    assert sorted(seen) == sorted(ids)
    with pytest.raises(ValueError, match="power of two"):
        r.split(network, 12)


def test_text_read_as_dictionaries_makes_the_same_work(tmp_path: Path) -> None:
    spec = UsageSpec(START, END, records=3_000, sms_share=0.1)
    generate(spec, tmp_path)
    for side, schema, dictionaries, to_work in (
        ("network", r.NETWORK_INPUT, r.NETWORK_DICTIONARIES, lambda t: r.network_work(t, READ)),
        (
            "billing",
            r.RATED_INPUT,
            r.RATED_DICTIONARIES,
            lambda t: r.billing_work(t, READ, TARIFFS),
        ),
    ):
        [item] = list_files(str(tmp_path / side), exclude=("subscriptions.parquet",))
        [plain] = read_batches(item.uri, schema)
        [encoded] = read_batches(item.uri, schema, dictionaries=dictionaries)
        assert all(pa.types.is_dictionary(encoded[name].type) for name in dictionaries)
        work = to_work(plain)
        assert to_work(encoded).equals(work)
        assert set(np.unique(work["usage"].to_numpy())) == {r.DATA, r.VOICE, r.SMS}


def test_text_codes_are_the_same_plain_or_encoded_nulls_included() -> None:
    plans = pa.array(["BASIC-4G", None, "NO-SUCH-PLAN", "BASIC-4G", "STANDARD-5G"])
    # Two chunks with dictionaries of their own, as two Parquet row groups may have.
    encoded = pa.chunked_array(
        [plans.slice(0, 2).dictionary_encode(), plans.slice(2).dictionary_encode()]
    )
    codes = TARIFFS.codes(plans)
    basic, standard = TARIFFS.plans.index("BASIC-4G"), TARIFFS.plans.index("STANDARD-5G")
    assert codes.tolist() == [basic, -1, -1, basic, standard]
    assert np.array_equal(TARIFFS.codes(encoded), codes)
    kinds = pa.array(["voice", None, "sms", "fax", "data"]).dictionary_encode()
    usage = r.by_value(kinds, r._usage_codes, r.DATA, np.int8)
    assert usage.tolist() == [r.VOICE, r.DATA, r.SMS, r.DATA, r.DATA]


def test_a_few_msisdns_find_the_plans_many_would(monkeypatch: pytest.MonkeyPatch) -> None:
    subscriptions = pa.table(
        {
            "msisdn": ["436600000001", "436600000002", "436600000001", "436600000003"],
            "plan": ["BASIC-4G", "STANDARD-5G", "STANDARD-5G", "NO-SUCH-PLAN"],
        }
    )
    plans = r.PlanLookup.of(subscriptions, TARIFFS)
    asked = pa.array(["436600000002", None, "436600000001", "436699999999", "436600000003"])
    few = plans.codes(asked)
    basic, standard = TARIFFS.plans.index("BASIC-4G"), TARIFFS.plans.index("STANDARD-5G")
    # The first subscription of an MSISDN answers; unknown MSISDNs and plans are -1.
    assert few.tolist() == [standard, -1, basic, -1, -1]
    monkeypatch.setattr(r.PlanLookup, "FEW", 2)
    assert np.array_equal(plans.codes(asked), few)


def test_inputs_hold_the_columns_reconciliation_needs() -> None:
    assert set(r.NETWORK_INPUT.names) <= set(NETWORK_SCHEMA.names)
    assert r.RATED_INPUT.names == RATED_SCHEMA.names
