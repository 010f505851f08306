"""SNMP on pysnmp: the hub's alarms as notifications to the operator's NMS, and a GET helper.

Alarms follow ITU-T X.733 as carried by the ITU-ALARM-MIB family (RFC 3877); the report and
its event type, probable cause and perceived severity are :mod:`hub.alarms`'s, numbered as
IANA-ITU-ALARM-TC-MIB and ITU-ALARM-TC-MIB number them. The hub sends them as SNMPv2
notifications (``trap``: fire and forget, or ``inform``: acknowledged) in v2c (community) or v3
(USM, SHA authentication, AES-128 privacy). The notification and its objects live under the
hub's enterprise arc, see ``docs/alarms.md``.

The contract at this boundary:

- :class:`SnmpNotifier` never raises on delivery: a target that cannot be reached is logged
  and returned by :meth:`SnmpNotifier.send`, because an alarm about a failure must never turn
  into a second failure of the business process that raised it.
- :func:`get` translates every pysnmp outcome into :mod:`hub.errors` (``TransientError`` for
  timeouts and network trouble, ``PermanentError`` for refusals), so nothing above the
  adapters sees pysnmp.
- Communities and USM keys never appear in reprs, log records or error messages.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    Integer32,
    NotificationType,
    ObjectIdentity,
    ObjectType,
    OctetString,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    Unsigned32,
    UsmUserData,
    get_cmd,
    send_notification,
    usmAesCfb128Protocol,
    usmHMACSHAAuthProtocol,
)
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from hub.alarms import Alarm, PerceivedSeverity
from hub.errors import NotFoundError, PermanentError, TransientError, ValidationFailure

logger = logging.getLogger(__name__)

SYSTEM = "snmp"

# --- The hub's alarm notification -----------------------------------------------------------

#: The hub's enterprise arc. 55555 is a PLACEHOLDER, not a Private Enterprise Number that IANA
#: assigned to this product: an operator replaces it with its own PEN (and the NMS's MIB with
#: it) before production. Everything below is relative to ``hubAlarmMIB``.
HUB_ENTERPRISE_OID = "1.3.6.1.4.1.55555"
HUB_ALARM_MIB_OID = f"{HUB_ENTERPRISE_OID}.1"

#: Notifications under ``.0``, as SMIv2 asks, so a v1 proxy can map them back and forth.
#: Two of them, like ALARM-MIB's ``alarmActiveState`` / ``alarmClearState`` (RFC 3877), so an
#: NMS can route raise and clear without reading the severity first.
ALARM_ACTIVE_OID = f"{HUB_ALARM_MIB_OID}.0.1"
ALARM_CLEAR_OID = f"{HUB_ALARM_MIB_OID}.0.2"

_OBJECTS = f"{HUB_ALARM_MIB_OID}.1"
#: The notification's objects (accessible-for-notify scalars, hence the ``.0`` instance).
NOTIFICATION_ID_OID = f"{_OBJECTS}.1.0"  # Unsigned32: X.733 notificationIdentifier
MANAGED_OBJECT_OID = f"{_OBJECTS}.2.0"  # SnmpAdminString: X.733 managed object instance
EVENT_TYPE_OID = f"{_OBJECTS}.3.0"  # IANAItuEventType
PROBABLE_CAUSE_OID = f"{_OBJECTS}.4.0"  # IANAItuProbableCause
SEVERITY_OID = f"{_OBJECTS}.5.0"  # ItuPerceivedSeverity
ADDITIONAL_TEXT_OID = f"{_OBJECTS}.6.0"  # SnmpAdminString: X.733 additionalText
EVENT_TIME_OID = f"{_OBJECTS}.7.0"  # DateAndTime (SNMPv2-TC), UTC

#: SnmpAdminString and DisplayString hold at most 255 octets.
_MAX_TEXT_OCTETS = 255

#: Common read-only objects of any agent (SNMPv2-MIB), for :func:`get`.
SYS_DESCR_OID = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID_OID = "1.3.6.1.2.1.1.2.0"
SYS_UPTIME_OID = "1.3.6.1.2.1.1.3.0"
SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"


def notification_oid(alarm: Alarm) -> str:
    """The notification an alarm goes out as: ``hubAlarmClear`` for a clear, else
    ``hubAlarmActive``."""
    return ALARM_CLEAR_OID if alarm.severity is PerceivedSeverity.CLEARED else ALARM_ACTIVE_OID


def date_and_time(moment: datetime) -> bytes:
    """SNMPv2-TC ``DateAndTime`` in its 11-octet form, in UTC (direction '+', offset 0:00)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    utc = moment.astimezone(UTC)
    return struct.pack(
        ">HBBBBBBcBB",
        utc.year,
        utc.month,
        utc.day,
        utc.hour,
        utc.minute,
        utc.second,
        utc.microsecond // 100_000,
        b"+",
        0,
        0,
    )


