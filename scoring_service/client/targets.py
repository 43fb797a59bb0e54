"""Where the client connects: one address, a name resolving to every replica, or a list of addresses.

Accepted forms (the channel then spreads calls round-robin over every address the target yields):

- ``HOST:PORT``: one name; every address it resolves to is a replica (``localhost:50051``);
- ``dns:///NAME:PORT`` (or any gRPC target with a scheme: ``ipv4:``, ``ipv6:``, ``unix:``): passed as is;
  inside docker compose ``dns:///scoring:50051`` names every ``scoring`` replica, in Kubernetes the
  headless Service's name does;
- ``IP:PORT,IP:PORT,...``: several replicas by address, e.g. on loopback
  ``127.0.0.1:50051,127.0.0.1:50052`` (becomes gRPC's ``ipv4:`` target; ``localhost`` counts as
  127.0.0.1, IPv6 addresses go in brackets).
"""
from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import urlsplit

__all__ = ["channel_target", "check_target", "list_authority", "replica_targets"]

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:")
_ITEM = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d{1,5})$")


def channel_target(text: str) -> str:
    """The gRPC channel target for ``text`` (see the module docstring); ValueError names what is wrong."""
    target = text.strip()
    if not target:
        raise ValueError("the scoring service target is empty (HOST:PORT, dns:///NAME:PORT or IP:PORT,IP:PORT,...)")
    if "," not in target:
        return target
    if _SCHEME.match(target) and not _ITEM.match(target.split(",")[0].strip()):
        return target  # ipv4:a:p,b:p and the like are gRPC's own lists
    families, addresses = set(), []
    for item in (part.strip() for part in target.split(",")):
        match = _ITEM.match(item)
        if not match or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"{item!r} in the target list {target!r} is not IP:PORT")
        host = match["v6"] or ("127.0.0.1" if match["host"] == "localhost" else match["host"])
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{item!r} in the target list {target!r}: a list takes IP addresses; for a name that "
                             f"resolves to every replica give dns:///NAME:PORT") from None
        families.add(address.version)
        addresses.append(f"[{address}]:{match['port']}" if address.version == 6 else f"{address}:{match['port']}")
    if len(families) > 1:
        raise ValueError(f"the target list {target!r} mixes IPv4 and IPv6 addresses; give one family")
    return f"ipv{families.pop()}:" + ",".join(addresses)


def list_authority(text: str) -> str | None:
    """For an ``IP:PORT,...`` list, its first address: the authority (TLS host name) the channel presents,
    which gRPC would otherwise take from the whole list; None for any other target."""
    target = channel_target(text)
    if not target.startswith(("ipv4:", "ipv6:")):
        return None
    return target.split(":", 1)[1].split(",")[0]


def check_target(text: str) -> None:
    """A settings check: ``text`` is a target the client accepts."""
    channel_target(text)


def replica_targets(text: str) -> list[tuple[str, str | None]]:
    """Every replica ``text`` names, one target each, as (channel target, authority to present or None):
    the addresses of a list; the addresses a ``HOST:PORT`` or ``dns:///NAME:PORT`` resolves to now (IPv4
    ones when there are any, as a name of the compose or Kubernetes kind has; else IPv6), each presenting the
    name, so TLS verifies against it; any other target (``unix:`` ...) as it is. OSError when a name does not
    resolve. For the calls that must reach each replica rather than any (the drift reports)."""
    target = channel_target(text)
    if target.startswith(("ipv4:", "ipv6:")):
        return [(address, None) for address in target.split(":", 1)[1].split(",")]
    if target.startswith("dns:"):
        name = urlsplit(target).path.lstrip("/")
    elif _SCHEME.match(target) and not _ITEM.match(target):
        return [(target, None)]
    else:
        name = target
    match = _ITEM.match(name)
    if not match:
        return [(target, None)]
    host, port = match["v6"] or match["host"], match["port"]
    try:
        ipaddress.ip_address(host)
        return [(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", None)]
    except ValueError:
        pass
    found = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    by_family = {family: sorted({info[4][0] for info in found if info[0] == family})
                 for family in (socket.AF_INET, socket.AF_INET6)}
    if by_family[socket.AF_INET]:
        return [(f"{address}:{port}", f"{host}:{port}") for address in by_family[socket.AF_INET]]
    return [(f"[{address}]:{port}", f"{host}:{port}") for address in by_family[socket.AF_INET6]]
