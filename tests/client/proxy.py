"""A proxy between the client and the service that fails requests on purpose, to test the
client's retries against the real service: it answers 503 without forwarding, or forwards a
request and then closes the connection without answering (the answer is lost, the request
was done)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import httpx

Fault = Literal["pass", "drop", "503"]


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None


@dataclass
class ProxyState:
    upstream: str
    faults: list[Fault]
    retry_after: str = "0"
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_fault(self) -> Fault:
        with self.lock:
            return self.faults.pop(0) if self.faults else "pass"


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        request_line = self.rfile.readline().decode("latin-1").strip()
        if not request_line:
            return
        method, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        while (line := self.rfile.readline().decode("latin-1").strip()) != "":
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = self.rfile.read(int(headers.get("content-length", "0")))
        state = self.server.state
        with state.lock:
            state.seen.append(Seen(method, target, headers.get("idempotency-key")))
        fault = state.next_fault()
        if fault == "503":
            self._answer(
                503,
                b'{"error": {"code": "service_unavailable", "message": "proxy", "details": {}}}',
                {"Retry-After": state.retry_after},
            )
            return
        forwarded = {k: v for k, v in headers.items() if k not in ("host", "connection")}
        upstream = httpx.request(
            method, state.upstream + target, headers=forwarded, content=body, timeout=30
        )
        if fault == "drop":
            return  # the service did it; the client never hears
        self._answer(upstream.status_code, upstream.content, {})

    def _answer(self, status: int, body: bytes, extra: dict[str, str]) -> None:
        lines = [
            f"HTTP/1.1 {status} X",
            "Content-Type: application/json",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        lines += [f"{name}: {value}" for name, value in extra.items()]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, state: ProxyState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state


@contextmanager
def faulty_proxy(
    upstream: str, faults: list[Fault], retry_after: str = "0"
) -> Iterator[tuple[str, ProxyState]]:
    """(the proxy's base URL, its state) while the block runs."""
    state = ProxyState(upstream, list(faults), retry_after)
    server = _Server(state)
    thread = threading.Thread(target=server.serve_forever, name="faulty-proxy", daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
