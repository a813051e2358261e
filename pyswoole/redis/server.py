"""``pyswoole.redis.Server``: a server that speaks RESP, so every Redis client and tool can use it.

Each async handler runs as its own coroutine (``spawn``: eager, no Task unless it awaits
something); the plain handlers of consecutive commands of one read share one coroutine (as
Swoole's receive event does), which saves most of the per-command cost of a plain store.
Replies leave in the order the commands came, whatever order async handlers finish in; the
replies of one read whose handlers all finish at once leave in one ``transport.write``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

import pyswoole
from pyswoole.constants import PROCESS, SOCK_TCP
from pyswoole.coroutine import runner
from pyswoole.coroutine.runner import is_async, spawn
from pyswoole.protocol.resp import (
    BULK_HEADS,
    MAX_BULK_LENGTH,
    NIL2,
    NIL3,
    OK,
    ProtocolError,
    Reply,
    ReplyError,
    RequestParser,
    bulk,
    encode,
    error_reply,
    line_text,
)
from pyswoole.server.connection import StreamConnection
from pyswoole.server.server import Server as BaseServer
from pyswoole.server.server import _check_arity

if TYPE_CHECKING:
    from pyswoole.server.port import Port
    from pyswoole.server.worker import Worker

log = logging.getLogger("pyswoole")

# ``Server.format`` types, with Swoole's values.
ERROR = 0
NIL = 1
STATUS = 2
INT = 3
STRING = 4
SET = 5
MAP = 6

Handler = Callable[[Any, int, list[Any]], Any]


class _Entry(NamedTuple):
    fn: Handler
    is_async: bool
    decode: bool


class Server(BaseServer):
    """A ``Server`` whose stream ports speak RESP2/RESP3 and dispatch commands to handlers.

    A port that registers its own ``receive`` callback stays a plain stream port.
    """

    NIL = NIL
    ERROR = ERROR
    STATUS = STATUS
    INT = INT
    STRING = STRING
    SET = SET
    MAP = MAP
    SETTINGS: ClassVar[dict[str, Any]] = {
        **BaseServer.SETTINGS,
        "package_max_length": dataclasses.replace(
            BaseServer.SETTINGS["package_max_length"], default=MAX_BULK_LENGTH
        ),
    }

    def __init__(self, host: str = "0.0.0.0", port: int = 0, mode: int = PROCESS, sock_type: int = SOCK_TCP):
        super().__init__(host, port, mode, sock_type)
        self.handlers: dict[bytes, _Entry] = {}
        #: the plain handlers taking bytes, by upper-case name: the direct dispatch of the hot path
        self.plain_handlers: dict[bytes, Handler] = {}
        self._register(b"HELLO", _Entry(_hello, False, False))

    # -- handlers ---------------------------------------------------------------------------------
    def set_handler(self, command: str, handler: Handler, *, decode: bool = False) -> bool:
        """Run ``handler(server, fd, args)`` for ``command`` (any case). ``args`` are the arguments
        after the name, as ``bytes``; with ``decode=True`` as ``str`` (UTF-8, undecodable bytes kept
        as surrogates). The handler may be ``async``. It returns the reply: ``format()``'s bytes, or
        a value to encode (None nil, int, str/bytes bulk, list/tuple array, dict map, set, an
        exception an error); or it answers with ``server.send(fd, ...)``, and its result is ignored.
        """
        if not isinstance(command, str) or not command or any(c.isspace() for c in command):
            raise ValueError(f"command name must be a non-empty str without spaces, not {command!r}")
        if not callable(handler):
            raise TypeError(f"handler for {command!r} must be callable, not {type(handler).__name__}")
        _check_arity(f"redis command {command}", handler, 3)
        self._register(command.upper().encode(), _Entry(handler, is_async(handler), decode))
        return True

    def _register(self, name: bytes, entry: _Entry) -> None:
        self.handlers[name] = entry
        if entry.is_async or entry.decode:
            self.plain_handlers.pop(name, None)
        else:
            self.plain_handlers[name] = entry.fn

    setHandler = set_handler

    def handler(self, command: str, *, decode: bool = False) -> Callable[[Handler], Handler]:
        """Decorator form of ``set_handler``."""

        def register(fn: Handler) -> Handler:
            self.set_handler(command, fn, decode=decode)
            return fn

        return register

    def get_handler(self, command: str) -> Handler | None:
        entry = self.handlers.get(command.upper().encode())
        return None if entry is None else entry.fn

    getHandler = get_handler

    def on(self, event: str, callback: Callable[..., Any] | None = None) -> Any:
        if isinstance(event, str) and event.lower().replace("_", "").removeprefix("on") == "receive":
            raise ValueError(
                "a Redis server answers commands with handlers: use set_handler(), not on('receive')"
            )
        return super().on(event, callback)

    def connection_class_for(self, port: Port) -> type[StreamConnection]:
        return StreamConnection if "receive" in port.callbacks else RedisConnection

    def protocol(self, fd: int) -> int:
        """The RESP version connection ``fd`` speaks (2, or 3 after ``HELLO 3``); 0 if unknown here."""
        conn = self._local(fd)
        return (3 if conn.resp3 else 2) if isinstance(conn, RedisConnection) else 0

    # -- replies ------------------------------------------------------------------------------------
    @staticmethod
    def format(type: int, value: Any = None, resp: int = 2) -> Reply:
        """Swoole's ``Server::format``: one reply of the given type.

        ``NIL`` ``$-1``; ``ERROR`` ``-<value>`` (default ``-ERR``); ``STATUS`` ``+<value>`` (default
        ``+OK``); ``INT`` ``:<n>``; ``STRING`` a bulk string (None gives nil); ``SET`` an array of
        bulk strings; ``MAP`` a flat array key, value, ... With ``resp=3``: ``_``, ``~N`` and ``%N``.
        """
        resp3 = resp == 3
        if type == NIL:
            return NIL3 if resp3 else NIL2
        if type == ERROR:
            return Reply(b"-ERR\r\n" if value is None else b"-%s\r\n" % line_text(_text(value)))
        if type == STATUS:
            return OK if value is None else Reply(b"+%s\r\n" % line_text(_text(value)))
        if type == INT:
            return Reply(b":%d\r\n" % int(value))
        if type == STRING:
            if value is None:
                return NIL3 if resp3 else NIL2
            return Reply(bulk(_text(value)))
        if type == SET:
            items = [bulk(_text(item)) for item in _iterable(value, "SET")]
            return Reply(b"".join([(b"~%d\r\n" if resp3 else b"*%d\r\n") % len(items), *items]))
        if type == MAP:
            if not isinstance(value, Mapping):
                raise TypeError(f"format(MAP, value) needs a mapping, not {value.__class__.__name__}")
            head = b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value))
            parts = [head]
            for key, item in value.items():
                parts.append(bulk(_text(key)))
                parts.append(bulk(_text(item)))
            return Reply(b"".join(parts))
        raise ValueError(f"unknown reply type {type!r}: use NIL, ERROR, STATUS, INT, STRING, SET or MAP")


def _text(value: Any) -> bytes:
    """A value as the bytes of a string (numbers in decimal, as PHP converts them)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    if isinstance(value, bool):
        return b"1" if value else b""
    if isinstance(value, (int, float)):
        return repr(value).encode()
    raise TypeError(f"cannot format {value.__class__.__name__} as a string")


