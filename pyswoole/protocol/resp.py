"""RESP (the Redis protocol), sans-IO: requests in, replies out, for RESP2 and RESP3.

``RequestParser.feed(data)`` turns whatever bytes a client sent into whole commands (each a list
of ``bytes``: the name, then the arguments). Clients send multibulk requests
(``*2\\r\\n$3\\r\\nGET\\r\\n$1\\r\\nk\\r\\n``); a request that does not start with ``*`` is an
inline command (``PING\\r\\n`` typed in telnet), split like Redis does (quotes and escapes).
Malformed input raises ``ProtocolError``, whose message is the Redis error text and which carries
the commands parsed before the fault (answer them, then the error, then close).

A connection may start with inline commands and go on with multibulk requests, but once it has
sent a multibulk request it must stay with them (as every client library and redis-cli do): the
C parser does not say where one request ends while the next is incomplete, so a later inline
command is a protocol error. Blank lines between requests are skipped, as Redis does
(``redis-cli --pipe`` sends one before its last command).

``encode(value, resp3)`` turns a Python value into a reply: ``None`` nil, ``int`` integer,
``bytes``/``str`` bulk string, ``list``/``tuple`` array, ``dict`` map, ``set`` set, ``bool``,
``float``, an exception an error, and ``Reply`` (already encoded bytes) as it is. RESP3 types
(``_``, ``%``, ``~``, ``#``, ``,``) are used for a client that switched with ``HELLO 3``; RESP2
spells them as Redis does (nil bulk, flat arrays, integers, bulk strings).

Which parser: multibulk requests are parsed by hiredis' C ``Reader``. Measured against the best
pure-Python parser we wrote (one ``split(b"\\r\\n")`` per read, then a walk over the tokens
checking every declared length, with a slicing fallback for values holding CRLF), on redis-benchmark's
commands (``bench/bench_redis.py --parsers``; CPU ns per command, median of 7, 2026-11-27, Xeon, 2 CPUs,
hiredis 3.5.0, Python 3.11):

=========================  =========  =======  ==========
command                    pipelined  hiredis  pure Python
=========================  =========  =======  ==========
SET key:__rand_int__ xxx   1              685       2,020
SET key:__rand_int__ xxx   16             255       1,827
GET key:__rand_int__       16             219       1,585
PING                       16             184       1,339
=========================  =========  =======  ==========

hiredis is 2.7-7x faster, so it parses; the pure-Python code here only splits inline commands.
"""

from __future__ import annotations

from collections.abc import Mapping

import hiredis

#: Redis's ``proto-max-bulk-len``: the default ``package_max_length`` of the Redis server.
MAX_BULK_LENGTH = 512 * 1024 * 1024
#: Redis's limit on an inline command (``PROTO_INLINE_MAX_SIZE``).
MAX_INLINE_LENGTH = 64 * 1024
MAX_JOINED_READ = 64 * 1024

STAR = 0x2A  # b"*"[0]
BLANK = (b"\r", b"\n")


class ProtocolError(ValueError):
    """The client broke RESP. ``str(exc)`` is the error text to reply (``Protocol error: ...``);
    ``commands`` are the whole commands that came before the fault."""

    def __init__(self, message: str, commands: list[list[bytes]] | None = None):
        super().__init__(message)
        self.commands = commands if commands is not None else []


class ReplyError(Exception):
    """Raise (or return) it from a handler to reply with this exact error text, e.g.
    ``ReplyError("WRONGTYPE Operation against a key holding the wrong kind of value")``.
    Any other exception is answered ``-ERR <message>``."""


class Reply(bytes):
    """Bytes that already are a RESP reply (``Server.format`` makes them): sent as they are."""

    __slots__ = ()


# -- requests ----------------------------------------------------------------------------------

_HIREDIS_ERRORS = {
    "Bad multi-bulk length": "Protocol error: invalid multibulk length",
    "Bad bulk string length": "Protocol error: invalid bulk length",
    "Bulk string length out of range": "Protocol error: invalid bulk length",
}

