"""Network namespaces for host tests: a hub namespace with a bridge and
node namespaces wired to it by veth pairs, so several daemons run as
hosts with their own addresses and nothing listens on the machine's own
network. Made with the `ip` command; a Lab removes exactly the namespaces
it created (and with them every interface inside)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from taucg.readers.syscalls import setns

CLONE_NEWNET = 0x40000000
# TEST-NET-1 (RFC 5737): documentation addresses, never routed anywhere.
SUBNET = "192.0.2"
HUB_ADDRESS = f"{SUBNET}.1"


def ip(*args: str) -> None:
    r = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=60, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip()}")


@dataclass(frozen=True)
class Netns:
    name: str
    address: str

    @property
    def path(self) -> str:
        return f"/run/netns/{self.name}"

    def argv(self, command: Sequence[str]) -> list[str]:
        """command run inside this namespace: nsenter joins only the network
        namespace and execs, so the child's PID is the command's own."""
        return ["nsenter", f"--net={self.path}", "--", *command]

    @contextmanager
    def entered(self) -> Iterator[None]:
        """The calling thread inside this namespace (setns is per thread):
        sockets made meanwhile belong to it, and stay there afterwards."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(self.path, os.O_RDONLY)
        try:
            setns(target, CLONE_NEWNET)
            try:
                yield
            finally:
                setns(own, CLONE_NEWNET)
        finally:
            os.close(target)
            os.close(own)


@dataclass
class Lab:
    """hub (bridge br0, HUB_ADDRESS/24) and nodes (eth0, SUBNET.11, .12, ...)."""

    prefix: str
    hub: Netns = field(init=False)
    nodes: list[Netns] = field(default_factory=list)
    _made: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        try:
            self.hub = self._add(f"{self.prefix}-hub", HUB_ADDRESS)
            ip("-n", self.hub.name, "link", "add", "br0", "type", "bridge")
            ip("-n", self.hub.name, "addr", "add", f"{HUB_ADDRESS}/24", "dev", "br0")
            ip("-n", self.hub.name, "link", "set", "br0", "up")
        except BaseException:
            self.remove()  # the caller never gets a Lab to remove
            raise

    def _add(self, name: str, address: str) -> Netns:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return Netns(name, address)

    def add_node(self) -> Netns:
        i = len(self.nodes) + 1
        node = self._add(f"{self.prefix}-n{i}", f"{SUBNET}.{10 + i}")
        port = f"p{i}"  # the hub's end, on the bridge
        ip("-n", self.hub.name, "link", "add", port, "type", "veth",
           "peer", "name", "eth0", "netns", node.name)
        ip("-n", self.hub.name, "link", "set", port, "master", "br0", "up")
        ip("-n", node.name, "addr", "add", f"{node.address}/24", "dev", "eth0")
        ip("-n", node.name, "link", "set", "eth0", "up")
        self.nodes.append(node)
        return node

    def remove(self) -> None:
        """Deleting a namespace deletes its interfaces, and a veth's peer with
        it; call after every process inside has ended."""
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=60,
                           check=False)
        self._made.clear()
