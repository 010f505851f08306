"""MILENAGE against the 3GPP TS 35.208 conformance test data (§4.3, Test Sets 1-6)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from hub.milenage import Milenage, derive_opc, derive_opc_hex


@dataclass(frozen=True)
class TestSet:
    """One TS 35.208 test set, in hex as printed in the specification."""

    __test__ = False  # a data holder, not a pytest test class

    k: str
    rand: str
    sqn: str
    amf: str
    op: str
    opc: str
    f1: str
    f1_star: str
    f2: str
    f5: str
    f3: str
    f4: str
    f5_star: str


TEST_SETS = {
    1: TestSet(
        k="465b5ce8b199b49faa5f0a2ee238a6bc",
        rand="23553cbe9637a89d218ae64dae47bf35",
        sqn="ff9bb4d0b607",
        amf="b9b9",
        op="cdc202d5123e20f62b6d676ac72cb318",
        opc="cd63cb71954a9f4e48a5994e37a02baf",
        f1="4a9ffac354dfafb3",
        f1_star="01cfaf9ec4e871e9",
        f2="a54211d5e3ba50bf",
        f5="aa689c648370",
        f3="b40ba9a3c58b2a05bbf0d987b21bf8cb",
        f4="f769bcd751044604127672711c6d3441",
        f5_star="451e8beca43b",
    ),
    2: TestSet(
        k="0396eb317b6d1c36f19c1c84cd6ffd16",
        rand="c00d603103dcee52c4478119494202e8",
        sqn="fd8eef40df7d",
        amf="af17",
        op="ff53bade17df5d4e793073ce9d7579fa",
        opc="53c15671c60a4b731c55b4a441c0bde2",
        f1="5df5b31807e258b0",
        f1_star="a8c016e51ef4a343",
        f2="d3a628ed988620f0",
        f5="c47783995f72",
        f3="58c433ff7a7082acd424220f2b67c556",
        f4="21a8c1f929702adb3e738488b9f5c5da",
        f5_star="30f1197061c1",
    ),
    3: TestSet(
        k="fec86ba6eb707ed08905757b1bb44b8f",
        rand="9f7c8d021accf4db213ccff0c7f71a6a",
        sqn="9d0277595ffc",
        amf="725c",
        op="dbc59adcb6f9a0ef735477b7fadf8374",
        opc="1006020f0a478bf6b699f15c062e42b3",
        f1="9cabc3e99baf7281",
        f1_star="95814ba2b3044324",
        f2="8011c48c0c214ed2",
        f5="33484dc2136b",
        f3="5dbdbb2954e8f3cde665b046179a5098",
        f4="59a92d3b476a0443487055cf88b2307b",
        f5_star="deacdd848cc6",
    ),
    4: TestSet(
        k="9e5944aea94b81165c82fbf9f32db751",
        rand="ce83dbc54ac0274a157c17f80d017bd6",
        sqn="0b604a81eca8",
        amf="9e09",
        op="223014c5806694c007ca1eeef57f004f",
        opc="a64a507ae1a2a98bb88eb4210135dc87",
        f1="74a58220cba84c49",
        f1_star="ac2cc74a96871837",
        f2="f365cd683cd92e96",
        f5="f0b9c08ad02e",
        f3="e203edb3971574f5a94b0d61b816345d",
        f4="0c4524adeac041c4dd830d20854fc46b",
        f5_star="6085a86c6f63",
    ),
    5: TestSet(
        k="4ab1deb05ca6ceb051fc98e77d026a84",
        rand="74b0cd6031a1c8339b2b6ce2b8c4a186",
        sqn="e880a1b580b6",
        amf="9f07",
        op="2d16c5cd1fdf6b22383584e3bef2a8d8",
        opc="dcf07cbd51855290b92a07a9891e523e",
        f1="49e785dd12626ef2",
        f1_star="9e85790336bb3fa2",
        f2="5860fc1bce351e7e",
        f5="31e11a609118",
        f3="7657766b373d1c2138f307e3de9242f9",
        f4="1c42e960d89b8fa99f2744e0708ccb53",
        f5_star="fe2555e54aa9",
    ),
    6: TestSet(
        k="6c38a116ac280c454f59332ee35c8c4f",
        rand="ee6466bc96202c5a557abbeff8babf63",
        sqn="414b98222181",
        amf="4464",
        op="1ba00a1a7c6700ac8c3ff3e96ad08725",
        opc="3803ef5363b947c6aaa225e58fae3934",
        f1="078adfb488241a57",
        f1_star="80246b8d0186bcf1",
        f2="16c8233f05a0ac28",
        f5="45b0f69ab06c",
        f3="3f8c7587fe8e4b233af676aede30ba3b",
        f4="a7466cc1e6b2a1337d49d3b66e95d7b4",
        f5_star="1f53cd2b1113",
    ),
}

by_test_set = pytest.mark.parametrize(
    "ts", list(TEST_SETS.values()), ids=[f"test-set-{n}" for n in TEST_SETS]
)


@by_test_set
def test_derive_opc(ts: TestSet) -> None:
    assert derive_opc(bytes.fromhex(ts.k), bytes.fromhex(ts.op)).hex() == ts.opc


@by_test_set
def test_derive_opc_hex(ts: TestSet) -> None:
    assert derive_opc_hex(ts.k.upper(), ts.op.upper()) == ts.opc


@by_test_set
def test_each_function(ts: TestSet) -> None:
    m = Milenage(bytes.fromhex(ts.k), bytes.fromhex(ts.opc))
    rand, sqn, amf = bytes.fromhex(ts.rand), bytes.fromhex(ts.sqn), bytes.fromhex(ts.amf)
    assert m.f1(rand, sqn, amf).hex() == ts.f1
    assert m.f1_star(rand, sqn, amf).hex() == ts.f1_star
    assert m.f2(rand).hex() == ts.f2
    assert m.f3(rand).hex() == ts.f3
    assert m.f4(rand).hex() == ts.f4
    assert m.f5(rand).hex() == ts.f5
    assert m.f5_star(rand).hex() == ts.f5_star


@by_test_set
def test_compute_from_op(ts: TestSet) -> None:
    m = Milenage.from_op(bytes.fromhex(ts.k), bytes.fromhex(ts.op))
    out = m.compute(bytes.fromhex(ts.rand), bytes.fromhex(ts.sqn), bytes.fromhex(ts.amf))
    assert [out.mac_a.hex(), out.mac_s.hex(), out.res.hex(), out.ck.hex(), out.ik.hex()] == [
        ts.f1,
        ts.f1_star,
        ts.f2,
        ts.f3,
        ts.f4,
    ]
    assert [out.ak.hex(), out.ak_s.hex()] == [ts.f5, ts.f5_star]


K = bytes.fromhex(TEST_SETS[1].k)
OP = bytes.fromhex(TEST_SETS[1].op)
OPC = bytes.fromhex(TEST_SETS[1].opc)
RAND = bytes.fromhex(TEST_SETS[1].rand)


def test_256_bit_k_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="MILENAGE needs a 128-bit K") as excinfo:
        derive_opc(K + K, OP)
    assert K.hex() not in str(excinfo.value)
    with pytest.raises(ValueError, match="128-bit K"):
        Milenage(K + K, OPC)


@pytest.mark.parametrize(
    ("k", "op", "field"),
    [
        (K[:15], OP, "K"),
        (K + b"\x00", OP, "K"),
        (b"", OP, "K"),
        (K, OP[:8], "OP"),
        (K, OP + b"\x00", "OP"),
    ],
)
def test_derive_opc_rejects_bad_lengths(k: bytes, op: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field} must be 16 bytes") as excinfo:
        derive_opc(k, op)
    # The message names the field and sizes, never the material.
    message = str(excinfo.value)
    assert K.hex() not in message
    assert OP.hex() not in message


def test_derive_opc_rejects_text() -> None:
    with pytest.raises(TypeError, match="K must be bytes"):
        derive_opc(TEST_SETS[1].k, OP)  # type: ignore[arg-type]


def test_derive_opc_hex_rejects_non_hex_without_echoing_it() -> None:
    secretish = "zz" + TEST_SETS[1].k[2:]
    with pytest.raises(ValueError, match="K is not valid hexadecimal") as excinfo:
        derive_opc_hex(secretish, TEST_SETS[1].op)
    assert secretish not in str(excinfo.value)
    with pytest.raises(ValueError, match="OP is not valid hexadecimal"):
        derive_opc_hex(TEST_SETS[1].k, "not hex")


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.f2(RAND[:15]), "RAND"),
        (lambda m: m.f1(RAND, bytes(5), bytes(2)), "SQN"),
        (lambda m: m.f1_star(RAND, bytes(6), bytes(3)), "AMF"),
        (lambda m: m.compute(RAND + b"\x00", bytes(6), bytes(2)), "RAND"),
    ],
)
def test_functions_reject_bad_lengths(call: object, field: str) -> None:
    m = Milenage(K, OPC)
    with pytest.raises(ValueError, match=rf"^{field} must be \d+ bytes"):
        call(m)  # type: ignore[operator]


def test_milenage_rejects_short_opc() -> None:
    with pytest.raises(ValueError, match=r"^OPc must be 16 bytes"):
        Milenage(K, OPC[:15])


def test_reprs_hide_key_material() -> None:
    m = Milenage(K, OPC)
    assert OPC.hex() not in repr(m) and K.hex() not in repr(m)
    out = m.compute(RAND, bytes(6), bytes(2))
    assert out.ck.hex() not in repr(out)
    assert out.ik.hex() not in repr(out)
    # Spot check that hiding didn't remove what's useful: RES stays visible.
    assert repr(out.res) in repr(out)
