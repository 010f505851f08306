"""3GPP MILENAGE (TS 35.206): OPc derivation and the authentication functions f1-f5*.

MILENAGE is built on a 128-bit block cipher (AES-128 here) and produces, from the subscriber key
K, the operator variant OPc and a challenge RAND (plus SQN and AMF for f1/f1*):

==========  =====================================  ======
function    output                                 bytes
==========  =====================================  ======
f1          MAC-A, network authentication code     8
f1*         MAC-S, resynchronisation code          8
f2          RES, the subscriber's response         8
f3          CK, cipher key                         16
f4          IK, integrity key                      16
f5          AK, anonymity key                      6
f5*         AK for resynchronisation               6
==========  =====================================  ======

Only the standard constants c1..c5 and r1..r5 of TS 35.206 are supported: they are what every
USIM and HSS in the field uses. Key material never appears in error messages or reprs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK = 16

# TS 35.206 §4.1: c_i are 128-bit constants, r_i rotation amounts in bits.
_C1 = bytes(16)
_C2 = bytes(15) + b"\x01"
_C3 = bytes(15) + b"\x02"
_C4 = bytes(15) + b"\x04"
_C5 = bytes(15) + b"\x08"
_R1, _R2, _R3, _R4, _R5 = 64, 0, 32, 64, 96


def _require(name: str, value: bytes, size: int) -> bytes:
    """Return ``value`` as bytes if it is ``size`` bytes long; the error names only the field."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes ({size * 8} bits), got {len(value)} bytes")
    return value


def _require_k(k: bytes) -> bytes:
    if isinstance(k, bytes | bytearray | memoryview) and len(k) == 32:
        # Some 5G profiles carry a 256-bit K; MILENAGE cannot use it, and silently truncating
        # would authenticate nobody. The caller picks another algorithm (e.g. TUAK).
        raise ValueError("MILENAGE needs a 128-bit K (16 bytes); got a 256-bit K (32 bytes)")
    return _require("K", k, 16)


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b, strict=True))


def _rot(block: bytes, bits: int) -> bytes:
    """Rotate a 128-bit block left (towards the most significant bit) by ``bits``."""
    bits %= 128
    if bits == 0:
        return block
    value = int.from_bytes(block, "big")
    rotated = ((value << bits) | (value >> (128 - bits))) & ((1 << 128) - 1)
    return rotated.to_bytes(_BLOCK, "big")


def _aes128(k: bytes) -> Cipher[modes.ECB]:
    # ECB is correct here: MILENAGE uses AES as a raw block function on single blocks.
    return Cipher(algorithms.AES(k), modes.ECB())


def derive_opc(k: bytes, op: bytes) -> bytes:
    """OPc = AES-128_K(OP) XOR OP (TS 35.206 §4.1), for a 16-byte K and 16-byte OP."""
    k = _require_k(k)
    op = _require("OP", op, 16)
    encryptor = _aes128(k).encryptor()
    return _xor(encryptor.update(op) + encryptor.finalize(), op)


def _from_hex(name: str, text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        # bytes.fromhex's message quotes no input, but say plainly which field was wrong.
        raise ValueError(f"{name} is not valid hexadecimal") from None


def derive_opc_hex(k_hex: str, op_hex: str) -> str:
    """:func:`derive_opc` on hex strings; returns lowercase hex."""
    return derive_opc(_from_hex("K", k_hex), _from_hex("OP", op_hex)).hex()


@dataclass(frozen=True)
class MilenageResult:
    """Every MILENAGE output for one (RAND, SQN, AMF); ``repr`` hides the keys CK and IK."""

    mac_a: bytes
    mac_s: bytes
    res: bytes
    ck: bytes = field(repr=False)
    ik: bytes = field(repr=False)
    ak: bytes
    ak_s: bytes


class Milenage:
    """MILENAGE for one subscriber: K and OPc are fixed, RAND/SQN/AMF vary per call.

    ``Milenage(k, opc).f2(rand)`` is the RES; :meth:`compute` returns every output at once.
    """

    __slots__ = ("_cipher", "_opc")

    def __init__(self, k: bytes, opc: bytes) -> None:
        self._cipher = _aes128(_require_k(k))
        self._opc = _require("OPc", opc, 16)

    @classmethod
    def from_op(cls, k: bytes, op: bytes) -> Milenage:
        """Build from the operator's OP instead of the per-subscriber OPc."""
        return cls(k, derive_opc(k, op))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(<keys hidden>)"

    def _encrypt(self, block: bytes) -> bytes:
        encryptor = self._cipher.encryptor()
        return encryptor.update(block) + encryptor.finalize()

    def _temp(self, rand: bytes) -> bytes:
        return self._encrypt(_xor(_require("RAND", rand, 16), self._opc))

    def _out1(self, temp: bytes, sqn: bytes, amf: bytes) -> bytes:
        in1 = _require("SQN", sqn, 6) + _require("AMF", amf, 2)
        in1 += in1
        rotated = _rot(_xor(in1, self._opc), _R1)
        return _xor(self._encrypt(_xor(_xor(temp, rotated), _C1)), self._opc)

    def _out(self, temp: bytes, rotation: int, constant: bytes) -> bytes:
        """OUT2..OUT5: the same shape, differing only in rotation and constant."""
        block = _xor(_rot(_xor(temp, self._opc), rotation), constant)
        return _xor(self._encrypt(block), self._opc)

    def f1(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-A (8 bytes): the network's proof that it knows K."""
        return self._out1(self._temp(rand), sqn, amf)[:8]

    def f1_star(self, rand: bytes, sqn: bytes, amf: bytes) -> bytes:
        """MAC-S (8 bytes): protects the SQN in a resynchronisation (AUTS)."""
        return self._out1(self._temp(rand), sqn, amf)[8:]

    def f2(self, rand: bytes) -> bytes:
        """RES (8 bytes): the expected response to RAND."""
        return self._out(self._temp(rand), _R2, _C2)[8:]

    def f3(self, rand: bytes) -> bytes:
        """CK (16 bytes): the cipher key."""
        return self._out(self._temp(rand), _R3, _C3)

    def f4(self, rand: bytes) -> bytes:
        """IK (16 bytes): the integrity key."""
        return self._out(self._temp(rand), _R4, _C4)

    def f5(self, rand: bytes) -> bytes:
        """AK (6 bytes): conceals SQN in AUTN."""
        return self._out(self._temp(rand), _R2, _C2)[:6]

    def f5_star(self, rand: bytes) -> bytes:
        """AK for resynchronisation (6 bytes): conceals SQN in AUTS."""
        return self._out(self._temp(rand), _R5, _C5)[:6]

    def compute(self, rand: bytes, sqn: bytes, amf: bytes) -> MilenageResult:
        """All outputs at once, sharing TEMP = E_K(RAND xor OPc)."""
        temp = self._temp(rand)
        out1 = self._out1(temp, sqn, amf)
        out2 = self._out(temp, _R2, _C2)
        return MilenageResult(
            mac_a=out1[:8],
            mac_s=out1[8:],
            res=out2[8:],
            ck=self._out(temp, _R3, _C3),
            ik=self._out(temp, _R4, _C4),
            ak=out2[:6],
            ak_s=self._out(temp, _R5, _C5)[:6],
        )