_WIRE_TYPE = {bytes: "$", list: "*", int: ":", dict: "%", bool: "#", float: ","}


def _bad_argument(arg: object) -> str:
    if arg is None:  # "$-1": a null bulk string is no argument
        return "Protocol error: invalid bulk length"
    return f"Protocol error: expected '$', got '{_WIRE_TYPE.get(type(arg), '?')}'"


class RequestParser:
    """Commands out of a client's byte stream (see the module docstring).

    ``max_length`` bounds one request (a command with its arguments) as the server buffers it:
    a longer one is refused before it is all in memory.
    """

    __slots__ = ("_inline", "_last_command", "_last_data", "_multibulk", "_pending", "_reader", "max_length")

    def __init__(self, max_length: int = MAX_BULK_LENGTH):
        self._reader = hiredis.Reader()
        self._inline = b""
        self._multibulk = False  # set for good by the first request that starts with "*"
        self.max_length = max_length
        self._reset_reader_state()

    def _reset_reader_state(self) -> None:
        self._last_data = b""  # the last multibulk read, the last command it completed, and
        self._last_command: list[bytes] | None = None  # whether the reader kept unparsed bytes
        self._pending = False

    def feed(self, data: bytes) -> list[list[bytes]]:
        """Every command completed by ``data`` (an empty list while a request is incomplete)."""
        if self._multibulk:
            return self._feed_multibulk(data, [])
        return self._feed_inline(data, [])

    def _feed_multibulk(self, data: bytes, commands: list[list[bytes]]) -> list[list[bytes]]:
        at_request_start = None
        if data[:1] in BLANK:  # maybe blank lines between requests (redis-cli --pipe sends one)
            at_request_start = self._at_request_start()
        # Every argument must be a bulk string. When this read holds whole requests of at most
        # 64 KiB, b"".join(command) checks that in C (copying little); else one by one.
        joined = not self._pending and len(data) <= MAX_JOINED_READ
        reader = self._reader
        reader.feed(data)
        gets = reader.gets
        try:
            while (command := gets()) is not False:
                if type(command) is list:
                    if joined:
                        try:
                            b"".join(command)
                        except TypeError:
                            joined = False
                    if not joined:
                        for arg in command:
                            if type(arg) is not bytes:
                                raise ProtocolError(_bad_argument(arg), commands)
                    if command:  # "*0\r\n" is no command (Redis ignores it)
                        commands.append(command)
                elif command is not None:  # "*-1\r\n" is ignored too
                    raise ProtocolError(
                        f"Protocol error: expected '*', got '{_WIRE_TYPE.get(type(command), '?')}'", commands
                    )
        except hiredis.ProtocolError as exc:
            text = str(exc)
            text = _HIREDIS_ERRORS.get(text) or "Protocol error: " + text.removeprefix("Protocol error, ")
            error = ProtocolError(text, commands)
            if at_request_start is None:
                at_request_start = self._at_request_start()
            rest = self._after_blank_lines(data, error, at_request_start)
            if rest is None:
                raise error from None
            self._reader = hiredis.Reader()
            self._reset_reader_state()
            return self._feed_multibulk(rest, commands) if rest else commands
        self._pending = pending = reader.has_data()
        if pending and reader.len() > self.max_length + MAX_INLINE_LENGTH:
            raise ProtocolError(
                f"Protocol error: request bigger than package_max_length ({self.max_length} bytes)", commands
            )
        self._last_data = data
        self._last_command = commands[-1].copy() if commands else None
        return commands

    def _at_request_start(self) -> bool:
        """Whether the bytes fed before ended right after a whole request (checked only when
        it matters: the C parser does not tell)."""
        last = self._last_command
        if self._pending:
            return False
        if last is None:
            return not self._last_data
        request = _request(last)
        return self._last_data.endswith(request) or request.endswith(self._last_data)

    @staticmethod
    def _after_blank_lines(data: bytes, exc: ProtocolError, at_request_start: bool) -> bytes | None:
        """Redis skips empty lines where a request may start; the C parser calls them an error.
        The input after such blank lines, or None when the error was something else."""
        text = str(exc)
        if text not in (
            'Protocol error: got "\\r" as reply type byte',
            'Protocol error: got "\\n" as reply type byte',
        ):
            return None
        requests = [_request(command) for command in exc.commands]
        whole = b"".join(requests)
        if at_request_start:
            offset = len(whole) if data.startswith(whole) else -1
        elif requests:  # the first command began in an earlier read: find where its tail ends
            first, rest = requests[0], whole[len(requests[0]) :]
            offset, end = -1, data.find(b"\n")
            while 0 <= end < len(first):  # the longest tail that fits (shorter ones fit by chance)
                tail = end + 1
                after = tail + len(rest)
                if (
                    first.endswith(data[:tail])
                    and data.startswith(rest, tail)
                    and data[after : after + 1] in BLANK
                ):
                    offset = after
                end = data.find(b"\n", tail)
        else:
            return None
        if offset < 0 or data[offset : offset + 1] not in BLANK:
            return None
        return data[offset:].lstrip(b"\r\n")

    def take_buffer(self) -> bytes | None:
        """The input of the incomplete request, to continue in another parser; None when that is
        not known: the C parser keeps a multibulk request's bytes to itself, so only a stream
        that stopped right after a whole request can move on."""
        if not self._multibulk:
            return self._inline
        return b"" if self._at_request_start() else None

    def _feed_inline(self, data: bytes, commands: list[list[bytes]]) -> list[list[bytes]]:
        buffer = self._inline + data
        # (bytes.find, not `in`: `x in bytes` first tries x as an int and costs an exception)
        if buffer[:1] != b"*" and buffer.find(b"\n*") < 0 and buffer.find(b'"') < 0 and buffer.find(b"'") < 0:
            end = buffer.rfind(b"\n")  # fast path: whole lines of plain words (redis-benchmark's PING)
            if end >= 0:
                if buffer.find(b"\n") == end:  # one line, as typed in telnet
                    if args := buffer[:end].split():
                        commands.append(args)
                else:
                    commands += [args for line in buffer[:end].split(b"\n") if (args := line.split())]
                buffer = buffer[end + 1 :]
        while buffer and buffer[0] != STAR:
            end = buffer.find(b"\n")
            if end < 0:
                if len(buffer) > MAX_INLINE_LENGTH:
                    raise ProtocolError("Protocol error: too big inline request", commands)
                break
            line = buffer[:end]
            buffer = buffer[end + 1 :]
            try:
                args = split_inline(line[:-1] if line.endswith(b"\r") else line)
            except ProtocolError as exc:
                exc.commands = commands
                raise
            if args:
                commands.append(args)
        if buffer and buffer[0] == STAR:
            self._inline = b""
            self._multibulk = True
            return self._feed_multibulk(buffer, commands)
        self._inline = buffer
        return commands