def _admin_string(text: str) -> bytes:
    """UTF-8, cut to 255 octets without splitting a character."""
    encoded = text.encode("utf-8")[:_MAX_TEXT_OCTETS]
    return encoded.decode("utf-8", errors="ignore").encode("utf-8")


def alarm_varbinds(alarm: Alarm) -> list[tuple[str, Any]]:
    """The notification's varbinds after sysUpTime.0 and snmpTrapOID.0 (which pysnmp adds)."""
    return [
        (NOTIFICATION_ID_OID, Unsigned32(alarm.notification_id)),
        (MANAGED_OBJECT_OID, OctetString(_admin_string(alarm.managed_object))),
        (EVENT_TYPE_OID, Integer32(int(alarm.event_type))),
        (PROBABLE_CAUSE_OID, Integer32(int(alarm.probable_cause))),
        (SEVERITY_OID, Integer32(int(alarm.severity))),
        (ADDITIONAL_TEXT_OID, OctetString(_admin_string(alarm.text))),
        (EVENT_TIME_OID, OctetString(date_and_time(alarm.event_time))),
    ]


def _notification(alarm: Alarm) -> NotificationType:
    # pysnmp puts sysUpTime.0 first and snmpTrapOID.0 (= the notification OID) second, as
    # RFC 3416 section 4.2.6 requires, and encodes the PDU: nothing here touches BER.
    return NotificationType(ObjectIdentity(notification_oid(alarm))).add_varbinds(
        *(ObjectType(ObjectIdentity(oid), value) for oid, value in alarm_varbinds(alarm))
    )


# --- Targets ----------------------------------------------------------------------------------

SnmpVersion = Literal["2c", "3"]
NotifyType = Literal["trap", "inform"]

#: RFC 3411 SnmpEngineID: "enterprise" format (first bit set, then the enterprise number),
#: format 4 (text), then "telecom-hub". Built on the placeholder arc, like the MIB.
DEFAULT_ENGINE_ID = (0x80000000 | 55555).to_bytes(4, "big").hex() + "04" + b"telecom-hub".hex()

_HEX = re.compile(r"^(?:0x)?([0-9a-fA-F]+)$")
_V2C_FORM = "v2c:<community>@<host>[:<port>]"
_V3_FORM = "v3:<user>:<authkey>:<privkey>[:<engineid>]@<host>[:<port>]"


def normalize_engine_id(value: str, *, field_name: str = "engine id") -> str:
    """Lower-case hex without ``0x``; RFC 3411 allows 5 to 32 octets."""
    match = _HEX.match(value.strip())
    if not match or len(match.group(1)) % 2:
        raise ValidationFailure(field_name, "must be an even number of hex digits")
    octets = len(match.group(1)) // 2
    if not 5 <= octets <= 32:
        raise ValidationFailure(field_name, f"must be 5 to 32 octets, got {octets}")
    return match.group(1).lower()


