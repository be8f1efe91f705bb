"""`HTTP1Pool` against a scripted server on real loopback sockets.

Each test scripts, request by request, the exact bytes the server writes back (and whether it
then keeps the connection, closes it, resets it or never answers), and reads back what the
server received: the raw request bytes and which accepted connection carried each request.
Nothing waits on the clock: steps are sequenced with events (`until`), and a `ClientProbe`
tells a step when the client has read what was sent, so an answer can be delivered in pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from outreach.providers import http1
from outreach.providers.http1 import Answer, HTTP1Pool, HTTPError

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

# A step answers one request: it gets the raw request and the connection's streams, writes
# what it wants, and says whether the server goes on reading requests on this connection.
Step = Callable[[bytes, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


class Watched:
    """Something a test can wait on: `await x.until(condition)`, woken at every change."""

    def __init__(self) -> None:
        self._change = asyncio.Event()

    def changed(self) -> None:
        self._change.set()
        self._change = asyncio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):  # a guard against a hung test, not a timing assumption
            while not condition():
                await self._change.wait()


@dataclass(frozen=True)
class Received:
    conn: int  # the accepted connection that carried it: 0 for the first, 1 for the next, ...
    raw: bytes  # the request exactly as it arrived, head and body


class ScriptedServer(Watched):
    """Answers each request it receives, on whatever connection, with the next scripted step."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__()
        self.host = host
        self.steps: deque[Step] = deque()
        self.received: list[Received] = []
        self.accepted = 0  # connections accepted so far
        self.open_now = 0  # connections open at the server right now
        self.most_open = 0  # the most ever open at once
        self.ended: list[int] = []  # connections finished, in the order they ended
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    def script(self, *steps: Step) -> None:
        self.steps.extend(steps)

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://[{self.host}]:{port}" if ":" in self.host else f"http://{self.host}:{port}"

    async def __aenter__(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()  # each handler then reads the end of its connection and returns
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(*self._tasks)
        finally:
            for task in self._tasks:
                task.cancel()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.append(writer)
        index, self.accepted = self.accepted, self.accepted + 1
        self.open_now += 1
        self.most_open = max(self.most_open, self.open_now)
        self.changed()
        try:
            while (raw := await self._read_request(reader)) is not None:
                self.received.append(Received(index, raw))
                self.changed()
                if not self.steps or not await self.steps.popleft()(raw, reader, writer):
                    break
        except ConnectionError:
            pass  # the client went away while a step was writing
        finally:
            writer.close()
            self.open_now -= 1
            self.ended.append(index)
            self.changed()

    @staticmethod
    async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            _, headers, _ = parse_request(head)
            return head + await reader.readexactly(int(headers.get("content-length", "0")))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None  # the client closed the connection


def parse_request(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Request line, headers (names lower-cased; each must appear once) and body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"header sent twice: {name}"
        headers[name.lower()] = value.strip()
    return request_line, headers, body


class ClientProbe(Watched):
    """Counts, from inside the pool's connections, the reads they made and the connections lost."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__()
        self.reads = 0
        self.lost = 0
        real_received = http1._Connection.data_received
        real_lost = http1._Connection.connection_lost

        def data_received(conn: http1._Connection, data: bytes) -> None:
            real_received(conn, data)
            self.reads += 1
            self.changed()

        def connection_lost(conn: http1._Connection, exc: Exception | None) -> None:
            real_lost(conn, exc)
            self.lost += 1
            self.changed()

        monkeypatch.setattr(http1._Connection, "data_received", data_received)
        monkeypatch.setattr(http1._Connection, "connection_lost", connection_lost)

    async def reads_past(self, count: int) -> None:
        """Until the client has made more than `count` reads."""
        await self.until(lambda: self.reads > count)


# --- steps --------------------------------------------------------------------------------
def reply(data: bytes) -> Step:
    """Write `data` and keep the connection for the next request."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return True
    return step


def reply_and_close(data: bytes = b"") -> Step:
    """Write `data` (perhaps nothing, perhaps part of an answer), then close the connection (FIN)."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        return False
    return step


def reply_in_pieces(pieces: list[bytes], probe: ClientProbe, *, then_close: bool = False) -> Step:
    """Write each piece only once the client has read the one before, so each arrives on its own."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        for piece in pieces:
            reads = probe.reads
            writer.write(piece)
            await writer.drain()
            await probe.reads_past(reads)
        return not then_close
    return step


def reply_then_reset(data: bytes, probe: ClientProbe) -> Step:
    """Write `data`, wait until the client has read it, then reset the connection (RST, not FIN)."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        reads = probe.reads
        writer.write(data)
        await writer.drain()
        await probe.reads_past(reads)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False
    return step


def reply_when(gate: asyncio.Event, answer: Callable[[bytes], bytes]) -> Step:
    """Once `gate` is set, write the answer made from the request."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        writer.write(answer(raw))
        await writer.drain()
        return True
    return step


def never_reply() -> Step:
    """Say nothing; hold the connection until the client drops it."""
    async def step(raw: bytes, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        while await reader.read(4096):
            pass
        return False
    return step


def echo(raw: bytes) -> bytes:
    body = parse_request(raw)[2]
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


# --- fixtures -----------------------------------------------------------------------------
@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    async with ScriptedServer() as s:
        yield s


@pytest.fixture
async def pool(server: ScriptedServer) -> AsyncIterator[HTTP1Pool]:
    p = HTTP1Pool(server.url, limit=4)
    yield p
    await p.close()


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch) -> ClientProbe:
    return ClientProbe(monkeypatch)


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening for the whole test: connecting to it is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


# --- answers read right -------------------------------------------------------------------
async def test_a_content_length_answer_gives_status_lower_cased_headers_and_body_and_the_request_is_sent_whole(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nX-Request-ID: abc\r\n"
                        b"Content-Length: 11\r\n\r\n{\"ok\":true}"))
    body = '{"chat_id": 42, "text": "您好"}'.encode()

    answer = await pool.request("POST", "/bot4242:TEST/sendMessage?x=1", body)

    assert answer == Answer(201, {"content-type": "application/json", "x-request-id": "abc",
                                  "content-length": "11"}, b'{"ok":true}')
    [received] = server.received
    request_line, headers, sent_body = parse_request(received.raw)
    assert request_line == "POST /bot4242:TEST/sendMessage?x=1 HTTP/1.1"
    assert headers["host"] == server.url.removeprefix("http://")
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(body))
    assert sent_body == body
    assert received.raw.endswith(b"\r\n\r\n" + body)  # nothing after the body


