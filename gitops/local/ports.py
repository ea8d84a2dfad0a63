"""Free TCP ports on 127.0.0.1 for the servers this project starts (control plane, registry)."""
from __future__ import annotations

import random
import socket
from pathlib import Path


def free_ports(count: int) -> list[int]:
    """Ports picked below the kernel's ephemeral range, so the outgoing connections of processes
    already running cannot grab a port before its owner binds. Empty when none are left."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    candidates = list(range(20000, max(low, 20001)))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == count:
            return ports
    return []
