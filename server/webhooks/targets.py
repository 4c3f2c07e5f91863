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


__all__ = ["Target", "TargetRefused", "check_url", "is_public", "resolve"]


class TargetRefused(Exception):
    """The receiver's address is not one we send to."""


# IPv6 ranges that carry an IPv4 address inside them: 6to4, NAT64 and the
# old IPv4-compatible form. Python's is_global judges the IPv6 wrapper,
# not the address inside (so a NAT64 route to 127.0.0.1 looks public).
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether we may send to this address: global unicast, all the way in."""
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv4Address):
        return True
    if address.teredo is not None or address in _NAT64_LOCAL:
        return False
    inner = address.ipv4_mapped or address.sixtofour
    if inner is None and (address in _NAT64 or address in _IPV4_COMPATIBLE):
        inner = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return inner is None or is_public(inner)


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
        if literal is not None and not is_public(literal):
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
        refused = [a for a in addresses if not is_public(a)]
        if refused:
            raise TargetRefused(f"{host} resolves to a non-public address {refused[0]}")
    address = addresses[0]
    literal = f"[{address}]" if address.version == 6 else str(address)
    netloc = literal if parts.port is None else f"{literal}:{parts.port}"
    return Target(urlunsplit(parts._replace(netloc=netloc)), host)
