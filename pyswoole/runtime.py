"""Runtime hooks: blocking code made concurrent (Swoole's ``Runtime::enableCoroutine``).

``enable_coroutine(flags)`` patches ``time.sleep``, the ``socket`` module, ``ssl``, ``select`` /
``selectors`` and ``subprocess``. A patched call made inside a plain function running as a
coroutine (``go(fn)``, or a server callback once hooks are on) runs non-blocking on the asyncio
loop and suspends only that coroutine, through the greenlet bridge (``co.await_``). The same call
anywhere else (the main program, an ``async def`` coroutine, another thread) runs the original
code, blocking as before.

Limits: names imported before hooking (``from time import sleep``) keep the originals; C
extensions that do their own socket I/O (for example libmysqlclient) are not hooked; regular file
I/O is not hooked (disks are never "not ready"; use ``co.read_file``/``co.write_file``).
"""

from __future__ import annotations

import errno
import os
import select as select_module
import selectors
import socket as socket_module
import ssl
import subprocess
import time
from asyncio import events
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from pyswoole.coroutine import runner
from pyswoole.coroutine.bridge import CoGreenlet, await_
from pyswoole.coroutine.io import claim_error, wait_ready, wake_closed

HOOK_TCP = 1 << 1
HOOK_UDP = 1 << 2
HOOK_UNIX = 1 << 3
HOOK_UDG = 1 << 4
HOOK_SSL = 1 << 5
HOOK_TLS = 1 << 6
HOOK_SELECT = 1 << 7  #: Swoole's HOOK_STREAM_FUNCTION (stream_select): select, poll, epoll, selectors
HOOK_STREAM_FUNCTION = HOOK_SELECT
HOOK_FILE = 1 << 8  #: accepted for compatibility; regular files are not hooked (see module docs)
HOOK_SLEEP = 1 << 9
HOOK_PROC = 1 << 10
HOOK_ALL = 0x7FFFFFFF

_flags = 0

_orig_sleep = time.sleep
_orig_socket: type[socket_module.socket] = socket_module.socket
_orig_getaddrinfo = socket_module.getaddrinfo
_orig_gethostbyname = socket_module.gethostbyname
_orig_gethostbyname_ex = socket_module.gethostbyname_ex
_orig_select = select_module.select
_orig_poll = select_module.poll
_orig_epoll = select_module.epoll
_orig_selector_select = {
    cls: cls.__dict__.get("select", cls.select)
    for cls in (selectors.SelectSelector, selectors.PollSelector, selectors.EpollSelector)
}
_orig_sslsocket_class = ssl.SSLContext.sslsocket_class
_orig_popen_wait = subprocess.Popen._wait
_orig_popen_communicate = subprocess.Popen.communicate


def _in_coroutine() -> bool:
    return type(getcurrent()) is CoGreenlet


def get_hook_flags() -> int:
    return _flags


# -- waiting on the loop ---------------------------------------------------------------------


def wait_fd(fd: int, writing: bool, timeout: float | None) -> bool:
    """Suspend the current plain coroutine until ``fd`` is ready; False on timeout."""
    error = claim_error(fd, writing)  # checked here too: no coroutine object is made for nothing
    if error is not None:
        raise error
    return await_(wait_ready(fd, writing, timeout))


def _ready(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


class _Yield:
    """``await _YIELD``: give the loop one turn."""

    __slots__ = ()

    def __await__(self):
        yield


_YIELD = _Yield()


def _sleep(seconds: float) -> None:
    if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_SLEEP:
        return _orig_sleep(seconds)
    if seconds < 0:
        raise ValueError("sleep length must be non-negative")
    if seconds == 0:
        await_(_YIELD)
        return None
    loop = events.get_running_loop()
    fut = loop.create_future()
    timer = loop.call_later(seconds, _ready, fut)
    try:
        await_(fut)
    finally:
        timer.cancel()
    return None


# -- sockets ---------------------------------------------------------------------------------


def _socket_kind(family: int, kind: int) -> int:
    stream = kind & 0xF == socket_module.SOCK_STREAM
    if family == socket_module.AF_UNIX:
        return HOOK_UNIX if stream else HOOK_UDG
    if family in (socket_module.AF_INET, socket_module.AF_INET6):
        return HOOK_TCP if stream else HOOK_UDP
    return 0


def _is_numeric(host: Any) -> bool:
    try:
        _orig_getaddrinfo(host, None, flags=socket_module.AI_NUMERICHOST)
    except (socket_module.gaierror, TypeError, UnicodeError):
        return False
    return True


def _getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list:
    if not _in_coroutine() or not _flags & (HOOK_TCP | HOOK_UDP):
        return _orig_getaddrinfo(host, port, family, type, proto, flags)
    if host is None or _is_numeric(host):
        return _orig_getaddrinfo(host, port, family, type, proto, flags)
    loop = events.get_running_loop()
    return await_(loop.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags))


