"""Whether a form post comes from this server's own pages: the ``Origin`` header, or else the ``Referer``.

A cookie rides along on requests other sites trigger, and ``/login`` needs no
cookie at all: without this check any site could post its own key to
``/login`` and sign a visitor's browser in as the attacker (login CSRF).
Browsers send ``Origin`` on every POST, with the pages' ``same-origin``
referrer policy; a post naming another origin, ``null`` (a sandboxed or
privacy-stripped context) or no origin at all is refused. The server's own
origin is the request's scheme (as the trusted proxy tells it, ``serve
--forwarded-allow-ips``) and its ``Host``; ``serve --public-origin`` adds the
origin browsers see when a proxy rewrites ``Host``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from fastapi import Request

from consentflow.contracts.echo import echoed

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, lowercase, without its scheme's default port; None for anything else
    (``null``, another scheme, a malformed URL)."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host or parts.username is not None or parts.password is not None:
        return None
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    return f"{scheme}://{host}" if port in (None, _DEFAULT_PORTS[scheme]) else f"{scheme}://{host}:{port}"


def check_public_origin(text: str) -> str:
    """An origin given to ``serve --public-origin``, normalised; raises ``ValueError`` saying what is wrong."""
    found = origin_of(text)
    if found is None or urlsplit(text.strip()).path not in ("", "/"):
        raise ValueError(f"--public-origin {text!r}: expected scheme://host[:port], e.g. https://consent.example.org")
    return found


def own_origin(request: Request) -> str:
    """This server's origin as the request reached it: its scheme and its ``Host`` header."""
    return origin_of(f"{request.url.scheme}://{request.headers.get('host', '')}") or f"{request.url.scheme}://"


def cross_site_refusal(request: Request, public_origins: Iterable[str] = ()) -> str | None:
    """Why a form post is not from this server's pages, in one line; None when it is."""
    ours = own_origin(request)
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is None and referer is None:
        return f"refused: the post names no Origin (nor Referer); post the form from this server's pages ({ours})"
    header, value = ("Origin", origin) if origin is not None else ("Referer", referer or "")
    if origin_of(value) in {ours, *public_origins}:
        return None
    return f"refused: {header} {echoed(value)} is not this server's origin {ours}; post the form from this server's pages"
