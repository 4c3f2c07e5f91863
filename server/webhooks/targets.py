"""Where a webhook may send: public HTTPS receivers, checked at each send.

A webhook URL is typed by a user, so it is a way to make our server send
requests wherever that user likes, including our own network: a database
port, a metadata service, an admin page on loopback (server-side request
forgery). So receivers on private, loopback, link-local and other
non-public addresses are refused unless the operator allows them
(``WEBHOOK_ALLOW_PRIVATE``), and the check is made on the addresses the
name resolves to at send time. The request then goes to the checked
address itself, with the name kept for the Host header and TLS, so a DNS
answer that changes between the check and the connection (DNS rebinding)
cannot redirect it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

from server.errors import InvalidInput


__all__ = ["Target", "TargetRefused", "check_url", "resolve"]


class TargetRefused(Exception):
    """The receiver's address is not one we send to."""


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    # The URL with the host replaced by the checked address.
    url: str
    # The name, for the Host header and for TLS (SNI and certificate).
    host: str


def check_url(url: str, *, allow_private: bool) -> str:
    """Check a webhook URL's shape when it is registered.

    Raises:
        InvalidInput: not an absolute http(s) URL, credentials in it, or
            plain http without the operator allowing private receivers.

    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInput("Webhook URLs are absolute https:// URLs.", field="url")
    if parts.scheme == "http" and not allow_private:
        raise InvalidInput("Webhook URLs must use https.", field="url")
    if parts.username or parts.password:
        raise InvalidInput(
            "Put no credentials in the URL; verify our signature instead.",
            field="url",
        )
    if parts.fragment:
        raise InvalidInput("Webhook URLs have no #fragment.", field="url")
    if not allow_private:
        try:
            literal = ipaddress.ip_address(parts.hostname)
        except ValueError:
            literal = None
        if literal is not None and not literal.is_global:
            raise InvalidInput(
                "Webhooks cannot be sent to private or local addresses.", field="url"
            )
    return url.strip()


async def resolve(url: str, *, allow_private: bool) -> Target:
    """Resolve the receiver and pick an address we may send to.

    Raises:
        TargetRefused: the name does not resolve, or resolves to an address
            that is not public (any of them, so a mixed answer is refused).

    """
    parts = urlsplit(url)
    host = parts.hostname
    assert host is not None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise TargetRefused(f"cannot resolve {host}: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise TargetRefused(f"{host} has no address")
    if not allow_private:
        refused = [a for a in addresses if not a.is_global]
        if refused:
            raise TargetRefused(f"{host} resolves to a non-public address {refused[0]}")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return Target(urlunsplit(parts._replace(netloc=netloc)), host)
