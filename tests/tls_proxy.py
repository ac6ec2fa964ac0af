"""A TLS front for a PostgreSQL server, speaking the protocol's SSLRequest handshake.

The embedded PostgreSQL wheel is built without TLS; RDS requires it (rds.force_ssl). This proxy
makes the embedded server look like RDS to a client: it answers SSLRequest with 'S', completes
the TLS handshake, and relays the decrypted stream to the server. A client that does not ask
for TLS is disconnected, as RDS would refuse it.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import struct
import threading
from pathlib import Path

_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
_GSSENC_REQUEST = struct.pack("!ii", 8, 80877104)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


class TlsPostgresProxy:
    def __init__(self, backend_port: int, cert: Path, key: Path) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.connections = 0
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                client: socket.socket = self.request
                first = _recv_exact(client, 8)
                if first == _GSSENC_REQUEST:        # no Kerberos here: decline, expect SSL next
                    client.sendall(b"N")
                    first = _recv_exact(client, 8)
                if first != _SSL_REQUEST:
                    return                          # plain text refused, like rds.force_ssl
                client.sendall(b"S")
                secure = context.wrap_socket(client, server_side=True)
                proxy.connections += 1
                with socket.create_connection(("127.0.0.1", backend_port)) as backend:
                    upstream = threading.Thread(target=_pump, args=(secure, backend))
                    upstream.start()
                    _pump(backend, secure)
                    upstream.join()

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
