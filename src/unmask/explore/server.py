"""The explorer's local web server (the standard library's ``http.server``, one thread per request).

It answers the app's files at ``/`` and the data paths of :mod:`unmask.explore.data`, and nothing else:
no path from a request ever reaches the file system. It binds ``127.0.0.1`` unless told otherwise, and
then answers only requests whose ``Host`` is this machine (localhost, 127.0.0.1, ::1).
"""
from __future__ import annotations

import secrets
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from .data import Explorer
from .static import FILES, files

__all__ = ["make_server", "serve_in_thread"]

# pages and data cannot be framed or run foreign scripts; images come from this server only
_SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# a server on this machine only answers requests that name this machine: another web site the user visits
# cannot read it through a DNS name that it points at 127.0.0.1 (DNS rebinding)
_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _handler(explorer: Explorer, quiet: bool, loopback_only: bool) -> type[BaseHTTPRequestHandler]:
    app = files()
    # every answer of this server is fixed while it runs, but another run on the same port shows other data:
    # browsers keep answers only as long as this run's tag matches (a 304 costs no work)
    etag = f'"{secrets.token_hex(8)}"'

    class Handler(BaseHTTPRequestHandler):
        server_version = "unmask-explore"

        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            self._answer(body=True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            if loopback_only and urlsplit("//" + (self.headers.get("Host") or "")).hostname not in _LOOPBACK_NAMES:
                self._fail(HTTPStatus.FORBIDDEN, "this server answers requests for localhost only", body)
                return
            path = unquote(urlsplit(self.path).path).lstrip("/") or "index.html"
            if self.headers.get("If-None-Match") == etag:
                self.send_response(HTTPStatus.NOT_MODIFIED)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            if path in FILES:
                content_type, data = FILES[path], app[path]
            else:
                try:
                    answer = explorer.get(path)
                except Exception as error:  # noqa: BLE001 - one bad sample must not stop the server
                    self._fail(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}", body)
                    return
                if answer is None:
                    self._fail(HTTPStatus.NOT_FOUND, "not found", body)
                    return
                content_type, data = answer
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("ETag", etag)
            for key, value in _SECURITY_HEADERS.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _fail(self, status: HTTPStatus, message: str, body: bool) -> None:
            data = message.encode("utf-8", "replace")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for key, value in _SECURITY_HEADERS.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the http.server signature
            if not quiet:
                sys.stderr.write(f"unmask explore: {self.address_string()} {format % args}\n")

    return Handler


def make_server(explorer: Explorer, host: str = "127.0.0.1", port: int = 8000, quiet: bool = True) -> ThreadingHTTPServer:
    """A server for ``explorer`` bound to ``host:port`` (port 0: any free port; see ``server.server_address``)."""
    server = ThreadingHTTPServer((host, port), _handler(explorer, quiet, loopback_only=host in _LOOPBACK_NAMES))
    server.daemon_threads = True
    return server


def serve_in_thread(explorer: Explorer, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Start a server in a background thread; returns it and its URL (stop it with ``server.shutdown()``)."""
    server = make_server(explorer, host, port)
    threading.Thread(target=server.serve_forever, name="unmask-explore", daemon=True).start()
    address, bound = server.server_address[:2]
    return server, f"http://{address}:{bound}/"