def _iterable(value: Any, kind: str) -> Sequence[Any]:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"format({kind}, value) needs a list or set, not {value.__class__.__name__}")
    return list(value)


def _hello(server: Server, fd: int, args: list[bytes]) -> Any:
    """``HELLO [protover [AUTH user pass] [SETNAME name]]``: switch RESP version, describe the server.
    There is no authentication: AUTH is accepted like Redis without a password does."""
    conn = server._local(fd)
    version = 3 if conn.resp3 else 2
    if args:
        try:
            version = int(args[0])
        except ValueError:
            return ReplyError("ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            return ReplyError("NOPROTO unsupported protocol version")
        options = args[1:]
        while options:
            option = options[0].upper()
            if option == b"AUTH" and len(options) >= 3:
                options = options[3:]
            elif option == b"SETNAME" and len(options) >= 2:
                options = options[2:]
            else:
                return ReplyError(f"ERR Syntax error in HELLO option '{options[0].decode(errors='replace')}'")
    conn.resp3 = version == 3
    return {
        b"server": b"pyswoole",
        b"version": pyswoole.__version__.encode(),
        b"proto": version,
        b"id": fd,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    }


class _Slot:
    """One command's place in the reply order."""

    __slots__ = ("reply", "sent", "task")

    def __init__(self, reply: bytes | None = None):
        self.reply = reply  # the encoded reply once the handler has finished
        self.sent: list[bytes] | None = None  # what the handler sent itself with server.send()
        self.task: asyncio.Task | None = None  # set when the handler suspended


#: ``RedisConnection.current`` while a plain handler runs (its reply needs no slot).
_STEPPING = _Slot()


class RedisConnection(StreamConnection):
    """One RESP client connection: parses commands, runs handlers, writes replies in order."""

    __slots__ = (
        "backlog",
        "batch",
        "batch_size",
        "current",
        "ending",
        "handlers",
        "output_limit",
        "parser",
        "position",
        "queue",
        "resp3",
        "sent",
        "suspended",
    )

    def __init__(self, worker: Worker, port: Port):
        super().__init__(worker, port)
        self.parser = RequestParser(port.settings["package_max_length"])
        self.handlers: dict[bytes, _Entry] = self.server.handlers
        self.resp3 = False
        self.queue: deque[_Slot] = deque()  # replies waiting for an earlier, unfinished one
        self.suspended: dict[asyncio.Task, _Slot] = {}
        self.current: _Slot | None = None  # the command whose handler is stepping right now
        self.sent: list[bytes] | None = None  # what a plain handler sent itself with server.send()
        self.batch: list[bytes] = []  # the replies of the read being run, written together
        self.batch_size = 0
        self.position = 0  # where _run_plain stopped
        self.ending = False  # QUIT / close() / protocol error: answer what came before, then close
        self.output_limit = worker.settings["buffer_output_size"]
        # commands not run yet because the client does not read its replies, and a protocol error after them
        self.backlog: tuple[list[list[bytes]], ProtocolError | None] | None = None

    def data_received(self, data: bytes) -> None:
        # note_input() and count_requests() inlined: the per-read cost counts at -P 1
        worker = self.worker
        self.bytes_in += len(data)
        if self.last_time != worker.clock:
            self.last_time = worker.clock
            worker.registry.touch(self.fd, self.last_time, self.bytes_in, self.bytes_out)
        if self.ending:
            return
        try:
            commands = self.parser.feed(data)
            error = None
        except ProtocolError as exc:
            commands, error = exc.commands, exc
        if self.backlog is not None:  # still waiting for the client to take its replies
            waiting, waiting_error = self.backlog
            self.backlog = (waiting + commands, waiting_error or error)
        else:
            self._execute(commands, error)
        worker.request_count += len(commands)
        if worker.max_request and worker.request_count >= worker.max_request:
            worker.recycle()

    def _execute(self, commands: list[list[bytes]], error: ProtocolError | None) -> None:
        """Run the commands of a read in order, then answer a protocol error. While the client
        does not take its replies (``buffer_output_size`` is reached), the rest waits in
        ``backlog`` for ``resume_writing``: a read's replies never pile up without limit."""
        queue = self.queue
        self.batch = batch = []
        self.batch_size = 0
        self.current = _STEPPING  # (a slot while an async handler steps)
        plain = {} if runner.plain_in_greenlet else self.server.plain_handlers
        index, count = 0, len(commands)
        while index < count and not self.ending and self.backlog is None:
            args = commands[index]
            entry = None if args[0] in plain else self.handlers.get(args[0].upper())
            if entry is None or not (entry.is_async or runner.plain_in_greenlet):
                spawn(self._run_plain, commands, index, error)  # (never suspends: no task name)
                index = self.position
                continue
            fn, is_async, decode = entry
            del args[0]
            if decode:
                args = [arg.decode("utf-8", "surrogateescape") for arg in args]
            slot = _Slot()
            self.current = slot
            task = spawn(self._run_async if is_async else self._run_in_slot, fn, args, slot, name="redis")
            self.current = _STEPPING
            if task is None and not queue:
                batch.append(slot.reply)
            else:
                if task is not None:
                    slot.task = task
                    self.suspended[task] = slot
                queue.append(slot)
            index += 1
        self.current = None
        if batch:
            out = batch[0] if len(batch) == 1 else b"".join(batch)
            self.bytes_out += len(out)
            self.transport.write(out)
        if self.backlog is not None:
            return
        if error is not None and not self.ending:
            log.warning("closing connection %d from %s:%d: %s", self.fd, *self.remote, error)
            self.ending = True
            self.transport.pause_reading()
            reply = b"-ERR %s\r\n" % line_text(str(error))
            if queue:
                queue.append(_Slot(reply))
            else:
                self._write([reply])
        if self.ending and not queue:
            self.transport.close()

    def _run_plain(self, commands: list[list[bytes]], start: int, error: ProtocolError | None) -> None:
        """Run the plain handlers (and unknown commands) of ``commands`` from ``start`` on, up to
        the first async one, in this one coroutine (like Swoole's receive event); where it
        stopped goes to ``self.position``. This is the hot path of every plain store."""
        may_suspend = runner.plain_in_greenlet
        plain = {} if may_suspend else self.server.plain_handlers
        server, fd = self.server, self.fd
        queue = self.queue
        batch = self.batch
        append = batch.append
        size = self.batch_size
        limit = self.output_limit
        index = start
        for args in commands[start:] if start else commands:
            fn = plain.get(args[0])
            if fn is None:
                entry = self.handlers.get(args[0].upper())
                if entry is None:
                    reply = b"-ERR unknown command '%s'\r\n" % line_text(args[0])
                elif entry.is_async or may_suspend:
                    break
                else:
                    fn = entry.fn
                    del args[0]
                    if entry.decode:
                        args = [arg.decode("utf-8", "surrogateescape") for arg in args]  # type: ignore[misc]
                    reply = self._reply(fn, args)
            else:
                del args[0]
                try:
                    result = fn(server, fd, args)
                except Exception as exc:
                    result = self._failed(fn, exc)
                kind = type(result)  # the common replies first, without a call
                if self.sent is not None:
                    reply = b"".join(self.sent)
                    self.sent = None
                elif kind is Reply:
                    reply = result
                elif kind is bytes:  # (resp.bulk(), inlined)
                    length = len(result)
                    if length < 1024:
                        reply = BULK_HEADS[length] + result + b"\r\n"
                    else:
                        reply = b"$%d\r\n%s\r\n" % (length, result)
                elif kind is int:
                    reply = b":%d\r\n" % result
                else:
                    reply = self._encode(result)
            index += 1
            if queue:
                queue.append(_Slot(reply))
            else:
                append(reply)
                size += len(reply)
                if size > limit:
                    self._write(batch)
                    batch.clear()
                    size = 0
                    if self.paused_writing and index < len(commands):
                        self.backlog = (commands[index:], error)
                        break
            if self.ending:
                break
        self.batch_size = size
        self.position = index

    def _reply(self, fn: Handler, args: list[Any]) -> bytes:
        """Run a plain handler to its end: its reply."""
        try:
            result = fn(self.server, self.fd, args)
        except Exception as exc:
            result = self._failed(fn, exc)
        if self.sent is not None:
            reply = b"".join(self.sent)
            self.sent = None
            return reply
        return self._encode(result)

    def _encode(self, result: Any) -> bytes:
        try:
            return encode(result, self.resp3)
        except TypeError as exc:
            return self._unencodable(exc)

    def _write(self, replies: list[bytes]) -> None:
        out = replies[0] if len(replies) == 1 else b"".join(replies)
        self.bytes_out += len(out)
        self.transport.write(out)

    # -- running handlers ---------------------------------------------------------------------------
    def _run_in_slot(self, handler: Handler, args: list[Any], slot: _Slot) -> None:
        """A plain handler that may suspend (in a greenlet, with runtime hooks on)."""
        try:
            result = handler(self.server, self.fd, args)
        except Exception as exc:
            result = self._failed(handler, exc)
        self._finish(slot, result)

    async def _run_async(self, handler: Handler, args: list[Any], slot: _Slot) -> None:
        try:
            result = await handler(self.server, self.fd, args)
        except Exception as exc:
            result = self._failed(handler, exc)
        self._finish(slot, result)

    def _failed(self, handler: Handler, exc: Exception) -> Exception:
        if not isinstance(exc, ReplyError):
            log.warning(
                "redis handler %s on connection %d raised %s: %s",
                getattr(handler, "__qualname__", handler),
                self.fd,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
        return exc

    def _finish(self, slot: _Slot, result: Any) -> None:
        slot.reply = self._encode(result) if slot.sent is None else b"".join(slot.sent)
        if slot.task is not None:  # it finished after suspending: replies may be due now
            del self.suspended[slot.task]
            self._flush()

    def _unencodable(self, exc: TypeError) -> bytes:
        log.warning("redis handler reply on connection %d: %s", self.fd, exc)
        return error_reply(exc)

    def _flush(self) -> None:
        """Write the replies at the head of the queue that are complete."""
        queue = self.queue
        parts = []
        while queue and queue[0].reply is not None:
            parts.append(queue.popleft().reply)
        if parts and not self.transport.is_closing():
            self._write(parts)
        if self.ending and not queue:
            self.transport.close()

    # -- verbs used by Server -----------------------------------------------------------------------
    def send(self, data: bytes) -> bool:
        """Inside a handler: (part of) that command's reply. Elsewhere: out of band, after the
        replies already due."""
        if self.transport.is_closing():
            return False
        slot = self.current
        if slot is _STEPPING:
            if self.sent is None:
                self.sent = [data]
            else:
                self.sent.append(data)
            return True
        if slot is None and self.suspended:
            slot = self.suspended.get(asyncio.current_task())  # type: ignore[arg-type]
        if slot is not None and slot.reply is None:
            if slot.sent is None:
                slot.sent = [data]
            else:
                slot.sent.append(data)
            return True
        if self.closing or self.paused_writing:  # closed by the server, or the client is not reading
            return False
        if self.queue:
            self.queue.append(_Slot(data))
        else:
            self._write([data])
        return True

    def close(self, reset: bool = False) -> None:
        """Close after the replies due so far (at once with ``reset``)."""
        if reset:
            super().close(reset=True)
            return
        self.closed_by_server = True
        self.closing = self.ending = True
        if self.current is None and not self.queue:
            self.transport.close()

    def release(self, target_worker: int = -1) -> None:
        """PROCESS mode hand-over: only a client between two requests can move on; one caught
        in the middle of a multibulk request, or with commands waiting for it to read its
        replies, is closed (clients reconnect)."""
        if self.backlog is not None or self.parser.take_buffer() is None:
            log.info("connection %d is in the middle of a request: closed instead of handed over", self.fd)
            self.close()
        else:
            super().release(target_worker)

    def unprocessed_input(self) -> bytes:
        return self.parser.take_buffer() or b""

    def pause_writing(self) -> None:
        """The client reads its replies too slowly: stop reading its commands until it catches up."""
        super().pause_writing()
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        backlog = self.backlog
        if backlog is not None:
            self.backlog = None
            self._execute(*backlog)
        if not self.ending and self.backlog is None:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.ending = True
        super().connection_lost(exc)