@dataclass(frozen=True)
class SnmpTarget:
    """One SNMP peer: an NMS that receives the hub's notifications, or an agent to read.

    v3 always runs authPriv (HMAC-SHA-96 and AES-128-CFB). ``engine_id`` is the hub's own
    snmpEngineID as this NMS knows it for v3 *traps* (the sender is the authoritative engine,
    so the NMS's ``createUser -e`` names it); empty means the notifier's default. Informs and
    GETs are answered by the peer, which is then authoritative: pysnmp discovers its engine id
    and ``engine_id`` plays no part.
    """

    host: str
    port: int = 162
    version: SnmpVersion = "2c"
    community: str = field(default="", repr=False)
    user: str = ""
    auth_key: str = field(default="", repr=False)
    priv_key: str = field(default="", repr=False)
    engine_id: str | None = None

    def __post_init__(self) -> None:
        where = f"snmp target {self.label}"
        if not self.host:
            raise ValidationFailure(where, "host is empty")
        if not 0 < self.port < 65536:
            raise ValidationFailure(where, f"port {self.port} is out of range")
        if self.version == "2c":
            if not self.community:
                raise ValidationFailure(where, "v2c needs a community")
            if self.user or self.auth_key or self.priv_key or self.engine_id:
                raise ValidationFailure(where, "v2c takes a community, not USM credentials")
        elif self.version == "3":
            if not self.user:
                raise ValidationFailure(where, "v3 needs a user name")
            # USM derives keys from pass phrases of at least 8 characters (RFC 3414 11.2);
            # net-snmp refuses shorter ones, so refuse them here rather than at the NMS.
            for name, key in (("auth key", self.auth_key), ("priv key", self.priv_key)):
                if len(key) < 8:
                    raise ValidationFailure(where, f"v3 {name} must have at least 8 characters")
            if self.community:
                raise ValidationFailure(where, "v3 takes USM credentials, not a community")
            if self.engine_id is not None:
                object.__setattr__(
                    self, "engine_id", normalize_engine_id(self.engine_id, field_name=where)
                )
        else:
            raise ValidationFailure(where, f"version must be '2c' or '3', got {self.version!r}")

    @property
    def label(self) -> str:
        """How logs and results name this target: version, v3 user, address; never secrets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        who = f"v3:{self.user}" if self.version == "3" else f"v{self.version}"
        return f"{who}@{host}:{self.port}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.community, self.auth_key, self.priv_key) if s)

    @classmethod
    def parse(
        cls, spec: str, *, default_port: int = 162, position: int | None = None
    ) -> SnmpTarget:
        """Read ``v2c:<community>@<host>[:<port>]`` or
        ``v3:<user>:<authkey>:<privkey>[:<engineid>]@<host>[:<port>]``.

        Parts are percent-decoded, so a secret may hold ``:``, ``@`` or ``,`` as ``%3A``,
        ``%40``, ``%2C``. An IPv6 host goes in brackets: ``v2c:nms@[2001:db8::1]:162``.
        Errors say what is wrong and where, never echoing the spec (it holds secrets).
        """
        where = "snmp target" if position is None else f"snmp target #{position}"
        spec = spec.strip()
        credentials, at, address = spec.rpartition("@")
        if not at or not credentials:
            raise ValidationFailure(where, f"expected {_V2C_FORM} or {_V3_FORM}")
        version, _, rest = credentials.partition(":")
        host, port = _parse_address(address, default_port, where)
        parts = [unquote(part) for part in rest.split(":")]
        version = version.lower()
        if version == "v2c":
            if len(parts) != 1 or not parts[0]:
                raise ValidationFailure(where, f"expected {_V2C_FORM}")
            return cls(host=host, port=port, version="2c", community=parts[0])
        if version == "v3":
            if len(parts) not in (3, 4) or not all(parts):
                raise ValidationFailure(where, f"expected {_V3_FORM}")
            return cls(
                host=host,
                port=port,
                version="3",
                user=parts[0],
                auth_key=parts[1],
                priv_key=parts[2],
                engine_id=parts[3] if len(parts) == 4 else None,
            )
        raise ValidationFailure(where, "the spec must start with 'v2c:' or 'v3:'")


def _parse_address(address: str, default_port: int, where: str) -> tuple[str, int]:
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not bracket:
            raise ValidationFailure(where, "IPv6 host lacks its closing ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValidationFailure(where, "the bracketed host is not an IPv6 address") from None
        if rest and not rest.startswith(":"):
            raise ValidationFailure(where, "expected ':<port>' after the IPv6 host")
        port_text = rest[1:]
    else:
        host, _, port_text = address.partition(":")
        if ":" in port_text:
            raise ValidationFailure(where, "an IPv6 host must be written in brackets")
    if not host:
        raise ValidationFailure(where, "host is empty")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValidationFailure(where, "port must be a number from 1 to 65535")
    return host, int(port_text)


def parse_targets(specs: str | Iterable[str], *, default_port: int = 162) -> list[SnmpTarget]:
    """Several specs, comma-separated in one string (as in a setting) or as a list."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    return [
        SnmpTarget.parse(item, default_port=default_port, position=index)
        for index, item in enumerate((item.strip() for item in items), start=1)
        if item
    ]