_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("a"): b"\a"}
_HEX = b"0123456789abcdefABCDEF"


def split_inline(line: bytes) -> list[bytes]:
    """Split an inline command like Redis's ``sdssplitargs``: whitespace separates arguments,
    ``"..."`` takes ``\\n \\r \\t \\b \\a \\\\ \\" \\xHH`` escapes, ``'...'`` takes ``\\'``."""
    if line.find(b'"') < 0 and line.find(b"'") < 0:
        return line.split()
    args: list[bytes] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in b" \t\n\r\v\f":
            i += 1
        if i >= n:
            return args
        current = bytearray()
        quote = 0
        while True:
            if i >= n:
                if quote:
                    raise ProtocolError("Protocol error: unbalanced quotes in request")
                break
            c = line[i]
            if quote == 0x22:  # inside "..."
                if (
                    c == 0x5C
                    and i + 3 < n
                    and line[i + 1] == 0x78
                    and line[i + 2] in _HEX
                    and line[i + 3] in _HEX
                ):
                    current.append(int(line[i + 2 : i + 4], 16))
                    i += 3
                elif c == 0x5C and i + 1 < n:
                    i += 1
                    current += _ESCAPES.get(line[i], line[i : i + 1])
                elif c == 0x22:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":  # closing quote must end the arg
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    current.append(c)
            elif quote == 0x27:  # inside '...'
                if c == 0x5C and i + 1 < n and line[i + 1] == 0x27:
                    i += 1
                    current.append(0x27)
                elif c == 0x27:
                    if i + 1 < n and line[i + 1] not in b" \t\n\r\v\f":
                        raise ProtocolError("Protocol error: unbalanced quotes in request")
                    i += 1
                    break
                else:
                    current.append(c)
            elif c in b" \t\n\r\v\f":
                break
            elif c in (0x22, 0x27):
                quote = c
            else:
                current.append(c)
            i += 1
        args.append(bytes(current))


