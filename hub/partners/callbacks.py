"""Which callback URLs a partner may give: where the hub will POST its notifications.

A callback is an absolute ``https`` URL without credentials or a fragment. Plain ``http`` is
for development and tests only (``HUB_PARTNERS_CALLBACK_ALLOW_HTTP``, refused in production).
An address on loopback, a private network, link-local (cloud metadata), or any other address
that is not on the public internet is refused unless a setting allows loopback or private
ones: the hub must not be made to send requests into its own network. The check runs twice:
at the door on what the URL says (an IP literal, ``localhost``), and where the notification is
sent, on every address the host name resolves to (:func:`refused_address`), so a name that
resolves to a private address is caught too.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_LENGTH = 2000


@dataclass(frozen=True)
class CallbackPolicy:
    allow_http: bool = False
    allow_loopback: bool = False
    allow_private: bool = False


def refused_address(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, policy: CallbackPolicy
) -> str | None:
    """Why the hub must not send to ``address``, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    if address.is_loopback:
        return None if policy.allow_loopback else "is a loopback address"
    if address.is_link_local:
        return "is a link-local address"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return "is not a unicast internet address"
    if address.is_private or not address.is_global:
        return None if policy.allow_private else "is a private address"
    return None


def check_callback_url(url: str, policy: CallbackPolicy) -> str:
    """``url`` if the hub may send to it; ``ValueError`` saying why not."""
    if len(url) > MAX_LENGTH:
        raise ValueError(f"must be at most {MAX_LENGTH} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise ValueError("must be an absolute https URL")
    if parts.scheme == "http" and not policy.allow_http:
        raise ValueError("must use https")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    host = parts.hostname
    if not host:
        raise ValueError("must name a host")
    try:
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        raise ValueError("has an invalid port") from None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None:
        if problem := refused_address(address, policy):
            raise ValueError(f"{host} {problem}")
    elif host == "localhost" or host.endswith(".localhost"):
        if not policy.allow_loopback:
            raise ValueError(f"{host} is a loopback address")
    elif "." not in host:
        raise ValueError(f"{host} is not a fully qualified host name")
    return url