# --- pysnmp plumbing ---------------------------------------------------------------------------

#: The hub's snmpEngineTime counts seconds from this moment, see :func:`_new_engine`.
_ENGINE_TIME_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z


def _new_engine(engine_id: str | None = None) -> SnmpEngine:
    """An SNMP engine bound to the running event loop (pysnmp's dispatcher is)."""
    if engine_id is None:
        return SnmpEngine()
    engine = SnmpEngine(OctetString(hexValue=engine_id))
    # A v3 trap is authenticated with the *sender's* snmpEngineBoots and snmpEngineTime, and
    # the NMS drops one that looks older than the newest it saw from that engine id (RFC 3414
    # 3.2 step 7b; net-snmp does, silently). pysnmp bumps boots in a file under /tmp and
    # starts the time at 0, so a restarted container, or a second worker with the same engine
    # id, looks older and its traps vanish. Instead every process presents boots 1 and the
    # seconds since 2024: the same pair wherever and whenever it runs, as long as clocks agree
    # within the 150 s window (NTP); it stays below 2^31-1 until 2092.
    builder = engine.get_mib_builder()
    boots, clock = builder.import_symbols(
        "__SNMP-FRAMEWORK-MIB", "snmpEngineBoots", "snmpEngineTime"
    )
    boots.syntax = boots.syntax.clone(1)
    # pysnmp keeps the start moment here and reports "now - start" as snmpEngineTime.
    clock.syntax = clock.syntax.clone(_ENGINE_TIME_EPOCH)
    return engine


def _close_engine(engine: SnmpEngine) -> None:
    try:
        engine.close_dispatcher()
    except Exception:  # closing must not hide the outcome it follows
        logger.debug("closing an SNMP engine failed", exc_info=True)


async def _transport(target: SnmpTarget, *, timeout: float, retries: int, tag: str = "") -> Any:
    kind = Udp6TransportTarget if ":" in target.host else UdpTransportTarget
    return await kind.create(
        (target.host, target.port), timeout=timeout, retries=retries, tagList=tag
    )


def _auth(target: SnmpTarget, *, index: str, tag: str = "") -> CommunityData | UsmUserData:
    if target.version == "2c":
        # An explicit index per target. pysnmp derives the default from the community, so two
        # targets with one community (a primary and a backup NMS) would share a table entry
        # bound to the first target's tag, and informs to the second would go unanswered.
        return CommunityData(index, target.community, mpModel=1, tag=tag or None)
    return UsmUserData(
        target.user,
        authKey=target.auth_key,
        privKey=target.priv_key,
        authProtocol=usmHMACSHAAuthProtocol,
        privProtocol=usmAesCfb128Protocol,
    )


def _redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _describe(exc: BaseException, secrets: Iterable[str]) -> str:
    detail = str(exc)
    return _redact(f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__, secrets)


#: pysnmp error indications that retrying the same request cannot cure: the peer (or our own
#: configuration) refuses these credentials or this security level.
_REFUSALS: tuple[type[errind.ErrorIndication], ...] = (
    errind.UnknownUserName,
    errind.WrongDigest,
    errind.AuthenticationFailure,
    errind.AuthenticationError,
    errind.DecryptionError,
    errind.EncryptionError,
    errind.UnsupportedSecurityLevel,
    errind.UnsupportedAuthProtocol,
    errind.UnsupportedPrivProtocol,
    errind.UnknownSecurityName,
    errind.UnknownCommunityName,
    errind.NoAuthentication,
    errind.NoEncryption,
)


# --- Notifications -----------------------------------------------------------------------------


