"""The one policy for URLs the server itself requests: job image URLs, webhooks, Roboflow url images
(and later stream sources).

A URL passes when

1. it is ``http`` or ``https`` with a host an HTTP client accepts;
2. its host (or ``host:port``) is on the allow-list of that use; ``*`` allows any host, an empty list
   turns the use off;
3. every address the host resolves to is public: loopback, private, link-local, shared (CGNAT),
   multicast, reserved and unspecified addresses are refused unless they fall inside one of the
   ``allowed_networks`` (CIDR blocks an operator opts into, e.g. ``10.0.0.0/8``).

The request then goes to the address that was checked (:meth:`Target.request`: the URL's host is
replaced by the address, the ``Host`` header and the TLS server name keep the name), so a DNS answer
that changes between the check and the connection (DNS rebinding) cannot reach another address.
Redirects are never followed: they could leave the list. Resolution goes through an injectable
:data:`Resolver`; tests resolve names without the network.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from visionserve.errors import InputError, InvalidParameterError

#: ``resolver(host, port)``: the IP addresses (text) that ``host`` resolves to; raises ``OSError``.
Resolver = Callable[[str, int], Sequence[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ANY_HOST = "*"


def system_resolver(host: str, port: int) -> list[str]:
    """The addresses of ``host`` from the operating system's resolver, without duplicates."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_networks(values: Collection[str]) -> tuple[IPNetwork, ...]:
    """CIDR blocks (``10.0.0.0/8``, ``::1/128``, a bare address); :class:`ValueError` naming a bad one."""
    try:
        return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)
    except ValueError as exc:
        raise ValueError(f"not an IP network: {exc}") from None


def check_http_url(url: str, what: str) -> httpx.URL:
    """``url`` parsed, if it is an http(s) URL with a host that an HTTP client accepts (a numeric port
    in range, brackets that close); else :class:`InvalidParameterError` naming ``what``."""
    try:
        parsed = httpx.URL(url)
        urlsplit(url).port  # noqa: B018  (raises ValueError for a port out of range)
    except (httpx.InvalidURL, ValueError) as exc:
        raise InvalidParameterError(f"{what} is not a valid URL: {url!r} ({exc})") from exc
    if parsed.scheme not in {"http", "https"} or not parsed.host:
        raise InvalidParameterError(f"{what} is not an http(s) URL: {url!r}")
    return parsed


def _address(text: str) -> IPAddress | None:
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _default_port(url: httpx.URL) -> int:
    return url.port or (443 if url.scheme == "https" else 80)


@dataclass(frozen=True)
class Target:
    """A URL that passed the policy and the address it must be requested from."""

    url: httpx.URL
    address: str

    def request(self, client: httpx.Client | httpx.AsyncClient, method: str, **kwargs: Any) -> httpx.Request:
        """A request of ``method`` for :attr:`url` that connects to :attr:`address`; ``kwargs`` go to
        ``build_request`` (``content``, ``headers``)."""
        pinned = self.url.copy_with(host=self.address)
        headers = {**kwargs.pop("headers", {}), "Host": self.url.netloc.decode("ascii")}
        extensions = {"sni_hostname": self.url.host} if self.url.scheme == "https" else {}
        return client.build_request(method, pinned, headers=headers, extensions=extensions, **kwargs)


class OutboundPolicy:
    """The checks of the module doc for one use (``what`` names it in messages, e.g. ``"webhook_url"``).

    ``allowed_hosts``: exact host names or ``host:port`` (case-insensitive), or ``*``; empty turns
    the use off. ``allowed_networks``: address blocks exempt from the public-address rule.
    """

    def __init__(
        self,
        allowed_hosts: Collection[str],
        allowed_networks: Collection[IPNetwork] = (),
        resolver: Resolver = system_resolver,
        what: str = "URL",
        setting: str = "",
    ) -> None:
        self.allowed_hosts = frozenset(host.strip().lower() for host in allowed_hosts)
        self.allowed_networks = tuple(allowed_networks)
        self.what = what
        self._resolver = resolver
        self._setting = f" (setting {setting})" if setting else ""

    @property
    def enabled(self) -> bool:
        return bool(self.allowed_hosts)

    def check(self, url: str) -> httpx.URL:
        """``url`` parsed, when it passes the rules that need no DNS (scheme, host list, and the
        address rule for a literal IP); else :class:`InvalidParameterError`."""
        if not self.enabled:
            raise InvalidParameterError(f"{self.what}: URLs are not allowed on this server{self._setting}")
        parsed = check_http_url(url, self.what)
        host = parsed.host.lower()
        if ANY_HOST not in self.allowed_hosts and {host, f"{host}:{_default_port(parsed)}"}.isdisjoint(
            self.allowed_hosts
        ):
            raise InvalidParameterError(f"{self.what}: host {host!r} is not on this server's allow-list{self._setting}")
        literal = _address(host)
        if literal is not None:
            self._check_address(host, literal)
        return parsed

    def resolve(self, url: str) -> Target:
        """:meth:`check`, then the DNS answer for the host, each address checked. Raises
        :class:`InvalidParameterError` for a refused URL or address, :class:`InputError` when the
        host does not resolve. Blocks on DNS: call it off the event loop."""
        parsed = self.check(url)
        try:
            answers = list(self._resolver(parsed.host, _default_port(parsed)))
        except (OSError, UnicodeError) as exc:
            raise InputError(f"{self.what}: cannot resolve host {parsed.host!r}") from exc
        addresses = [address for address in map(_address, answers) if address is not None]
        if not addresses or len(addresses) != len(answers):
            raise InputError(f"{self.what}: cannot resolve host {parsed.host!r}")
        for address in addresses:
            self._check_address(parsed.host, address)
        return Target(parsed, str(addresses[0]))

    def _check_address(self, host: str, address: IPAddress) -> None:
        if any(address in network for network in self.allowed_networks):
            return
        if address.is_global and not address.is_multicast:
            return
        raise InvalidParameterError(
            f"{self.what}: host {host!r} is a loopback, private, link-local or reserved address, "
            f"which this server does not contact"
        )
