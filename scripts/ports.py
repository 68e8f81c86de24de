#!/usr/bin/env python3
"""Free TCP ports on 127.0.0.1 for the tests' services, below the ephemeral range.

    scripts/ports.py [N]     prints N (default 1) distinct free ports, one a line

A port taken from the kernel's ephemeral range (bind to port 0, close, hand the
number on) can be taken by any outgoing connection or port-0 listener (a Kafka
client, the mock cluster's brokers) between the check and the service's bind.
free_port therefore hands out ports in [PORT_FIRST, low end of
/proc/sys/net/ipv4/ip_local_port_range), each checked bindable, never the same
one twice in one process; the start differs between processes so that test
programs running side by side rarely try the same ones. This is the rule of
tests/support/proc.c lmt_free_port, for the Python tests and scripts
(clients/python/tests, tests/e2e, scripts/soak.py).
"""
import os
import socket
import sys
import time

PORT_FIRST = 10000
EPHEMERAL_FILE = "/proc/sys/net/ipv4/ip_local_port_range"
EPHEMERAL_LOW = 32768  # when the file cannot be read


def _ephemeral_low():
    try:
        with open(EPHEMERAL_FILE, encoding="ascii") as f:
            lo = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_LOW
    return lo if PORT_FIRST + 1000 < lo <= 65535 else EPHEMERAL_LOW


def _port_free(port):
    """Whether a TCP listener could bind 127.0.0.1:port now (SO_REUSEADDR is
    not set, so a port with connections in TIME_WAIT is refused as well)."""
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


# The next candidate of free_port (None before the first call).
_next = None


def free_port():
    """A TCP port on 127.0.0.1 below the ephemeral range that was free a
    moment ago and that this process has not handed out before."""
    global _next
    lo, hi = PORT_FIRST, _ephemeral_low()
    if _next is None:
        _next = lo + ((os.getpid() * 2654435761) ^ time.monotonic_ns()) % (hi - lo)
    for _ in range(hi - lo):
        port = _next
        _next = port + 1 if port + 1 < hi else lo
        if _port_free(port):
            return port
    raise RuntimeError("no free port in [%d, %d)" % (lo, hi))


if __name__ == "__main__":
    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 1):
        print(free_port())
