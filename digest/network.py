"""Client networks, never addresses: what the vote and click records keep of a client."""

from __future__ import annotations

import ipaddress


def network_prefix(address: str | None) -> str:
    """The client's network, never its address: an IPv4 /24 or an IPv6 /48 ("" if unknown)."""
    if not address:
        return ""
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return ""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
