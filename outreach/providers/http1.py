"""A small HTTP/1.1 client for one API host: keep-alive connections, one request at a time on each.

The Telegram provider sends thousands of small JSON posts a second to a single host. A
general client (aiohttp) spends about 250 µs of CPU on each request (cookies, redirects,
tracing, per-request objects), which is most of a core at that rate; this one does only what
such a call needs, in about a fifth of that:

- `POST` (or `GET`) with a complete body, `Content-Length` always set, no compression asked;
- a pool of at most `limit` connections (TLS when the base URL is https), reused while the
  server keeps them open, opened on demand;
- the answer read by `Content-Length`, `Transfer-Encoding: chunked`, or to the end of the
  connection; `Connection: close` honoured;
- every failure (refused, reset, closed mid-answer, malformed answer, too large) raised as
  `HTTPError`, and the connection it happened on dropped. A request is never repeated here:
  a post that may have reached the server is the caller's to retry (the outbox does, and
  counts what a lost answer can duplicate).

What it does not do, on purpose: redirects, proxies, cookies, HTTP/2, 1xx other than 100.
"""

from __future__ import annotations

import asyncio
import collections
import re
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
_STATUS_LINE = re.compile(r"HTTP/1\.([01]) ([1-9][0-9]{2})(?: .*)?", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_HEX = re.compile(rb"[0-9A-Fa-f]+")


class HTTPError(Exception):
    """The request failed before a whole answer came back."""


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value
    body: bytes


class _Connection(asyncio.Protocol):
    """One connection; `request` sends a whole request and resolves with its whole answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = True
        self._buf = bytearray()
        self._waiter: asyncio.Future[Answer] | None = None
        self._status = 0
        self._headers: dict[str, str] = {}
        self._length: int | None = None  # bytes of body expected; None: chunked or to the end
        self._chunked = False
        self._body = bytearray()
        self._in_head = True

    # --- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for (a server speaking out of turn): the connection is unusable.
            self._fail(HTTPError("unexpected data from the server"))
            return
        self._buf += data
        try:
            self._parse()
        except HTTPError as exc:
            self._fail(exc)

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            if exc is None and not self._in_head and self._length is None and not self._chunked:
                self._finish()  # the answer's body ran to the end of the connection (a clean EOF, not a reset)
            else:
                waiter.set_exception(HTTPError(f"connection closed before the whole answer: {exc or 'EOF'}"))

    # --- a request ------------------------------------------------------------------------
    def request(self, data: bytes) -> asyncio.Future[Answer]:
        assert self.transport is not None and not self.closed
        self._waiter = self.loop.create_future()
        self._buf.clear()
        self._body = bytearray()
        self._headers = {}
        self._in_head = True
        self._length = None
        self._chunked = False
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: HTTPError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def _parse(self) -> None:
        while self._in_head:
            end = self._buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buf) > MAX_HEAD:
                    raise HTTPError("answer headers too large")
                return
            lines = bytes(self._buf[:end]).decode("latin-1").split("\r\n")
            del self._buf[:end + 4]
            status_line = _STATUS_LINE.fullmatch(lines[0])
            if status_line is None:
                raise HTTPError(f"not an HTTP/1.x answer: {lines[0][:80]!r}")
            status = int(status_line[2])
            if 100 <= status < 200:
                continue  # 100 Continue before the real answer
            headers = {}
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep or not name or name != name.strip():
                    raise HTTPError(f"malformed header line: {line[:80]!r}")
                headers[name.lower()] = value.strip()
            self._status, self._headers, self._in_head = status, headers, False
            tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
            self.keep_alive = "close" not in tokens and (status_line[1] == "1" or "keep-alive" in tokens)
            if "chunked" in headers.get("transfer-encoding", "").lower():
                self._chunked = True
            elif "content-length" in headers:
                if not _DIGITS.fullmatch(headers["content-length"]):
                    raise HTTPError("malformed Content-Length")
                self._length = int(headers["content-length"])
                if self._length > MAX_BODY:
                    raise HTTPError("answer body too large")
            elif status in (204, 304):
                self._length = 0
            else:
                self.keep_alive = False  # the body runs to the end of the connection
        if self._chunked:
            self._parse_chunks()
        elif self._length is not None:
            if len(self._buf) > self._length:
                raise HTTPError("more data than Content-Length")
            if len(self._buf) == self._length:
                self._body = self._buf
                self._buf = bytearray()
                self._finish()
        else:
            self._body += self._buf
            self._buf.clear()
            if len(self._body) > MAX_BODY:
                raise HTTPError("answer body too large")

    def _parse_chunks(self) -> None:
        while True:
            line_end = self._buf.find(b"\r\n")
            if line_end < 0:
                if len(self._buf) > 1024:
                    raise HTTPError("malformed chunk size line")
                return
            size_text = bytes(self._buf[:line_end]).split(b";", 1)[0].strip()
            if not _HEX.fullmatch(size_text):
                raise HTTPError(f"malformed chunk size: {size_text[:20]!r}")
            size = int(size_text, 16)
            if size == 0:
                # The last chunk: optional trailers, then an empty line.
                terminator = self._buf.find(b"\r\n\r\n", line_end)
                if terminator < 0:
                    if len(self._buf) > MAX_HEAD:
                        raise HTTPError("chunked trailers too large")
                    return
                if len(self._buf) > terminator + 4:
                    raise HTTPError("data after the end of a chunked answer")
                self._buf.clear()
                self._finish()
                return
            start = line_end + 2
            if len(self._buf) < start + size + 2:
                if size > MAX_BODY:
                    raise HTTPError("answer body too large")
                return
            if self._buf[start + size:start + size + 2] != b"\r\n":
                raise HTTPError("chunk data not followed by CRLF")
            self._body += self._buf[start:start + size]
            if len(self._body) > MAX_BODY:
                raise HTTPError("answer body too large")
            del self._buf[:start + size + 2]

    def _finish(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(Answer(self._status, self._headers, bytes(self._body)))


def _time_out(answered: asyncio.Future[Answer]) -> None:
    if not answered.done():
        answered.set_exception(TimeoutError())


class HTTP1Pool:
    """Keep-alive connections to the host of `base_url`, at most `limit` at once."""

    def __init__(self, base_url: str, *, limit: int = 100, ssl_context: ssl.SSLContext | None = None,
                 connect_timeout: float = 10.0) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default_port = (443 if self.tls else 80) == self.port
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal keeps its brackets
        self.host_header = (host if default_port else f"{host}:{self.port}").encode("idna")
        self.ssl_context = (ssl_context or ssl.create_default_context()) if self.tls else None
        self.limit = limit
        self.connect_timeout = connect_timeout
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def request(self, method: str, path: str, body: bytes = b"", *, content_type: str = "application/json",
                      timeout: float = 30.0) -> Answer:
        """Send one request and return the whole answer; HTTPError or TimeoutError otherwise."""
        head = (f"{method} {path} HTTP/1.1\r\nHost: ").encode("latin-1") + self.host_header + (
            f"\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            "Accept-Encoding: identity\r\nUser-Agent: nuanxin\r\n\r\n").encode("latin-1")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        conn = self._idle_connection()
        if conn is None:
            async with asyncio.timeout_at(deadline):
                conn = await self._acquire()
        answered = conn.request(head + body)
        # One timer on the answer, rather than a timeout scope per request (its cost shows at
        # thousands of requests a second).
        timer = loop.call_at(deadline, _time_out, answered)
        try:
            answer = await answered
        except BaseException:
            conn.close()
            self._release(conn)
            raise
        finally:
            timer.cancel()
        self._release(conn)
        return answer

    def _idle_connection(self) -> _Connection | None:
        if self._closed:
            return None
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed:
                return conn
            self._open -= 1
        return None

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise HTTPError("client closed")
            conn = self._idle_connection()
            if conn is not None:
                return conn
            if self._open < self.limit:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake()
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if not waiter.cancelled() and waiter.done():
                    self._wake()  # pass the turn we were given on to the next in line
                raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port, ssl=self.ssl_context,
                    server_hostname=self.host if self.tls else None)
        except TimeoutError as exc:
            raise HTTPError(f"no connection to {self.host}:{self.port} in {self.connect_timeout}s") from exc
        except OSError as exc:
            raise HTTPError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return conn

    def _release(self, conn: _Connection) -> None:
        if conn.closed or not conn.keep_alive or self._closed:
            conn.close()
            self._open -= 1
        else:
            self._idle.append(conn)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            self._open -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(HTTPError("client closed"))
        self._waiters.clear()
