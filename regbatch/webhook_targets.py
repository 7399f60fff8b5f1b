"""Which hosts a webhook may reach: public addresses only, unless private ones are allowed.

A webhook URL is chosen by any organisation's key, and the product POSTs to it from inside our
network, so it could otherwise reach the cloud's metadata service, Prefect's API on 127.0.0.1,
or anything on the private network (server-side request forgery). The URL is checked twice:

* at subscription (`url_target_problems`, pure; `resolution_problems`, which asks DNS): no
  credentials in it, and no host that is, or resolves to, a refused address;
* at delivery (`resolve_target`), after DNS resolution: every address the name resolves to is
  checked, and the connection then goes to the checked address (regbatch.tasks.webhooks), so a
  name that changes its answer between the check and the connect (DNS rebinding) gains nothing.

An address is checked in every form it can take: IPv4 written in decimal, hex, octal or short
form (`2130706433`, `0x7f.1`, `017700000001`, `127.1`), and IPv4 inside IPv6 (mapped,
compatible, translated, 6to4, Teredo, NAT64). `REGBATCH_WEBHOOK_ALLOW_PRIVATE=1` allows the
loopback and private ranges for local testing; link-local (169.254.169.254, the metadata
service), multicast, unspecified and reserved addresses stay refused even then.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from urllib.parse import SplitResult

from regbatch.errors import RegbatchError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
ALLOW_SETTING = "REGBATCH_WEBHOOK_ALLOW_PRIVATE=1"
_NUMERIC_V4 = re.compile(r"[0-9a-fx.]+", re.IGNORECASE)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")  # SIIT's IPv4-translated addresses
_COMPATIBLE = ipaddress.ip_network("::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT


class TargetRefusedError(RegbatchError):
    """Raised when a webhook's host is, or resolves to, an address webhooks may not reach."""


def parse_address(host: str) -> IPAddress | None:
    """The address `host` denotes when it is numeric in any form, else None (a name).

    IPv4 is read the way the C library's resolver reads it (inet_aton: 1 to 4 parts, each
    decimal, 0x-hex or 0-octal), because that is how a connection would read it.
    """
    text = host.strip("[]").rstrip(".")
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    if not text or not _NUMERIC_V4.fullmatch(text) or not text[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(text))
    except OSError:
        return None


def judged_addresses(address: IPAddress) -> list[IPAddress]:
    """The addresses that decide whether `address` may be reached.

    IPv4 carried in an IPv6 wrapper that a network turns back into IPv4 (mapped, translated,
    compatible, NAT64) is judged as that IPv4 address alone, so DNS64's 64:ff9b::8.8.8.8 is as
    public as 8.8.8.8; a tunnel's (6to4, Teredo) outer address and its IPv4 are both judged.
    """
    if isinstance(address, ipaddress.IPv4Address) or int(address) <= 1:  # ::, ::1
        return [address]
    low = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.ipv4_mapped is not None:
        return [address.ipv4_mapped]
    if any(address in net for net in (_NAT64, _TRANSLATED, _COMPATIBLE)):
        return [low]
    tunnelled = [address.sixtofour, *(address.teredo or ())]
    return [address, *(v4 for v4 in tunnelled if v4 is not None)]


def _kind(address: IPAddress) -> tuple[str, bool] | None:
    """(what a refused address is, whether REGBATCH_WEBHOOK_ALLOW_PRIVATE allows it), or None
    for a public address."""
    if address.is_unspecified:
        return "the unspecified address", False
    if address.is_loopback:
        return "a loopback address", True
    if address.is_link_local:
        return "a link-local address (e.g. the cloud metadata service)", False
    if address.is_multicast:
        return "a multicast address", False
    if address.is_reserved or getattr(address, "is_site_local", False):
        return "a reserved address", False
    if isinstance(address, ipaddress.IPv4Address) and address in _SHARED:
        return "a shared (carrier-grade NAT) address", True
    if address.is_private:
        return "a private-network address", True
    if not address.is_global:
        return "not a public address", True
    return None


def address_problem(address: IPAddress, allow_private: bool) -> str | None:
    """Why webhooks may not reach `address` (e.g. 'a loopback address'), or None."""
    for each in judged_addresses(address):
        found = _kind(each)
        if found is None or (allow_private and found[1]):
            continue
        kind = found[0]
        return kind if each == address else f"{kind} ({each}, inside {address})"
    return None


def refusal(url: str, address: IPAddress, kind: str, resolved: bool) -> str:
    """The message naming the URL, the address, why it is refused and what allows it."""
    where = f"resolves to {address}" if resolved else f"is {address}"
    fix = (
        f"or set {ALLOW_SETTING} to allow private targets for local testing"
        if address_problem(address, allow_private=True) is None
        else "no setting allows this range"
    )
    return (
        f"webhook URL {url} {where}, {kind}; webhooks go only to public addresses: use a "
        f"publicly reachable receiver ({fix})"
    )


def url_target_problems(url: str, parts: SplitResult, allow_private: bool) -> list[str]:
    """Why the host of `url` (already split into `parts`) may not receive webhooks, without
    asking DNS: credentials in it, or a numeric host in a refused range."""
    problems = []
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        problems.append(
            "has credentials (user:password@) in it; remove them and authenticate the "
            "receiver with the webhook's signature (X-Regbatch-Signature)"
        )
    address = parse_address(parts.hostname or "")
    kind = address_problem(address, allow_private) if address is not None else None
    if address is not None and kind is not None:
        problems.append(refusal(url, address, kind, resolved=False))
    return problems


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (TCP), in the resolver's order; OSError when none."""
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if address not in found:
            found.append(address)
    return found


def checked_addresses(
    url: str,
    host: str,
    port: int,
    allow_private: bool,
    resolver: Callable[[str, int], list[IPAddress]] = resolve,
) -> list[IPAddress]:
    """The addresses `host` resolves to, all allowed; TargetRefusedError naming the first that
    is not; OSError when the name does not resolve."""
    addresses = resolver(host, port)
    if not addresses:
        raise OSError(f"{host} resolves to no address")
    for address in addresses:
        kind = address_problem(address, allow_private)
        if kind is not None:
            raise TargetRefusedError(refusal(url, address, kind, resolved=True))
    return addresses


def resolution_problems(url: str, host: str, port: int, allow_private: bool) -> list[str]:
    """`checked_addresses` as a list of problems; a name that does not resolve (yet) is none:
    the delivery checks it again when it does."""
    try:
        checked_addresses(url, host, port, allow_private)
    except TargetRefusedError as exc:
        return [str(exc)]
    except (OSError, UnicodeError):
        return []
    return []