class _Undelivered(Exception):
    """Internal: one delivery attempt failed, and whether another attempt may help."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


class SnmpNotifier:
    """Sends :class:`Alarm` notifications to every configured NMS, never raising on delivery.

    ``notify_type="trap"`` is fire and forget: UDP says nothing about a receiver that is down,
    so only local failures (address resolution, socket errors) count as failed. ``"inform"``
    is acknowledged: a target that does not answer within ``timeout`` seconds, sent
    ``retries + 1`` times by pysnmp, has failed. Local failures are tried ``attempts`` times
    with exponential ``backoff``; a refusal (wrong credentials) is not retried.

    One pysnmp engine per local engine id, created on first use in the running event loop;
    :meth:`aclose` releases the sockets.
    """

    def __init__(
        self,
        targets: Sequence[SnmpTarget],
        *,
        notify_type: NotifyType = "trap",
        engine_id: str = DEFAULT_ENGINE_ID,
        timeout: float = 2.0,
        retries: int = 2,
        attempts: int = 3,
        backoff: float = 0.2,
    ) -> None:
        if notify_type not in ("trap", "inform"):
            raise ValidationFailure("notify_type", "must be 'trap' or 'inform'")
        if timeout <= 0 or retries < 0 or attempts < 1 or backoff < 0:
            raise ValidationFailure(
                "snmp", "timeout must be > 0, retries >= 0, attempts >= 1, backoff >= 0"
            )
        self._targets = tuple(targets)
        self.notify_type: NotifyType = notify_type
        self.engine_id = normalize_engine_id(engine_id, field_name="snmp engine id")
        self.timeout = timeout
        self.retries = retries
        self.attempts = attempts
        self.backoff = backoff
        self._engines: dict[str, SnmpEngine] = {}
        self._check_users()

    def _check_users(self) -> None:
        # pysnmp's USM table holds one key pair per (engine id, user): two targets that give
        # the same user different keys under one engine would overwrite each other.
        seen: dict[tuple[str, str], tuple[str, str]] = {}
        for target in self._targets:
            if target.version != "3":
                continue
            key = (self._local_engine_id(target), target.user)
            keys = (target.auth_key, target.priv_key)
            if seen.setdefault(key, keys) != keys:
                raise ValidationFailure(
                    f"snmp target {target.label}",
                    "the same v3 user has different keys on another target",
                )

    @property
    def targets(self) -> tuple[SnmpTarget, ...]:
        return self._targets

    @property
    def target_labels(self) -> list[str]:
        return [target.label for target in self._targets]

    def _local_engine_id(self, target: SnmpTarget) -> str:
        if self.notify_type == "trap" and target.engine_id:
            return target.engine_id
        return self.engine_id

    def _engine(self, engine_id: str) -> SnmpEngine:
        engine = self._engines.get(engine_id)
        if engine is None:
            engine = self._engines[engine_id] = _new_engine(engine_id)
        return engine

    async def send(self, alarm: Alarm) -> list[str]:
        """Send ``alarm`` to every target at once; return the labels of those that failed."""
        if not self._targets:
            logger.info(
                "alarm not sent: no SNMP targets configured",
                extra={"notification_id": alarm.notification_id},
            )
            return []
        outcomes = await asyncio.gather(
            *(self._send_to(index, target, alarm) for index, target in enumerate(self._targets))
        )
        return [target.label for target, ok in zip(self._targets, outcomes, strict=True) if not ok]

    async def _send_to(self, index: int, target: SnmpTarget, alarm: Alarm) -> bool:
        fields = {
            "snmp_target": target.label,
            "notify_type": self.notify_type,
            "notification_id": alarm.notification_id,
            "severity": alarm.severity.name,
            "managed_object": alarm.managed_object,
        }
        reason = "not attempted"
        for attempt in range(1, self.attempts + 1):
            try:
                await self._deliver(index, target, alarm)
            except _Undelivered as failure:
                reason = failure.reason
                if not failure.retry or attempt == self.attempts:
                    break
                logger.info(
                    "alarm delivery failed, retrying",
                    extra={**fields, "attempt": attempt, "reason": reason},
                )
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            except Exception as exc:  # an alarm must never raise into the business process
                reason = _describe(exc, target.secrets)
                break
            else:
                logger.info("alarm sent", extra={**fields, "attempt": attempt})
                return True
        logger.warning("alarm not delivered", extra={**fields, "reason": reason})
        return False

    async def _deliver(self, index: int, target: SnmpTarget, alarm: Alarm) -> None:
        # A notification goes to every target address carrying its tag. pysnmp derives the tag
        # from (security name, address), which two targets can share; ours is one per target.
        tag = f"hub-t{index}-{self.notify_type}"
        secrets = target.secrets
        try:
            transport = await _transport(
                target, timeout=self.timeout, retries=self.retries, tag=tag
            )
            engine = self._engine(self._local_engine_id(target))
            call = send_notification(
                engine,
                _auth(target, index=tag, tag=tag),
                transport,
                ContextData(),
                self.notify_type,
                _notification(alarm),
                lookupMib=False,
            )
            # pysnmp ends an unanswered inform itself; this bound only guards against a hang.
            budget = self.timeout * (self.retries + 1) + 5.0
            indication, status, _index, _varbinds = await asyncio.wait_for(call, budget)
        except (OSError, PySnmpError) as exc:  # OSError covers TimeoutError too
            raise _Undelivered(_describe(exc, secrets), retry=True) from exc
        if indication:
            refused = isinstance(indication, _REFUSALS)
            timed_out = isinstance(indication, errind.RequestTimedOut)
            text = _redact(str(indication), secrets)
            if timed_out:
                text = f"no acknowledgement within {self.timeout}s x {self.retries + 1} sends"
            # A timed-out inform already went out retries + 1 times: it has failed (below).
            raise _Undelivered(text, retry=not (refused or timed_out))
        if status:
            raise _Undelivered(f"error status {status.prettyPrint()}", retry=False)

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            _close_engine(engine)


# --- GET -----------------------------------------------------------------------------------------

_OID = re.compile(r"^\.?[0-2](\.\d+)+$")
#: RFC 3416 error-status values worth retrying: genErr(5), resourceUnavailable(13).
_TRANSIENT_STATUS = frozenset({5, 13})
_NO_SUCH_NAME = 2


async def get(
    target: SnmpTarget, oids: Sequence[str], *, timeout: float = 2.0, retries: int = 1
) -> dict[str, str]:
    """Read scalar objects from an agent: ``{"1.3.6.1.2.1.1.1.0": "Linux ne-01 ..."}``.

    OIDs are numeric (``SYS_DESCR_OID``...); keys come back as given, without a leading dot.
    Raises :class:`TransientError` when the agent does not answer in ``timeout`` x
    ``retries + 1`` (down, unreachable, or silently refusing a wrong community),
    :class:`NotFoundError` for an object the agent does not have, and
    :class:`PermanentError` for refusals such as wrong v3 credentials.
    """
    wanted = [oid.strip().lstrip(".") for oid in oids]
    if not wanted:
        raise PermanentError("no OID to read", system=SYSTEM)
    for oid in wanted:
        if not _OID.match(oid):
            raise PermanentError(f"malformed OID {oid!r}", system=SYSTEM)
    where = f"GET from {target.label}"
    engine = _new_engine()
    try:
        try:
            transport = await _transport(target, timeout=timeout, retries=retries)
            indication, status, index, varbinds = await asyncio.wait_for(
                get_cmd(
                    engine,
                    _auth(target, index="hub-get"),
                    transport,
                    ContextData(),
                    *(ObjectType(ObjectIdentity(oid)) for oid in wanted),
                    lookupMib=False,
                ),
                timeout * (retries + 1) + 5.0,
            )
        except (OSError, PySnmpError) as exc:  # OSError covers TimeoutError too
            message = f"{where}: {_describe(exc, target.secrets)}"
            raise TransientError(message, system=SYSTEM) from exc
    finally:
        _close_engine(engine)
    if indication:
        text = _redact(str(indication), target.secrets)
        if isinstance(indication, errind.RequestTimedOut):
            raise TransientError(
                f"{where}: no answer within {timeout}s x {retries + 1} requests", system=SYSTEM
            )
        if isinstance(indication, _REFUSALS):
            raise PermanentError(f"{where}: {text}", system=SYSTEM)
        raise TransientError(f"{where}: {text}", system=SYSTEM)
    if status:
        code = int(status)
        culprit = wanted[int(index) - 1] if 0 < int(index) <= len(wanted) else "?"
        message = f"{where}: {status.prettyPrint()} at {culprit}"
        if code == _NO_SUCH_NAME:
            raise NotFoundError(message, system=SYSTEM, status=code)
        if code in _TRANSIENT_STATUS:
            raise TransientError(message, system=SYSTEM, status=code)
        raise PermanentError(message, system=SYSTEM, status=code)
    values: dict[str, str] = {}
    for oid, (_name, value) in zip(wanted, varbinds, strict=True):
        if isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView):
            raise NotFoundError(f"{where}: the agent has no {oid}", system=SYSTEM)
        values[oid] = value.prettyPrint()
    return values
