"""A small HTTP proxy on 127.0.0.1 that injects faults in front of a service.

Tests put it in front of the real Glance (clouds.yaml
``image_endpoint_override``) and arm faults for requests that match a method
and a path pattern:

* ``status`` - answer with an HTTP error (e.g. 503) instead of the service;
  with ``forward=True`` the request still reaches the service and only its
  answer is replaced (the "work done, answer lost" case);
* ``drop`` - forward the first ``after_bytes`` of the request body, then close
  both connections (a connection dropped in the middle of an upload);
* ``token`` - replace the X-Auth-Token header with ``token`` (e.g. one that
  was revoked in Keystone) before forwarding.

Each fault fires ``times`` times.  Everything else is forwarded untouched,
including the Host header, so the service's links point back at the proxy.
"""

import dataclasses
import http.client
import http.server
import re
import socketserver
import threading
import urllib.parse

CHUNK = 256 * 1024
_HOP_HEADERS = {'connection', 'keep-alive', 'transfer-encoding', 'te',
                'trailer', 'upgrade', 'proxy-connection'}


@dataclasses.dataclass
class Fault:
    kind: str
    method: str = 'PUT'
    path: str = r'/file$'
    times: int = 1
    status: int = 503
    forward: bool = False
    after_bytes: int = 0
    token: str = ''
    fired: int = 0

    def matches(self, method, path):
        return (self.fired < self.times and method == self.method
                and re.search(self.path, path) is not None)


class FaultProxy:
    """Start with ``with FaultProxy(upstream_url) as proxy:``; see module."""

    def __init__(self, upstream):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream_host = parsed.hostname
        self.upstream_port = parsed.port or 80
        self.faults = []
        self.requests = []  # (method, path, status) seen, for assertions
        self._lock = threading.Lock()
        self._server = _Server(('127.0.0.1', 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True)

    @property
    def url(self):
        return f'http://127.0.0.1:{self._server.server_address[1]}'

    def arm(self, kind, **kwargs):
        """Add a Fault (see the module docstring) and return it."""
        fault = Fault(kind=kind, **kwargs)
        with self._lock:
            self.faults.append(fault)
        return fault

    def take_fault(self, method, path):
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    fault.fired += 1
                    return fault
        return None

    def record(self, method, path, status):
        with self._lock:
            self.requests.append((method, path, status))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'

    def log_message(self, *args):
        pass

    def _any(self):
        proxy = self.server.proxy
        fault = proxy.take_fault(self.command, self.path)
        length = int(self.headers.get('Content-Length') or 0)
        if fault and fault.kind == 'status' and not fault.forward:
            self._discard(length)
            self._answer(fault.status, b'{"error": "injected fault"}')
            proxy.record(self.command, self.path, fault.status)
            return
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in _HOP_HEADERS}
        if fault and fault.kind == 'token':
            headers['X-Auth-Token'] = fault.token
        upstream = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=120)
        upstream.putrequest(self.command, self.path, skip_host=True,
                            skip_accept_encoding=True)
        for key, value in headers.items():
            upstream.putheader(key, value)
        upstream.endheaders()
        if fault and fault.kind == 'drop':
            self._copy(upstream, min(length, fault.after_bytes))
            upstream.close()
            self.close_connection = True
            self.connection.close()
            proxy.record(self.command, self.path, 'dropped')
            return
        self._copy(upstream, length)
        response = upstream.getresponse()
        body = response.read()
        upstream.close()
        if fault and fault.kind == 'status':
            self._answer(fault.status, b'{"error": "injected fault"}')
            proxy.record(self.command, self.path, fault.status)
            return
        self.send_response(response.status, response.reason)
        for key, value in response.getheaders():
            if key.lower() not in _HOP_HEADERS and \
                    key.lower() != 'content-length':
                self.send_header(key, value)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        proxy.record(self.command, self.path, response.status)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = do_HEAD = _any

    def _copy(self, upstream, length):
        """Send ``length`` body bytes upstream; if the service answers early
        and closes (e.g. 401 before reading the body), drain the rest."""
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            try:
                upstream.send(data)
            except (BrokenPipeError, ConnectionResetError):
                self._discard(left)
                return

    def _discard(self, length):
        left = length
        while left > 0:
            data = self.rfile.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)

    def _answer(self, status, body):
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
