"""Mirror host-loopback TCP services into the cloud's network namespace.

Usage: python -m trovestack.cloud.compute.forwarder NAMESPACE \
           LISTEN_HOST:PORT=TARGET_PORT ...

The listening sockets are created inside NAMESPACE (``setns`` applies to
the calling thread only, so the main thread enters the namespace, binds,
and returns to the host's namespace); every accepted connection is then
relayed to ``127.0.0.1:TARGET_PORT`` in the host's namespace.  So the
catalog's ``127.0.0.1:port`` URLs work inside the namespace too, and guests
reach RabbitMQ (or the registry) on the management network's gateway.
"""

import ctypes
import os
import socket
import sys
import threading
from collections.abc import Iterable

CLONE_NEWNET = 0x40000000
LOOPBACK = '127.0.0.1'
BUFFER = 65536


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))


def listen_inside(namespace: str,
                  addresses: Iterable[tuple[str, int]]) -> list[socket.socket]:
    """Listening sockets bound inside namespace, one per (host, port)."""
    host_ns = os.open('/proc/self/ns/net', os.O_RDONLY)
    target_ns = os.open(f'/run/netns/{namespace}', os.O_RDONLY)
    try:
        _setns(target_ns)
        try:
            return [socket.create_server(address, reuse_port=False)
                    for address in addresses]
        finally:
            _setns(host_ns)
    finally:
        os.close(host_ns)
        os.close(target_ns)


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(BUFFER):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for sock, how in ((sink, socket.SHUT_WR), (source, socket.SHUT_RD)):
            try:
                sock.shutdown(how)
            except OSError:
                pass


def _relay(client: socket.socket, target_port: int) -> None:
    try:
        upstream = socket.create_connection((LOOPBACK, target_port), 10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client),
                            daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener: socket.socket, target_port: int) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_relay, args=(client, target_port),
                         daemon=True).start()


def parse_rule(text: str) -> tuple[tuple[str, int], int]:
    """'HOST:PORT=TARGET' -> ((host, port), target)."""
    listen, target = text.split('=')
    host, port = listen.rsplit(':', 1)
    return (host, int(port)), int(target)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    namespace, rules = argv[0], [parse_rule(rule) for rule in argv[1:]]
    listeners = listen_inside(namespace, [address for address, _ in rules])
    threads = [threading.Thread(target=_serve, args=(sock, target),
                                daemon=True)
               for sock, (_, target) in zip(listeners, rules, strict=True)]
    for thread in threads:
        thread.start()
    print(f'forwarding {len(rules)} ports into {namespace}', flush=True)
    for thread in threads:
        thread.join()


if __name__ == '__main__':
    main()
