"""Checks of values a user hands ecoctl (options and ecosystem.yaml), run before anything is written.

Each check returns the value or raises `ValueError` with a one-line reason that shows at most
`SHOWN` characters of the bad value (`shown`), so a huge or hostile value never floods a message.
"""

from __future__ import annotations

import re
from typing import Any

SHOWN = 80
HOST_MAX = 253
LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9][a-z0-9+\-]*)+$")
"""A private-use URI scheme for native apps (RFC 8252 7.1): reverse DNS, e.g. com.example.app."""
FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about", "filesystem"})
URI_MAX = 2000


def shown(value: Any) -> str:
    """VALUE for a message: its repr, cut to SHOWN characters; containers by their size only."""
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, (list, tuple, set)):
        return f"a list of {len(value)} item(s)"
    text = repr(value[:SHOWN + 1] if isinstance(value, (str, bytes)) else value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def check_host(host: str) -> str:
    """An RFC 1123 hostname, an IPv4 or an IPv6 address (at most 253 characters)."""
    import ipaddress

    if not isinstance(host, str):
        raise ValueError(f"host must be a hostname or an IP address, not {shown(host)}")
    if len(host) > HOST_MAX:
        raise ValueError(f"host {shown(host)} is longer than {HOST_MAX} characters")
    try:
        ipaddress.ip_address(host)
        return host
    except ValueError:
        pass
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if not host or not all(LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"host {shown(host)} is not a hostname (letters, digits, hyphens and dots, "
                         "RFC 1123), an IPv4 or an IPv6 address")
    return host


def url_host(host: str) -> str:
    """HOST as it goes into a URL or a host:port target (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def check_redirect_uri(uri: str) -> str:
    """An http(s) URL with a host, or a private-use reverse-DNS scheme (com.example.app:/callback);
    never javascript:, data:, file: and the like, never a fragment (RFC 6749 3.1.2), never a user
    name or password before the host."""
    from urllib.parse import urlsplit

    if not isinstance(uri, str):
        raise ValueError(f"redirect URI must be a string, not {shown(uri)}")
    if len(uri) > URI_MAX or any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in uri):
        raise ValueError(f"redirect URI {shown(uri)} is too long or holds spaces or control characters")
    try:
        parts = urlsplit(uri)
        port = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError(f"redirect URI {shown(uri)} is not a URL") from None
    scheme = parts.scheme.lower()
    if parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI {shown(uri)} has a fragment (#...): remove it")
    if "@" in parts.netloc:  # http://evil.com@127.0.0.1/ reads as evil.com to a person, 127.0.0.1 to a browser
        raise ValueError(f"redirect URI {shown(uri)} holds a user name (USER@HOST): remove it")
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError(f"redirect URI {shown(uri)} has no host: use http(s)://HOST[:PORT]/PATH")
        check_host(parts.hostname)
        if port == 0:
            raise ValueError(f"redirect URI {shown(uri)}: port 0 is not a TCP port")
        return uri
    if scheme in FORBIDDEN_SCHEMES or not PRIVATE_SCHEME.fullmatch(parts.scheme):
        raise ValueError(f"redirect URI {shown(uri)}: use http://, https:// or a private-use scheme "
                         "of a native app in reverse-DNS form (com.example.app:/callback)")
    return uri
