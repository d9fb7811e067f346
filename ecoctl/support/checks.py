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
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?"
TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
"""An image tag (Docker's reference grammar)."""
IMAGE = re.compile(rf"(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::{TAG})?"
                   r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?")
"""An image reference, `[registry[:port]/]path[:tag][@digest]` (Docker's reference grammar)."""
REGISTRY = re.compile(rf"{_DOMAIN}(?:/{_COMPONENT})*/?")
IMAGE_MAX = 512


def shown(value: Any) -> str:
    """VALUE for a message: its repr, cut to SHOWN characters; containers by their size only."""
    if isinstance(value, dict):
        return f"a mapping of {len(value)} key(s)"
    if isinstance(value, (list, tuple, set)):
        return f"a list of {len(value)} item(s)"
    text = repr(value[:SHOWN + 1] if isinstance(value, (str, bytes)) else value)
    return text if len(text) <= SHOWN else text[:SHOWN - 3] + "..."


def printable(text: str) -> str:
    """TEXT to show a person: each control character (ESC of a terminal sequence, a carriage
    return, BEL...) but a line break or a tab shown as its escape (`\\x1b`), never sent raw."""
    return "".join(ch if ch in "\n\t" or not (ord(ch) < 32 or 127 <= ord(ch) < 160) else f"\\x{ord(ch):02x}"
                   for ch in text)


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


def check_image(image: str) -> str:
    """An image reference as Docker reads one (`registry.example.com:5000/team/python:3.12-slim`,
    `name@sha256:...`): no spaces, line breaks or other characters that would change a Dockerfile
    or a command it goes into."""
    if not isinstance(image, str) or len(image) > IMAGE_MAX or not IMAGE.fullmatch(image):
        raise ValueError(f"{shown(image)} is not an image reference: use [REGISTRY[:PORT]/]NAME[:TAG] "
                         "(lowercase name, e.g. registry.example.com/python:3.12-slim)")
    return image


def check_registry(registry: str) -> str:
    """A registry host[:port], with an optional path (`registry.example.com:5000/team`)."""
    if not isinstance(registry, str) or len(registry) > IMAGE_MAX or not REGISTRY.fullmatch(registry):
        raise ValueError(f"{shown(registry)} is not a registry: use HOST[:PORT][/PATH] "
                         "(e.g. registry.example.com:5000)")
    return registry


def check_line(value: Any, what: str, limit: int = URI_MAX) -> Any:
    """VALUE when it is a number, a boolean, None, or one line of text (at most LIMIT characters,
    no control characters, no lone surrogates), as a value that goes into a file's line must be."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text or a number, not {shown(value)}")
    if len(value) > limit or any(ord(ch) < 32 or 127 <= ord(ch) < 160 or 0xD800 <= ord(ch) < 0xE000 for ch in value):
        raise ValueError(f"{what} {shown(value)} is not one line of text (a line break, a control "
                         f"character or a lone surrogate, or over {limit} characters)")
    return value