async def test_a_get_without_a_body_says_content_length_0_and_carries_the_given_content_type(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(OK))

    assert (await pool.request("GET", "/getMe", content_type="text/plain")).body == b"ok"

    request_line, headers, sent_body = parse_request(server.received[0].raw)
    assert request_line == "GET /getMe HTTP/1.1"
    assert (headers["content-length"], headers["content-type"], sent_body) == ("0", "text/plain", b"")


async def test_two_sequential_requests_share_one_kept_alive_connection(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(OK), reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nagain"))

    first = await pool.request("POST", "/a", b"1")
    second = await pool.request("POST", "/b", b"2")

    assert (first.body, second.body) == (b"ok", b"again")
    assert [r.conn for r in server.received] == [0, 0]
    assert server.accepted == 1


@pytest.mark.parametrize("answer", [
    b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nconnection: Close\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
], ids=["connection-close", "connection-close-any-case", "http-1.0"])
async def test_an_answer_that_says_it_closes_makes_the_next_request_open_a_new_connection(
        server: ScriptedServer, pool: HTTP1Pool, answer: bytes) -> None:
    # The server keeps the connection open regardless: only the header can tell the client.
    server.script(reply(answer), reply(OK))

    assert (await pool.request("POST", "/a", b"1")).body == b"ok"
    await server.until(lambda: 0 in server.ended)  # the client dropped the first connection itself
    assert (await pool.request("POST", "/b", b"2")).body == b"ok"

    assert [r.conn for r in server.received] == [0, 1]


async def test_a_kept_alive_connection_the_server_closes_while_idle_is_not_reused(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_and_close(OK), reply(OK))

    assert (await pool.request("POST", "/a", b"1")).body == b"ok"
    await probe.until(lambda: probe.lost == 1)  # the client has seen the server's close
    assert (await pool.request("POST", "/b", b"2")).body == b"ok"

    assert [r.conn for r in server.received] == [0, 1]


CHUNKED = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5\r\nhello\r\n"
           b"1;name=value\r\n \r\n"
           b"A; a=1; b=\"two\"\r\nworld, and\r\n"
           b"0\r\nX-Trailer: yes\r\nX-Other: too\r\n\r\n")


