"""Which IP addresses the gallery may ever connect to: public unicast only.

``refusal(address)`` returns why an address is not public (a short phrase for logs and the
health log), or None when it is. Python's ``is_global`` alone is not enough: it calls
site-local ``fec0::/10`` and the IPv4-compatible ``::a.b.c.d`` global, and it does not look
inside the IPv6 forms that carry an IPv4 address (mapped, 6to4, NAT64, Teredo), which would let
``http://[::ffff:127.0.0.1]/`` or ``http://[2002:7f00:1::]/`` reach loopback.
"""
from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_V4 = ipaddress.IPv4Address("169.254.169.254")
METADATA_V6 = ipaddress.IPv6Address("fd00:ec2::254")
CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
ULA = ipaddress.IPv6Network("fc00::/7")


def parse_address(text: str) -> IPAddress | None:
    """An IP literal as it appears in a URL host or a resolver answer; None if it is not one."""
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def refusal(address: str | IPAddress) -> str | None:
    """Why connecting to ``address`` is refused, or None if it is a public unicast address."""
    if isinstance(address, str):
        parsed = parse_address(address)
        if parsed is None:
            return f"not an IP address: {address[:60]!r}"
        address = parsed
    if isinstance(address, ipaddress.IPv4Address):
        return _refusal_v4(address)
    return _refusal_v6(address)


def is_public(address: str | IPAddress) -> bool:
    return refusal(address) is None


def _refusal_v4(a: ipaddress.IPv4Address) -> str | None:
    if a.is_unspecified:
        return "unspecified address"
    if a.is_loopback:
        return "loopback address"
    if a == METADATA_V4:
        return "cloud metadata address"
    if a.is_link_local:
        return "link-local address"
    if a in CGNAT:
        return "carrier-grade NAT address (100.64/10)"
    if a.is_multicast:
        return "multicast address"
    if a.is_reserved:
        return "reserved address"
    if a.is_private:
        return "private address"
    if not a.is_global:
        return "not a globally routable address"
    return None


def _refusal_v6(a: ipaddress.IPv6Address) -> str | None:
    if a.scope_id:
        return "scoped IPv6 address"
    embedded = _embedded_v4(a)
    if embedded is not None:
        kind, v4 = embedded
        inner = _refusal_v4(v4)
        if inner is not None:
            return f"{kind} of a {inner}"
        if kind == "Teredo address":  # tunnelled to a client we cannot vouch for
            return "Teredo address"
        return None
    if a.is_unspecified:
        return "unspecified address"
    if a.is_loopback:
        return "loopback address"
    if a == METADATA_V6:
        return "cloud metadata address"
    if a.is_link_local:
        return "link-local address"
    if a.is_site_local:
        return "site-local address"
    if a in ULA:
        return "unique local address"
    if a.is_multicast:
        return "multicast address"
    if a in NAT64_LOCAL:
        return "local-use NAT64 address"
    if a.is_private:
        return "private address"
    if a.is_reserved:
        return "reserved address"
    if not a.is_global:
        return "not a globally routable address"
    return None


def _embedded_v4(a: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if a.ipv4_mapped is not None:
        return "IPv4-mapped address", a.ipv4_mapped
    if a.sixtofour is not None:
        return "6to4 address", a.sixtofour
    if a.teredo is not None:
        server, client = a.teredo
        if _refusal_v4(server) is not None:
            return "Teredo address", server
        return "Teredo address", client
    if a in NAT64:
        return "NAT64 address", ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)
    if a in IPV4_COMPATIBLE and int(a) > 1:
        return "IPv4-compatible address", ipaddress.IPv4Address(int(a) & 0xFFFFFFFF)
    return None
