"""A TCP connection to a log collector that keeps what it cannot send yet.

``SpooledConnection`` sends whole frames (messages already framed) in the
order they were put, on a non-blocking socket, so sending never blocks
beyond the wait its caller allows.  Its one invariant: **only the thread
holding its owner's lock calls it** (a handler's lock; in a forked child,
the at-fork step calls :meth:`forget` before any other code runs).  It
starts no thread and takes no lock of its own.

* While the collector is away, frames wait in a spool of at most ``limit``
  frames; a frame put into a full spool is dropped and counted.
* The socket takes what the kernel accepts; a frame cut short by a full
  socket buffer is finished first by the next :meth:`pump`, so the stream
  stays framed and nothing is torn.
* When the connection is lost (a reset, a close by the collector, any send
  error), TCP does not tell the sender which bytes the collector read before
  it went away: on Linux a collector that closes with bytes unread resets
  the connection, and those bytes are gone.  So two kinds of frame go back
  to the head of the spool, with the frame in progress, and are sent again
  (and counted): those sent in the last ``resend_window`` seconds of the
  connection (a collector stops reading shortly before it closes: about
  2 ms for rsyslog 8.2302 on SIGTERM), and those whose bytes the collector's
  host never acknowledged (a broken network; Linux, where the
  unacknowledged bytes can be counted).  Nothing is lost then, unless the
  collector stopped reading longer than ``resend_window`` before it closed;
  a frame it had read already arrives twice.  A collector that closed
  cleanly with every byte acknowledged had read them all: nothing is sent
  again then (Linux).
* Reconnecting: at once after a lost connection, then after a back-off that
  doubles from ``INITIAL_BACKOFF`` up to ``MAX_BACKOFF`` while connects
  fail.  Name resolution (``getaddrinfo``) blocks; use an address or a name
  the resolver answers at once where that matters.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import select
import socket
import struct
import time

try:
    import fcntl
    import termios
except ImportError:  # not on Windows
    _UNACKNOWLEDGED_IOCTL: int | None = None
else:
    # SIOCOUTQ: bytes in the send queue the peer has not acknowledged.
    _UNACKNOWLEDGED_IOCTL = getattr(termios, "TIOCOUTQ", None)

__all__ = [
    "CONNECT_TIMEOUT",
    "INITIAL_BACKOFF",
    "MAX_BACKOFF",
    "PEER_CLOSED",
    "READABLE",
    "WRITABLE",
    "SpooledConnection",
    "peer_gone",
    "wait_until",
]

INITIAL_BACKOFF = 0.1
MAX_BACKOFF = 2.0
#: A connect still in progress after this many seconds is given up.
CONNECT_TIMEOUT = 10.0

_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY}
# poll()'s event bits; select.select() stands in where poll() is missing.
READABLE = getattr(select, "POLLIN", 1)
WRITABLE = getattr(select, "POLLOUT", 4)


class SpooledConnection:
    """Frames sent in order to ``address`` over TCP; see the module docstring."""

    def __init__(
        self, address: tuple[str, int], *, limit: int, resend_window: float
    ) -> None:
        self.address = address
        self.limit = limit
        self.resend_window = resend_window
        self._start_empty()

    def _start_empty(self) -> None:
        self.spool: collections.deque[bytes] = collections.deque()
        #: Frames dropped because the spool was full.
        self.dropped = 0
        #: Frames sent again after a lost connection.
        self.resent = 0
        #: When (``time.time()``) the collector was lost, while it stays away.
        self.away_since: float | None = None
        #: Why the last connection was lost; why the last connect failed.
        self.lost_because = ""
        self.last_error = ""
        self._reset_connection()
        self._retry_at = 0.0
        self._backoff = INITIAL_BACKOFF

    def _reset_connection(self) -> None:
        self._sock: socket.socket | None = None
        self._connected = False
        self._connect_started = 0.0
        self._candidates: list[tuple[int, tuple[object, ...]]] = []
        self._current: memoryview | None = None  # the frame being sent
        self._offset = 0
        # Bytes sent on this connection; of them, those the peer acknowledged
        # (None where the platform does not tell).
        self._stream_sent = 0
        self._acknowledged: int | None = None
        # (when sent whole, where it ends in the stream, frame), for each
        # frame sent in the last resend_window or not yet acknowledged.
        self._sent: collections.deque[tuple[float, int, bytes]] = collections.deque()

    # -- what the owner calls ----------------------------------------------

    def put(self, frame: bytes) -> bool:
        """Add ``frame`` behind every frame put before; False if the spool is
        full and it was dropped (counted in :attr:`dropped`)."""
        if len(self.spool) >= self.limit:
            self.dropped += 1
            return False
        self.spool.append(frame)
        return True

    def put_over_limit(self, frame: bytes) -> None:
        """Add ``frame`` even to a full spool (safelog's own reports)."""
        self.spool.append(frame)

    @property
    def pending(self) -> int:
        """Frames not yet sent whole."""
        return len(self.spool) + (self._current is not None)

    @property
    def connected(self) -> bool:
        return self._connected

    def pump(self, wait: float) -> None:
        """Send what the connection takes, connecting first if need be;
        wait at most ``wait`` seconds for it to take more.  Never raises
        ``OSError``: a failure is a lost connection, and frames stay
        spooled."""
        deadline = time.monotonic() + wait
        checked_peer = False
        while self._current is not None or self.spool:
            if self._sock is None and (
                time.monotonic() < self._retry_at or not self._start_connect()
            ):
                return
            sock = self._sock
            assert sock is not None
            if not self._connected:
                if not self._finish_connect(sock, deadline):
                    return
                continue
            if not checked_peer:
                checked_peer = True
                if not self._peer_still_there(sock):
                    continue
                self._note_acknowledged(sock)
            if self._current is None:
                self._current = memoryview(self.spool.popleft())
                self._offset = 0
            try:
                count = sock.send(self._current[self._offset :])
            except BlockingIOError:
                if not wait_until(sock, WRITABLE, deadline):
                    return
                continue
            except OSError as error:
                self._lose(str(error))
                continue
            self._offset += count
            self._stream_sent += count
            if self._offset == len(self._current):
                self._record_sent(self._current.obj)  # type: ignore[arg-type]
                self._current = None

    def retry_in(self) -> float:
        """Seconds until a connect may be tried again (0 when connected or
        connecting)."""
        if self._sock is not None:
            return 0.0
        return max(0.0, self._retry_at - time.monotonic())

    def close(self) -> None:
        """Close the socket; spooled frames stay, counted in :attr:`pending`."""
        self._close_socket()
        self._reset_connection()

    def forget(self) -> None:
        """In a forked child: drop the parent's socket (this process's
        descriptor only: the parent's connection lives on) and everything
        spooled, which the parent sends; start again from nothing."""
        self._close_socket()
        self._start_empty()

    # -- connecting --------------------------------------------------------

    def _start_connect(self) -> bool:
        """Start a non-blocking connect to the next address; False (with a
        back-off) when none is left to try."""
        if not self._candidates:
            host, port = self.address
            try:
                infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
            except OSError as error:
                self._fail_connect(str(error))
                return False
            self._candidates = [(info[0], info[4]) for info in infos]
        while self._candidates:
            family, address = self._candidates.pop(0)
            sock = None
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
                sock.setblocking(False)
                code = sock.connect_ex(address)
            except OSError as error:
                if sock is not None:
                    sock.close()
                self.last_error = str(error)
                continue
            if code == 0 or code in _IN_PROGRESS:
                self._sock = sock
                self._connect_started = time.monotonic()
                return True
            sock.close()
            self.last_error = os.strerror(code)
        self._fail_connect(self.last_error)
        return False

    def _finish_connect(self, sock: socket.socket, deadline: float) -> bool:
        """Whether the connect in progress has succeeded (waiting until
        ``deadline`` at most); a failed one is given up."""
        if not wait_until(sock, WRITABLE, deadline):
            if time.monotonic() - self._connect_started > CONNECT_TIMEOUT:
                self._give_up_connect("connect timed out")
            return False
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._give_up_connect(os.strerror(code))
            return False
        self._connected = True
        self._candidates = []
        self._backoff = INITIAL_BACKOFF
        self.away_since = None
        return True

    def _give_up_connect(self, reason: str) -> None:
        """The connect in progress failed: try the next address now, or
        back off when none is left."""
        self._close_socket()
        self._sock = None
        self.last_error = reason
        if not self._candidates:
            self._fail_connect(reason)

    def _fail_connect(self, reason: str) -> None:
        self.last_error = reason
        if self.away_since is None:
            self.away_since = time.time()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    # -- a connection lost -------------------------------------------------

    def _peer_still_there(self, sock: socket.socket) -> bool:
        """Whether the collector has neither closed nor reset the connection."""
        gone = peer_gone(sock)
        if gone is None:
            return True
        clean = gone == PEER_CLOSED and _unacknowledged(sock) == 0
        self._lose(gone, clean=clean)
        return False

    def _lose(self, reason: str, *, clean: bool = False) -> None:
        """The connection is gone: frames the collector may not have read
        go back to the head of the spool; reconnect at once."""
        again: list[bytes] = []
        if not clean and self._sent:
            since = self._sent[-1][0] - self.resend_window
            acknowledged = self._acknowledged
            again = [
                frame
                for sent_at, end, frame in self._sent
                if sent_at >= since or (acknowledged is not None and end > acknowledged)
            ]
        if self._current is not None:
            again.append(self._current.obj)  # type: ignore[arg-type]
        self.resent += len(again)
        self.spool.extendleft(reversed(again))
        self._close_socket()
        self._reset_connection()
        self.lost_because = reason
        if self.away_since is None:
            self.away_since = time.time()
        self._retry_at = 0.0

    def _note_acknowledged(self, sock: socket.socket) -> None:
        unacknowledged = _unacknowledged(sock)
        if unacknowledged is not None:
            self._acknowledged = self._stream_sent - unacknowledged

    def _record_sent(self, frame: bytes) -> None:
        now = time.monotonic()
        sent = self._sent
        sent.append((now, self._stream_sent, frame))
        too_old = now - self.resend_window
        acknowledged = self._acknowledged
        while sent and (
            len(sent) > self.limit
            or (
                sent[0][0] < too_old
                and (acknowledged is None or sent[0][1] <= acknowledged)
            )
        ):
            sent.popleft()

    def _close_socket(self) -> None:
        if self._sock is not None:
            # close(), never shutdown(): in a forked child the connection
            # is the parent's too.
            with contextlib.suppress(OSError):
                self._sock.close()


#: What :func:`peer_gone` says of a connection the peer closed.
PEER_CLOSED = "the collector closed the connection"


def peer_gone(sock: socket.socket) -> str | None:
    """Why the peer of ``sock`` is gone (it closed or reset the connection),
    or None while it is there; without waiting.  A receiver of logs sends
    nothing: whatever it does send is read and discarded.  One ``poll`` when
    it has sent nothing."""
    while wait_until(sock, READABLE, 0.0):
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError as error:  # reset
            return str(error)
        if not data:
            return PEER_CLOSED
    return None


def wait_until(sock: socket.socket, events: int, deadline: float) -> bool:
    """Whether ``sock`` is ready for ``events`` (or in error) by ``deadline``."""
    timeout = max(0.0, deadline - time.monotonic())
    poll = getattr(select, "poll", None)
    if poll is None:  # Windows
        wanted = [sock] if events & READABLE else []
        writable = [sock] if events & WRITABLE else []
        ready = select.select(wanted, writable, [sock], timeout)
        return any(ready)
    poller = poll()
    poller.register(sock, events)
    return bool(poller.poll(timeout * 1000))


def _unacknowledged(sock: socket.socket) -> int | None:
    """Bytes sent on ``sock`` the peer has not acknowledged, where the
    platform tells (Linux); else None."""
    if _UNACKNOWLEDGED_IOCTL is None:
        return None
    try:
        raw = fcntl.ioctl(sock.fileno(), _UNACKNOWLEDGED_IOCTL, struct.pack("i", 0))
    except OSError:
        return None
    count: int = struct.unpack("i", raw)[0]
    return count
