"""Which proxies the server believes about the browser's scheme and address (``serve --forwarded-allow-ips``).

Behind a proxy that ends TLS, the server sees plain http from the proxy; the
proxy says ``X-Forwarded-Proto: https``. uvicorn's own proxy-headers support
takes that header (and ``X-Forwarded-For``) from the addresses named here only,
so the session cookie is ``Secure`` exactly when the browser used https. By
default no proxy is believed: a client cannot claim https by sending the header.
"""

from __future__ import annotations

import ipaddress
from typing import Any


def check_forwarded_allow_ips(text: str) -> str:
    """``*`` or comma-separated IP addresses and networks, as given; raises ``ValueError`` naming the first that is neither."""
    items = [item.strip() for item in text.split(",")]
    if items == ["*"]:
        return "*"
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False) if "/" in item else ipaddress.ip_address(item)
        except ValueError:
            raise ValueError(
                f"--forwarded-allow-ips: {item[:80]!r} is not an IP address or network (give e.g. 127.0.0.1,10.0.0.0/8, or *)"
            ) from None
    return ",".join(items)


def proxy_settings(forwarded_allow_ips: str | None) -> dict[str, Any]:
    """uvicorn's arguments for believing ``X-Forwarded-Proto`` and ``-For`` from these proxies only (None: from none)."""
    if forwarded_allow_ips is None:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": forwarded_allow_ips}