async def second_request_answered(pool: HTTP1Pool, server: ScriptedServer, *, connections: list[int]) -> None:
    """The next request after the first one gets its answer, and the server saw the two on
    these connections ([0, 0]: the first was reused; [0, 1]: a fresh one)."""
    assert (await pool.request("POST", "/b", b"2")).body == b"ok"
    assert [r.conn for r in server.received] == connections


async def test_a_chunked_answer_with_extensions_and_trailers_gives_the_joined_body_and_keeps_the_connection(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(CHUNKED), reply(OK))

    answer = await pool.request("POST", "/a", b"1")

    assert (answer.status, answer.body) == (200, b"hello world, and")
    await second_request_answered(pool, server, connections=[0, 0])


async def test_a_chunked_answer_arriving_one_byte_at_a_time_gives_the_same_body(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_in_pieces([CHUNKED[i:i + 1] for i in range(len(CHUNKED))], probe), reply(OK))

    assert (await pool.request("POST", "/a", b"1")).body == b"hello world, and"
    await second_request_answered(pool, server, connections=[0, 0])


async def test_a_content_length_answer_arriving_in_pieces_gives_the_whole_body(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_in_pieces([b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 10\r\n", b"\r\n01234",
                                   b"5678", b"9"], probe))

    assert (await pool.request("POST", "/a", b"1")).body == b"0123456789"


async def test_an_answer_with_neither_length_nor_chunked_runs_to_the_servers_close(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_in_pieces([b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nfirst part, ",
                                   b"second part"], probe, then_close=True), reply(OK))

    answer = await pool.request("POST", "/a", b"1")

    assert (answer.status, answer.body) == (200, b"first part, second part")
    await second_request_answered(pool, server, connections=[0, 1])


