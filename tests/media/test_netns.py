"""The media tests' network namespace: non-loopback addresses that talk to each other,
nothing of the machine's own network inside, and nothing left behind."""

from __future__ import annotations

import subprocess
import time

from tests.fixtures.netns import network_namespace

ECHO = """
import socket, sys
a, b = sys.argv[1], sys.argv[2]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind((b, 0)); rx.settimeout(5)
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.bind((a, 0))
tx.sendto(b"ping", rx.getsockname())
data, peer = rx.recvfrom(100)
print(data.decode(), peer[0])
"""


def test_a_namespace_with_two_addresses_and_nothing_else() -> None:
    with network_namespace() as ns:
        links = ns.run(["ip", "-o", "-4", "addr"]).stdout
        assert ns.addresses[0] in links and ns.addresses[1] in links and "127.0.0.1" in links
        # Only loopback and the veth pair: no route to the machine's own network.
        assert len([line for line in links.splitlines() if " inet " in line]) == 3, links
        assert "default" not in ns.run(["ip", "route"]).stdout
        got = ns.run(["python3", "-c", ECHO, *ns.addresses]).stdout.split()
        assert got == ["ping", ns.addresses[0]]
        name = ns.name
        sleeper = subprocess.Popen(ns.command(["sleep", "60"]))
        deadline = time.monotonic() + 5
        while sleeper.pid not in ns.pids() and time.monotonic() < deadline:
            pass
        assert sleeper.pid in ns.pids()
    assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert sleeper.wait(5) != 0  # killed with the namespace