def _gethostbyname(name: str) -> str:
    if type(getcurrent()) is not CoGreenlet or not _flags & (HOOK_TCP | HOOK_UDP):
        return _orig_gethostbyname(name)
    return _getaddrinfo(name, None, socket_module.AF_INET)[0][4][0]


def _gethostbyname_ex(name: str) -> tuple[str, list[str], list[str]]:
    if type(getcurrent()) is not CoGreenlet or not _flags & (HOOK_TCP | HOOK_UDP):
        return _orig_gethostbyname_ex(name)
    infos = _getaddrinfo(name, None, socket_module.AF_INET, socket_module.SOCK_STREAM)
    return name, [], list(dict.fromkeys(info[4][0] for info in infos))


class _AnySocket(type):
    """``isinstance(x, socket.socket)`` stays true for sockets made before hooking."""

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _orig_socket)

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, _orig_socket)


class HookedSocket(_orig_socket, metaclass=_AnySocket):
    """``socket.socket`` while hooks are on.

    The timeout the user set is kept in ``_timeout``; inside a coroutine the descriptor is switched
    to non-blocking and waits go through the loop, outside it is switched back (one syscall, only
    when the context changes).
    """

    __slots__ = ("_kind", "_real_nb", "_timeout")

    def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None) -> None:
        super().__init__(family, type, proto, fileno)
        self._timeout = _orig_socket.gettimeout(self)
        self._real_nb = False
        self._kind = _socket_kind(self.family, self.type)

    # timeouts as the user sees them
    def settimeout(self, value: float | None) -> None:
        _orig_socket.settimeout(self, value)
        self._timeout = _orig_socket.gettimeout(self)
        self._real_nb = False

    def gettimeout(self) -> float | None:
        return self._timeout

    def setblocking(self, flag: bool) -> None:
        self.settimeout(None if flag else 0.0)

    def getblocking(self) -> bool:
        return self._timeout != 0

    @property
    def timeout(self) -> float | None:  # type: ignore[override]
        return self._timeout

    def _cooperative(self) -> bool:
        """True if this call must not block the loop; else the descriptor is put back as the user set it."""
        if self._timeout != 0 and _flags & self._kind and type(getcurrent()) is CoGreenlet:
            if not self._real_nb:
                _orig_socket.settimeout(self, 0.0)
                self._real_nb = True
            return True
        if self._real_nb:
            _orig_socket.settimeout(self, self._timeout)
            self._real_nb = False
        return False

    def _io(self, method: Callable[..., Any], writing: bool, *args: Any) -> Any:
        timeout = self._timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return method(self, *args)
            except BlockingIOError:
                pass
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or not wait_fd(self.fileno(), writing, remaining):
                raise TimeoutError("timed out")

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if not self._cooperative():
            return _orig_socket.recv(self, bufsize, flags)
        return self._io(_orig_socket.recv, False, bufsize, flags)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        if not self._cooperative():
            return _orig_socket.recv_into(self, buffer, nbytes, flags)
        return self._io(_orig_socket.recv_into, False, buffer, nbytes, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
        if not self._cooperative():
            return _orig_socket.recvfrom(self, bufsize, flags)
        return self._io(_orig_socket.recvfrom, False, bufsize, flags)

    def recvfrom_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> tuple[int, Any]:
        if not self._cooperative():
            return _orig_socket.recvfrom_into(self, buffer, nbytes, flags)
        return self._io(_orig_socket.recvfrom_into, False, buffer, nbytes, flags)

    def recvmsg(self, *args: Any) -> Any:
        if not self._cooperative():
            return _orig_socket.recvmsg(self, *args)
        return self._io(_orig_socket.recvmsg, False, *args)

    def send(self, data: Any, flags: int = 0) -> int:
        if not self._cooperative():
            return _orig_socket.send(self, data, flags)
        return self._io(_orig_socket.send, True, data, flags)

    def sendto(self, data: Any, *args: Any) -> int:
        if not self._cooperative():
            return _orig_socket.sendto(self, data, *args)
        return self._io(_orig_socket.sendto, True, data, *args)

    def sendmsg(self, *args: Any) -> int:
        if not self._cooperative():
            return _orig_socket.sendmsg(self, *args)
        return self._io(_orig_socket.sendmsg, True, *args)

    def sendall(self, data: Any, flags: int = 0) -> None:
        if not self._cooperative():
            return _orig_socket.sendall(self, data, flags)
        with memoryview(data) as view, view.cast("B") as octets:
            sent, total = 0, len(octets)
            while sent < total:
                sent += self._io(_orig_socket.send, True, octets[sent:], flags)
        return None

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        if not self._cooperative():
            return _orig_socket.sendfile(self, file, offset, count)
        return self._sendfile_use_send(file, offset, count)

    def _resolve(self, address: Any) -> Any:
        if self.family in (socket_module.AF_INET, socket_module.AF_INET6) and not _is_numeric(address[0]):
            infos = _getaddrinfo(address[0], address[1], self.family, self.type)
            return infos[0][4]
        return address

    def connect_ex(self, address: Any) -> int:
        if not self._cooperative():
            return _orig_socket.connect_ex(self, address)
        err = _orig_socket.connect_ex(self, self._resolve(address))
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            if not wait_fd(self.fileno(), True, self._timeout):
                return errno.ETIMEDOUT
            err = self.getsockopt(socket_module.SOL_SOCKET, socket_module.SO_ERROR)
        return err

    def connect(self, address: Any) -> None:
        if not self._cooperative():
            return _orig_socket.connect(self, address)
        err = self.connect_ex(address)
        if err == errno.ETIMEDOUT:
            raise TimeoutError("timed out")
        if err:
            raise OSError(err, os.strerror(err))
        return None

    def _real_close(self, *args: Any) -> None:
        fd = self.fileno()
        if fd >= 0:
            wake_closed(fd)
        super()._real_close(*args)  # type: ignore[misc]

    def accept(self) -> tuple[socket_module.socket, Any]:
        if not self._cooperative():
            return _orig_socket.accept(self)
        fd, address = self._io(_orig_socket._accept, False)  # type: ignore[attr-defined]
        sock = HookedSocket(self.family, self.type, self.proto, fileno=fd)
        if socket_module.getdefaulttimeout() is None and self.gettimeout():
            sock.setblocking(True)
        return sock, address


class HookedSSLSocket(ssl.SSLSocket):
    """``ssl.SSLSocket`` while HOOK_SSL is on: TLS handshakes, reads and writes of a coroutine wait
    on the loop. (Connect the TCP socket first and wrap it, as urllib and most clients do.)"""

    _co_nb = False  # descriptor switched to non-blocking for a coroutine
    _co_timeout: float | None = None  # the user's timeout while _co_nb

    def _cooperative(self) -> bool:
        if self._co_nb:
            if _flags & HOOK_SSL and type(getcurrent()) is CoGreenlet:
                return True
            _orig_socket.settimeout(self, self._co_timeout)
            self._co_nb = False
            return False
        timeout = _orig_socket.gettimeout(self)
        if timeout != 0 and _flags & HOOK_SSL and type(getcurrent()) is CoGreenlet:
            self._co_timeout = timeout
            _orig_socket.settimeout(self, 0.0)
            self._co_nb = True
            return True
        return False

    def settimeout(self, value: float | None) -> None:
        self._co_nb = False
        super().settimeout(value)

    def gettimeout(self) -> float | None:
        return self._co_timeout if self._co_nb else super().gettimeout()

    def _tls(self, method: Callable[..., Any], *args: Any) -> Any:
        timeout = self._co_timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                return method(self, *args)
            except ssl.SSLWantReadError:
                writing = False
            except ssl.SSLWantWriteError:
                writing = True
            remaining = None if deadline is None else deadline - time.monotonic()
            if (remaining is not None and remaining <= 0) or not wait_fd(self.fileno(), writing, remaining):
                raise TimeoutError("timed out")

    def do_handshake(self, block: bool = False) -> None:
        if not self._cooperative():
            return super().do_handshake(block)
        return self._tls(ssl.SSLSocket.do_handshake)

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        if not self._cooperative():
            return super().read(len, buffer)
        return self._tls(ssl.SSLSocket.read, len, buffer)

    def write(self, data: Any) -> int:
        if not self._cooperative():
            return super().write(data)
        return self._tls(ssl.SSLSocket.write, data)


# -- select / poll / epoll / selectors ---------------------------------------------------------


def _fd(obj: Any) -> int:
    return obj if isinstance(obj, int) else obj.fileno()


def _wait_any(interest: dict[int, int], timeout: float | None) -> bool:
    """Wait until any fd in ``interest`` (fd -> epoll mask) is ready; False on timeout."""
    with _orig_epoll() as poller:
        for fd, mask in interest.items():
            poller.register(fd, mask)
        return wait_fd(poller.fileno(), False, timeout)


def _select(rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None) -> tuple[list, list, list]:
    if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_SELECT:
        return _orig_select(rlist, wlist, xlist, timeout)
    ready = _orig_select(rlist, wlist, xlist, 0)
    if ready[0] or ready[1] or ready[2] or timeout == 0:
        return ready
    interest: dict[int, int] = {}
    for objs, mask in (
        (rlist, select_module.EPOLLIN),
        (wlist, select_module.EPOLLOUT),
        (xlist, select_module.EPOLLPRI),
    ):
        for obj in objs:
            fd = _fd(obj)
            interest[fd] = interest.get(fd, 0) | mask
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not _wait_any(interest, remaining):
            return [], [], []
        ready = _orig_select(rlist, wlist, xlist, 0)
        if ready[0] or ready[1] or ready[2]:
            return ready


class _HookedPoll:
    """``select.poll()`` while HOOK_SELECT is on (timeouts in milliseconds, as poll's)."""

    def __init__(self) -> None:
        self._poll = _orig_poll()
        self._interest: dict[int, int] = {}

    def register(
        self, fd: Any, eventmask: int = select_module.POLLIN | select_module.POLLPRI | select_module.POLLOUT
    ) -> None:
        self._poll.register(fd, eventmask)
        self._interest[_fd(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        self._poll.modify(fd, eventmask)
        self._interest[_fd(fd)] = eventmask

    def unregister(self, fd: Any) -> None:
        self._poll.unregister(fd)
        del self._interest[_fd(fd)]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_SELECT:
            return self._poll.poll(timeout)
        ready = self._poll.poll(0)
        if ready or (timeout is not None and timeout >= 0 and timeout == 0) or not self._interest:
            return ready
        seconds = None if timeout is None or timeout < 0 else timeout / 1000
        if _wait_any(self._interest, seconds):
            return self._poll.poll(0)
        return []


class _HookedEpoll:
    """``select.epoll()`` while HOOK_SELECT is on: a coroutine waits for the epoll fd on the loop."""

    def __init__(self, sizehint: int = -1, flags: int = 0) -> None:
        self._epoll = _orig_epoll(sizehint, flags)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)

    def __enter__(self) -> _HookedEpoll:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._epoll.close()

    def poll(self, timeout: float | None = -1, maxevents: int = -1) -> list[tuple[int, int]]:
        if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_SELECT:
            return self._epoll.poll(timeout, maxevents)
        ready = self._epoll.poll(0, maxevents)
        if ready or timeout == 0:
            return ready
        seconds = None if timeout is None or timeout < 0 else timeout
        if wait_fd(self._epoll.fileno(), False, seconds):
            return self._epoll.poll(0, maxevents)
        return []


def _selector_active(selector: selectors.BaseSelector) -> bool:
    if type(getcurrent()) is not CoGreenlet:
        return False
    return bool(
        _flags & HOOK_SELECT or (_flags & HOOK_PROC and isinstance(selector, subprocess._PopenSelector))
    )


def _make_selector_select(cls: type) -> Callable[..., Any]:
    original = _orig_selector_select[cls]

    def select(self: selectors.BaseSelector, timeout: float | None = None) -> list:
        if not _selector_active(self):
            return original(self, timeout)
        ready = original(self, 0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        interest = {
            key.fd: (select_module.EPOLLIN if key.events & selectors.EVENT_READ else 0)
            | (select_module.EPOLLOUT if key.events & selectors.EVENT_WRITE else 0)
            for key in self.get_map().values()
        }
        if interest and _wait_any(interest, timeout):
            return original(self, 0)
        return []

    return select


# -- subprocess ------------------------------------------------------------------------------


def _popen_wait(self: subprocess.Popen, timeout: float | None = None) -> int:
    if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_PROC or self.returncode is not None:
        return _orig_popen_wait(self, timeout)
    try:
        fd = os.pidfd_open(self.pid)
    except ProcessLookupError:
        return _orig_popen_wait(self, timeout)
    try:
        if not wait_fd(fd, False, timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
    finally:
        os.close(fd)
    return _orig_popen_wait(self, None)


def _popen_communicate(
    self: subprocess.Popen, input: Any = None, timeout: float | None = None
) -> tuple[Any, Any]:
    if type(getcurrent()) is not CoGreenlet or not _flags & HOOK_PROC or self._communication_started:  # type: ignore[attr-defined]
        return _orig_popen_communicate(self, input, timeout)
    # Always take the selector path (the original reads a single pipe with a blocking read).
    endtime = None if timeout is None else time.monotonic() + timeout
    try:
        stdout, stderr = self._communicate(input, endtime, timeout)  # type: ignore[attr-defined]
    finally:
        self._communication_started = True  # type: ignore[attr-defined]
    self.wait(timeout=self._remaining_time(endtime))  # type: ignore[attr-defined]
    return stdout, stderr


# -- switching hooks on and off --------------------------------------------------------------


def _patch(on: bool) -> None:
    time.sleep = _sleep if on else _orig_sleep
    socket_module.socket = HookedSocket if on else _orig_socket  # type: ignore[misc]
    socket_module.SocketType = socket_module.socket  # type: ignore[misc]
    socket_module.getaddrinfo = _getaddrinfo if on else _orig_getaddrinfo
    socket_module.gethostbyname = _gethostbyname if on else _orig_gethostbyname
    socket_module.gethostbyname_ex = _gethostbyname_ex if on else _orig_gethostbyname_ex
    ssl.SSLContext.sslsocket_class = HookedSSLSocket if on else _orig_sslsocket_class
    select_module.select = _select if on else _orig_select
    select_module.poll = _HookedPoll if on else _orig_poll  # type: ignore[assignment,misc]
    select_module.epoll = _HookedEpoll if on else _orig_epoll  # type: ignore[assignment,misc]
    for cls, original in _orig_selector_select.items():
        cls.select = _make_selector_select(cls) if on else original  # type: ignore[method-assign]
    subprocess.Popen._wait = _popen_wait if on else _orig_popen_wait  # type: ignore[method-assign]
    subprocess.Popen.communicate = _popen_communicate if on else _orig_popen_communicate  # type: ignore[method-assign]


def enable_coroutine(flags: int = HOOK_ALL) -> None:
    """Hook the blocking calls selected by ``flags`` (``True`` means HOOK_ALL, ``False`` disables).

    Call it once at program start. Plain server callbacks then run in greenlets too.
    """
    global _flags
    if flags is True:
        flags = HOOK_ALL
    if not flags:
        disable()
        return
    _patch(True)
    _flags = int(flags)
    runner.plain_in_greenlet = True


def disable() -> None:
    """Put every original back (``enable_coroutine(False)`` does the same)."""
    global _flags
    _patch(False)
    _flags = 0
    runner.plain_in_greenlet = False


#: The long name, paired with ``enable_coroutine``.
disable_coroutine = disable