async def test_a_204_without_content_length_on_a_kept_alive_connection_ends_at_its_head_with_an_empty_body(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n"), reply(OK))

    answer = await pool.request("POST", "/a", b"1")

    assert answer == Answer(204, {"x-a": "b"}, b"")
    await second_request_answered(pool, server, connections=[0, 0])


@pytest.mark.parametrize("together", [True, False], ids=["in-one-write", "on-its-own-first"])
async def test_a_100_continue_before_the_real_answer_is_skipped(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe, together: bool) -> None:
    cont = b"HTTP/1.1 100 Continue\r\n\r\n"
    real = b"HTTP/1.1 200 OK\r\nX-Real: 1\r\nContent-Length: 4\r\n\r\nreal"
    server.script(reply(cont + real) if together else reply_in_pieces([cont, real], probe), reply(OK))

    assert await pool.request("POST", "/a", b"1") == Answer(200, {"x-real": "1", "content-length": "4"}, b"real")
    await second_request_answered(pool, server, connections=[0, 0])


# --- failures -----------------------------------------------------------------------------
@pytest.mark.parametrize("sent", [
    b"",
    b"HTTP/1.1 200 OK\r\nContent-Len",
    b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3\r\nab",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
], ids=["before-the-answer", "mid-head", "mid-content-length-body", "mid-chunk", "before-the-last-empty-line"])
async def test_a_server_closing_before_the_whole_answer_is_an_http_error_and_the_next_request_gets_a_fresh_connection(
        server: ScriptedServer, pool: HTTP1Pool, sent: bytes) -> None:
    server.script(reply_and_close(sent), reply(OK))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")
    await second_request_answered(pool, server, connections=[0, 1])


async def test_a_server_resetting_mid_content_length_body_is_an_http_error(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_then_reset(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", probe), reply(OK))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")
    await second_request_answered(pool, server, connections=[0, 1])


async def test_a_server_resetting_mid_body_that_runs_to_the_close_is_an_http_error_not_a_truncated_answer(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    server.script(reply_then_reset(b"HTTP/1.1 200 OK\r\n\r\npart of the bo", probe))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")


@pytest.mark.parametrize("answer", [
    b"HTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/2 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nX-Fine: 1\r\nno colon at all\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: two\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nok".encode("latin-1"),
], ids=["bad-protocol", "no-status-code", "http-2", "not-http", "tls-bytes", "header-without-colon",
        "line-without-colon", "content-length-not-a-number", "negative-content-length", "chunk-size-not-hex",
        "four-digit-status", "superscript-digit-length"])
async def test_a_malformed_answer_is_an_http_error_and_its_connection_is_dropped(
        server: ScriptedServer, pool: HTTP1Pool, answer: bytes) -> None:
    server.script(reply(answer), reply(OK))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")
    await server.until(lambda: 0 in server.ended)  # the client closed it; the server kept it open
    await second_request_answered(pool, server, connections=[0, 1])


async def test_bytes_past_the_content_length_are_an_http_error(server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(OK + b"HTTP/1.1 200 OK\r\n"))  # one write: the client reads it in one go

    with pytest.raises(HTTPError, match="more data than Content-Length"):
        await pool.request("POST", "/a", b"1")


async def test_bytes_the_server_sends_unasked_on_an_idle_connection_drop_it(
        server: ScriptedServer, pool: HTTP1Pool, probe: ClientProbe) -> None:
    async def answer_then_speak_out_of_turn(raw: bytes, reader: asyncio.StreamReader,
                                            writer: asyncio.StreamWriter) -> bool:
        await reply_in_pieces([OK, b"HTTP/1.1 200 OK\r\n"], probe)(raw, reader, writer)
        return True

    server.script(answer_then_speak_out_of_turn, reply(OK))

    assert (await pool.request("POST", "/a", b"1")).body == b"ok"
    await server.until(lambda: 0 in server.ended)
    await second_request_answered(pool, server, connections=[0, 1])


@pytest.mark.parametrize("answer", [
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n0\r\n\r\n", id="negative-chunk-size"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nok\r\n0\r\n\r\n", id="chunk-size-0x"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n+2\r\nok\r\n0\r\n\r\n", id="chunk-size-sign"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", id="content-length-sign"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 0_2\r\n\r\nok", id="content-length-underscore"),
])
async def test_a_length_or_chunk_size_that_is_not_plain_digits_is_an_http_error(
        server: ScriptedServer, pool: HTTP1Pool, answer: bytes) -> None:
    server.script(reply(answer))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")


async def test_chunk_data_not_followed_by_crlf_is_an_http_error(server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n"))

    with pytest.raises(HTTPError):
        await pool.request("POST", "/a", b"1")


async def test_bytes_past_the_end_of_a_chunked_answer_drop_the_connection(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
                        b"HTTP/1.1 200 OK\r\n"), reply(OK))

    with contextlib.suppress(HTTPError):  # refusing the answer would do; reusing the connection does not
        await pool.request("POST", "/a", b"1")
    await second_request_answered(pool, server, connections=[0, 1])


async def test_close_among_other_connection_options_makes_the_next_request_open_a_new_connection(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(b"HTTP/1.1 200 OK\r\nConnection: TE, close\r\nContent-Length: 2\r\n\r\nok"), reply(OK))

    assert (await pool.request("POST", "/a", b"1")).body == b"ok"
    await second_request_answered(pool, server, connections=[0, 1])


async def test_a_server_that_never_answers_times_out_and_its_connection_is_not_reused(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(never_reply(), reply(OK))

    with pytest.raises(TimeoutError):
        await pool.request("POST", "/a", b"1", timeout=0.2)
    await server.until(lambda: 0 in server.ended)  # the client closed the connection it gave up on
    await second_request_answered(pool, server, connections=[0, 1])


async def test_a_refused_connection_is_an_http_error_and_gives_its_slot_back(refused_port: int) -> None:
    pool = HTTP1Pool(f"http://127.0.0.1:{refused_port}", limit=1)
    try:
        with pytest.raises(HTTPError, match="cannot connect"):
            await pool.request("POST", "/a", b"1")
        # With its one slot still counted as taken, this one would wait in the queue and time out.
        with pytest.raises(HTTPError, match="cannot connect"):
            await pool.request("POST", "/a", b"1", timeout=5)
    finally:
        await pool.close()


# --- the pool -----------------------------------------------------------------------------
async def test_the_pool_never_opens_more_than_its_limit_and_every_queued_request_gets_its_own_answer(
        server: ScriptedServer) -> None:
    gate = asyncio.Event()
    server.script(*[reply_when(gate, echo)] * 20)
    pool = HTTP1Pool(server.url, limit=3)
    try:
        tasks = [asyncio.create_task(pool.request("POST", "/a", b"request %d" % i)) for i in range(20)]
        await server.until(lambda: len(server.received) == 3)  # three held unanswered, seventeen queued
        assert server.accepted == 3
        gate.set()
        answers = await asyncio.gather(*tasks)
    finally:
        await pool.close()

    assert [a.body for a in answers] == [b"request %d" % i for i in range(20)]
    assert len(server.received) == 20
    assert (server.accepted, server.most_open) == (3, 3)


async def test_a_request_that_times_out_waiting_for_a_connection_gives_its_turn_to_the_next(
        server: ScriptedServer) -> None:
    gate = asyncio.Event()
    server.script(reply_when(gate, echo), reply(OK))
    pool = HTTP1Pool(server.url, limit=1)
    try:
        holder = asyncio.create_task(pool.request("POST", "/a", b"held"))
        await server.until(lambda: len(server.received) == 1)
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/b", b"gives up", timeout=0.2)
        waiting = asyncio.create_task(pool.request("POST", "/c", b"waits"))
        gate.set()
        assert (await holder).body == b"held"
        assert (await waiting).body == b"ok"
    finally:
        await pool.close()
    assert [r.conn for r in server.received] == [0, 0]


async def test_after_close_a_request_is_an_http_error_and_idle_connections_are_closed(
        server: ScriptedServer, pool: HTTP1Pool) -> None:
    server.script(reply(OK))
    assert (await pool.request("POST", "/a", b"1")).body == b"ok"

    await pool.close()

    await server.until(lambda: server.ended == [0])
    with pytest.raises(HTTPError, match="closed"):
        await pool.request("POST", "/b", b"2")
    assert server.accepted == 1


async def test_close_fails_queued_requests_lets_the_one_in_flight_finish_and_then_drops_its_connection(
        server: ScriptedServer) -> None:
    gate = asyncio.Event()
    server.script(reply_when(gate, echo))
    pool = HTTP1Pool(server.url, limit=1)
    in_flight = asyncio.create_task(pool.request("POST", "/a", b"in flight"))
    await server.until(lambda: len(server.received) == 1)
    queued = asyncio.create_task(pool.request("POST", "/b", b"queued"))
    await asyncio.sleep(0)  # not a timing wait: one turn of the loop lets `queued` reach the pool's queue

    await pool.close()
    gate.set()

    with pytest.raises(HTTPError, match="closed"):
        await queued
    assert (await in_flight).body == b"in flight"
    await server.until(lambda: server.ended == [0])
    assert len(server.received) == 1


# --- the Host header ----------------------------------------------------------------------
def test_the_host_header_leaves_out_the_default_port() -> None:
    assert HTTP1Pool("http://api.example.org/").host_header == b"api.example.org"
    assert HTTP1Pool("https://api.example.org:443").host_header == b"api.example.org"
    assert HTTP1Pool("http://API.example.org:8081").host_header == b"api.example.org:8081"
    assert HTTP1Pool("https://api.example.org:80").host_header == b"api.example.org:80"


def have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not have_ipv6_loopback(), reason="no IPv6 loopback here")
async def test_the_host_header_of_an_ipv6_literal_keeps_its_brackets() -> None:
    async with ScriptedServer(host="::1") as server:
        server.script(reply(OK))
        pool = HTTP1Pool(server.url)
        try:
            assert (await pool.request("POST", "/a", b"1")).body == b"ok"
        finally:
            await pool.close()
        assert parse_request(server.received[0].raw)[1]["host"] == server.url.removeprefix("http://")


def test_a_url_that_is_not_http_is_refused() -> None:
    for url in ("ftp://example.org", "example.org", "http://"):
        with pytest.raises(ValueError):
            HTTP1Pool(url)
