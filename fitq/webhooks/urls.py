"""Where a webhook may be sent. A URL is checked twice: as written when its endpoint is
created (scheme, host, no credentials, an address literal's range), and before each
delivery against every address its host name resolves to, so a name that later points
inward (DNS rebinding) is refused too. Redirects are never followed (the sender's job)."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from fitq.settings import Settings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
# (host, port) → the addresses it resolves to; socket.getaddrinfo in production.
Resolver = Callable[[str, int], Sequence[str]]

# Cloud metadata services that sit outside the private and link-local ranges.
METADATA = {ipaddress.ip_address("fd00:ec2::254")}


class UnsafeUrl(ValueError):
    """A webhook URL refused, in the user's words: what was expected, what was received."""


@dataclass(frozen=True)
class WebhookPolicy:
    """``allow_http``: plain http besides https. ``allow_loopback``: loopback addresses and
    plain http (tests, a laptop: ``FITQ_WEBHOOK_ALLOW_LOOPBACK``)."""

    allow_http: bool = False
    allow_loopback: bool = False


def policy_of(settings: Settings) -> WebhookPolicy:
    return WebhookPolicy(settings.webhook_allow_http, settings.webhook_allow_loopback)


@dataclass(frozen=True)
class Target:
    url: str
    host: str
    port: int


def check_url(url: str, policy: WebhookPolicy) -> Target:
    """The URL's host and port, or ``UnsafeUrl``. An address literal is checked here; a
    name is checked where it resolves (``check_resolved``)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"expected a URL, received {url!r} ({exc})") from None
    schemes = {"https"} | ({"http"} if policy.allow_http or policy.allow_loopback else set())
    if parts.scheme not in schemes:
        allowed = " or ".join(sorted(schemes))
        setting = "" if "http" in schemes else " (plain http: FITQ_WEBHOOK_ALLOW_HTTP)"
        raise UnsafeUrl(f"expected an {allowed} URL{setting}, received {url!r}")
    if not parts.hostname:
        raise UnsafeUrl(f"expected a URL with a host, received {url!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeUrl(f"expected a URL without credentials, received {_redacted(url)!r}")
    host = parts.hostname
    literal = _address(host)
    if literal is not None:
        _check_address(literal, host, policy)
    return Target(url, host, port or (443 if parts.scheme == "https" else 80))


def check_resolved(target: Target, policy: WebhookPolicy, resolve: Resolver) -> list[Address]:
    """Every address ``target``'s host resolves to, each checked; ``UnsafeUrl`` if any is
    refused (a name with one inward address is refused whole) or there is none."""
    try:
        found = [ipaddress.ip_address(a.split("%")[0]) for a in resolve(target.host, target.port)]
    except OSError as exc:
        raise UnsafeUrl(
            f"expected a host name that resolves, received {target.host!r} ({exc})"
        ) from None
    if not found:
        raise UnsafeUrl(f"expected a host name that resolves, received {target.host!r}")
    for address in found:
        _check_address(address, target.host, policy)
    return found


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _check_address(address: Address, host: str, policy: WebhookPolicy) -> None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    where = host if host == str(address) else f"{host} ({address})"
    if address.is_loopback:
        if policy.allow_loopback:
            return
        raise UnsafeUrl(
            f"expected a public address, received {where}: loopback "
            "(FITQ_WEBHOOK_ALLOW_LOOPBACK=true allows it, for tests and laptops)"
        )
    kind = (
        "a cloud metadata address" if address in METADATA or str(address) == "169.254.169.254"
        else "unspecified" if address.is_unspecified
        else "multicast" if address.is_multicast
        else "link-local" if address.is_link_local
        else "private" if address.is_private
        else "reserved" if address.is_reserved or not address.is_global
        else None
    )  # fmt: skip
    if kind is not None:
        raise UnsafeUrl(f"expected a public address, received {where}: {kind}")


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"***@{netloc}").geturl()