# -- replies -----------------------------------------------------------------------------------

NIL2 = Reply(b"$-1\r\n")
NIL3 = Reply(b"_\r\n")
OK = Reply(b"+OK\r\n")


#: The heads of bulk strings shorter than 1 KiB: concatenating beats bytes %-formatting by 2x.
BULK_HEADS = tuple(b"$%d\r\n" % length for length in range(1024))


def bulk(value: bytes) -> bytes:
    length = len(value)
    if length < 1024:
        return BULK_HEADS[length] + value + b"\r\n"
    return b"$%d\r\n%s\r\n" % (length, value)


def _request(args: list[bytes]) -> bytes:
    """A command as a client sends it (a multibulk request)."""
    return b"".join([b"*%d\r\n" % len(args), *[bulk(arg) for arg in args]])


def line_text(text: str | bytes) -> bytes:
    """Text for a ``+``/``-`` line: CR and LF would end the line, so they become spaces."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    return data.replace(b"\r", b" ").replace(b"\n", b" ")


def error_reply(exc: BaseException) -> bytes:
    """``ReplyError`` texts as they are, any other exception as ``-ERR <message>``."""
    if isinstance(exc, ReplyError):
        return b"-%s\r\n" % line_text(str(exc))
    return b"-ERR %s\r\n" % line_text(str(exc) or type(exc).__name__)


def encode(value: object, resp3: bool = False) -> bytes:
    """The reply for a Python value (see the module docstring); TypeError for other types."""
    kind = type(value)
    if kind is Reply:
        return value  # type: ignore[return-value]
    if kind is bytes:
        return bulk(value)  # type: ignore[arg-type]
    if kind is int:
        return b":%d\r\n" % value  # type: ignore[str-format]
    if value is None:
        return NIL3 if resp3 else NIL2
    return _encode_other(value, resp3)


def _encode_other(value: object, resp3: bool) -> bytes:
    if isinstance(value, bool):
        if resp3:
            return b"#t\r\n" if value else b"#f\r\n"
        return b":1\r\n" if value else b":0\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, str):
        return bulk(value.encode("utf-8", "surrogateescape"))
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bulk(bytes(value))
    if isinstance(value, float):
        text = repr(value).encode()
        return b",%s\r\n" % text if resp3 else bulk(text)
    if isinstance(value, Mapping):
        parts = [b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value))]
        for key, item in value.items():
            parts.append(encode(key, resp3))
            parts.append(encode(item, resp3))
        return b"".join(parts)
    if isinstance(value, (set, frozenset)):
        head = b"~%d\r\n" if resp3 else b"*%d\r\n"
        return b"".join([head % len(value), *[encode(item, resp3) for item in value]])
    if isinstance(value, (list, tuple)):
        return b"".join([b"*%d\r\n" % len(value), *[encode(item, resp3) for item in value]])
    if isinstance(value, BaseException):
        return error_reply(value)
    raise TypeError(f"cannot encode {type(value).__name__} as a RESP reply")
