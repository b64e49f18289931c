"""Which IP addresses an untrusted URL may reach: public unicast only.

`blocked_reason(ip)` names the class of a refused address ("loopback", "private", ...) or
returns None for a public one. IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
IPv4-compatible `::a.b.c.d`, well-known NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by
the IPv4 address inside, so `[::ffff:127.0.0.1]` is loopback and a NAT64 address of a
public host stays usable on an IPv6-only network. Cloud metadata endpoints are refused even when
an allowed network covers them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata and credential endpoints: AWS/GCP/Azure/Oracle/OpenStack (169.254.169.254),
# AWS ECS task credentials (169.254.170.2) and EKS pod identity (169.254.170.23, fd00:ec2::23),
# AWS over IPv6 (fd00:ec2::254), Alibaba Cloud (100.100.100.200).
METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.170.23",
        "100.100.100.200",
        "fd00:ec2::254",
        "fd00:ec2::23",
    )
)

_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")
# Local-use NAT64 (64:ff9b:1::/48) may embed the IPv4 address at several offsets; it is not
# unwrapped, so it stays "reserved" (inside ::/8).
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPAT = ipaddress.IPv6Network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, well-known NAT64,
    6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in _COMPAT and int(ip) > 1:  # `::` and `::1` are themselves, not IPv4
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def effective(ip: IPAddress) -> IPAddress:
    """The address that is really reached: the IPv4 inside an IPv4-carrying IPv6 form."""
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ipaddress.IPv6Address(ip.compressed.split("%")[0])  # a zone id changes nothing
        inner = embedded_ipv4(ip)
        if inner is not None:
            return inner
    return ip


def address_class(ip: IPAddress) -> str | None:
    """The refused class of `ip` ("loopback", "private", ...), or None when it is public."""
    ip = effective(ip)
    if ip in METADATA:
        return "cloud metadata"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_loopback, "loopback"),
        (ip.is_unspecified, "unspecified"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "shared (CGNAT)"),
        (ip == _BROADCAST, "broadcast"),
        (isinstance(ip, ipaddress.IPv6Address) and ip in _UNIQUE_LOCAL, "unique-local"),
        (isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local, "site-local"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "non-public"),
    )
    for hit, name in checks:
        if hit:
            return name
    return None


def blocked_reason(ip: IPAddress, allowed: Iterable[IPNetwork] = ()) -> str | None:
    """None when `ip` may be connected to; otherwise its class. An address inside one of the
    `allowed` networks is accepted whatever its class, except a cloud metadata address."""
    cls = address_class(ip)
    if cls is None or cls == "cloud metadata":
        return cls
    inner = effective(ip)
    for net in allowed:
        if ip in net or inner in net:
            return None
    return cls
