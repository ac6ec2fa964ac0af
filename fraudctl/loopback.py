"""What counts as loopback, decided once for every server fraudctl runs (API, dashboard).

A server bound to loopback answers only requests that name a loopback host: a web page the
operator visits cannot reach it through DNS rebinding (evil.example resolving to 127.0.0.1).
Bound elsewhere (a pod behind a Service), any Host is accepted: the network decides who reaches it.
"""

from __future__ import annotations

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")


def is_loopback(bind_host: str) -> bool:
    return bind_host in LOOPBACK_HOSTS


def allowed_hosts(bind_host: str) -> tuple[str, ...]:
    """The Host header values a server bound to ``bind_host`` answers."""
    return LOOPBACK_HOSTS if is_loopback(bind_host) else ("*",)
