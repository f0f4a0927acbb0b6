"""Fork-safe drop-in replacements for ``logging.handlers.SocketHandler``,
``DatagramHandler`` and ``SysLogHandler``.

Outside of fork they behave, and write, exactly as the standard classes they
subclass.  Across fork they add one rule: **a child never writes on its
parent's socket.**  A socket inherited through ``fork()`` is one connection
shared by two processes; if both write to it, their bytes interleave on the
wire and the receiver sees torn, merged or misframed records.  So in a forked
child each handler:

* closes its own copy of the inherited socket's descriptor, and only that: it
  never calls ``shutdown()``, which would end the connection for the parent
  too, and the parent goes on using it undisturbed;
* forgets the socket, and any back-off from failed connections, so that its
  next record opens a connection (or datagram socket) of its own at once.

The reconnection happens on the child's next record, in the thread that logs
it, never in the at-fork hook: a fork is never delayed by network I/O.

Records the standard handlers drop without a word (``SocketHandler`` while
it cannot connect, or when a send fails; ``SysLogHandler`` over TCP when the
connection breaks) are counted, and reported once per outage, with the
count, through ``handleError`` when a record gets through again, or by
``flush()``, ``close()``, ``safelog.flush()`` and the exit hooks.
``SysLogHandler`` over TCP also reconnects on the next record after a broken
connection, as the standard one does not.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import socket
import sys
import time
import weakref
from socket import SocketKind
from socket import socket as Socket
from typing import Any

from . import _pending
from ._delivery import note_record
from ._handlers import ForkSafeHandler
from ._spool import peer_gone

__all__ = ["DatagramHandler", "SocketHandler", "SysLogHandler"]


class RecordsDropped(Exception):
    """Reported through ``handleError``: records a network handler dropped
    while its receiver was unreachable."""


class Outage:
    """Records dropped while a receiver is unreachable: counted from the
    first, reported once, with the count, when the outage ends."""

    def __init__(self) -> None:
        self.dropped = 0
        self.since = 0.0
        self.reason = ""

    def drop(self, handler: _ReportsDrops, reason: str) -> None:
        if not self.dropped:
            self.since = time.time()
            _dropping.add(handler)  # safelog.flush() and exit report it
        self.dropped += 1
        self.reason = reason

    def report(self, handler: _ReportsDrops, how_it_ended: str) -> None:
        """Report the records dropped so far, if any, and start counting
        afresh."""
        if not self.dropped:
            return
        dropped, self.dropped = self.dropped, 0
        _dropping.discard(handler)
        try:
            raise RecordsDropped(
                f"{handler!r} dropped {dropped} record(s) from "
                f"{time.ctime(self.since)} until {how_it_ended}: {self.reason}"
            )
        except RecordsDropped:
            handler.handleError(note_record(f"({dropped} record(s) dropped)"))


class _ReportsDrops(ForkSafeHandler):
    """A network handler that counts the records it drops (in ``_outage``)
    and reports them once per outage."""

    _outage: Outage

    def _report_drops(self, how_it_ended: str) -> None:
        """Report, through ``handleError``, the records dropped and not
        reported yet, with their count."""
        self.acquire()
        try:
            self._outage.report(self, how_it_ended)
        finally:
            self.release()

    def flush(self) -> None:
        """Report the records dropped and not reported yet (a record is sent
        as it is logged: nothing else to flush)."""
        self._report_drops("flush()")

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        state = super()._safelog_state(handler)
        state["_outage"] = Outage()
        return state

    def _forget_parents_drops(self) -> None:
        """In a forked child: the parent reports its own drops."""
        self._outage = Outage()
        _dropping.discard(self)


# The network handlers of this process with drops not reported yet.
_dropping: weakref.WeakSet[_ReportsDrops] = weakref.WeakSet()


def _report_all(how_it_ended: str) -> None:
    for handler in list(_dropping):
        try:
            handler._report_drops(how_it_ended)
        except Exception:  # one broken handler must not cost the others
            continue


_pending.register(
    _pending.DROP_REPORTS,
    lambda: _report_all("safelog.flush()"),
    lambda: _report_all("the process exited"),
)


def _drop_inherited_socket(sock: Socket | None) -> None:
    """Close this process's descriptor of ``sock``, never its connection.

    ``close()`` releases one descriptor; the connection lives on in every
    other process that holds one (the parent).  ``shutdown()`` would end it for
    all of them, so it is never called, here or by the socket's finalizer
    (CPython's only closes the descriptor).
    """
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()


class SocketHandler(_ReportsDrops, logging.handlers.SocketHandler):
    """``logging.handlers.SocketHandler`` whose forked children connect anew.

    Same signature, attributes and bytes on the wire (length-prefixed pickles)
    as the standard handler.  Each record is sent by one ``sendall`` under the
    handler lock, so records from the threads of one process never interleave.
    In a forked child the inherited connection is dropped without being shut
    down (the parent keeps using it), the reconnection back-off is cleared, and
    the child's next record opens a connection of its own: the receiver sees
    the child as a separate connection, and neither process tears the other's
    records.  A record a parent thread was sending at the instant of fork is
    sent by that thread only, never by the child.
    """

    # Why the last connect failed, for the report of the records dropped
    # meanwhile.
    _connect_error: str

    def __init__(self, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self._register_for_fork()

    @classmethod
    def _safelog_state(cls, handler: Any) -> dict[str, Any]:
        state = super()._safelog_state(handler)
        state["_connect_error"] = ""
        return state

    def makeSocket(self, timeout: float = 1) -> Socket:
        """Connect as the standard handler does; remember why a connect
        failed, for the report of the records dropped meanwhile."""
        try:
            return super().makeSocket(timeout)
        except OSError as error:
            self._connect_error = f"cannot connect: {error}"
            raise

    def send(self, s: Any) -> None:
        """Send ``s`` as the standard handler does; a record it would drop
        without a word (no connection, or a failed send) is counted, and
        reported when a record gets through again or the handler closes."""
        if self.sock is not None and peer_gone(self.sock) is not None:
            self.sock.close()
            self.sock = None
        if self.sock is None:
            self.createSocket()
        if not self.sock:
            self._outage.drop(self, self._connect_error or "not connected")
            return
        try:
            self.sock.sendall(s)
        except OSError as error:
            self.sock.close()
            self.sock = None  # the next record connects again
            self._outage.drop(self, f"send failed: {error}")
            return
        self._outage.report(self, "a record got through again")

    def handleError(self, record: logging.LogRecord) -> None:
        """As the standard handler; a report of dropped records is printed
        even with ``closeOnError`` (it is about the connection, not from
        it)."""
        if self.closeOnError and isinstance(sys.exc_info()[1], RecordsDropped):
            logging.Handler.handleError(self, record)
        else:
            super().handleError(record)

    def close(self) -> None:
        """Close the socket and the handler; report records dropped and
        not reported yet."""
        self._report_drops("the handler closed")
        super().close()

    def _start_afresh_in_child(self) -> None:
        _drop_inherited_socket(self.sock)
        self.sock = None
        self.retryTime = None  # the parent's back-off is not the child's
        self._forget_parents_drops()


class DatagramHandler(SocketHandler, logging.handlers.DatagramHandler):
    """``logging.handlers.DatagramHandler`` whose forked children send from a
    socket of their own.

    Same signature, attributes and datagrams as the standard handler.  A
    datagram is never torn, but a child sharing its parent's socket shares its
    source address, so the receiver cannot tell them apart; in a forked child
    the inherited socket is dropped and the next record creates a new one.
    Delivery is the datagram's: not guaranteed, not ordered.
    """

    # The standard datagram socket and send: no connect to fail, and a
    # failed send raises, to handleError for its record: nothing is dropped
    # without a word.
    makeSocket = logging.handlers.DatagramHandler.makeSocket  # type: ignore[assignment]
    send = logging.handlers.DatagramHandler.send


# 3.11 added SysLogHandler.createSocket, which emit() calls whenever there is
# no socket; on 3.9 and 3.10 the socket is made once, in __init__.
_STDLIB_SYSLOG_RECONNECTS = sys.version_info >= (3, 11)


class SysLogHandler(_ReportsDrops, logging.handlers.SysLogHandler):
    """``logging.handlers.SysLogHandler`` whose forked children connect anew.

    Same signature, attributes and bytes on the wire as the standard handler
    (over TCP: no octet counting, each record followed by ``"\\000"`` while
    ``append_nul`` is true, so the receiver must split on NUL or on a line end
    the formatter adds; see ``docs/many-processes-syslog.md``).  Each record
    is sent by one ``send``, ``sendto`` or ``sendall`` under the handler lock.
    In a forked child the inherited socket (UDP, TCP or Unix) is dropped
    without being shut down, and the child's next record creates a socket of
    its own (on 3.9 and 3.10 too, where the standard handler never
    reconnects): over TCP each process has its own connection, so records
    from parent and children arrive whole and exactly once.
    """

    # Not in typeshed's stub; None between a child's fork and its next record.
    socket: Socket | None

    def __init__(
        self,
        address: tuple[str, int] | str = (
            "localhost",
            logging.handlers.SYSLOG_UDP_PORT,
        ),
        facility: str | int = logging.handlers.SysLogHandler.LOG_USER,
        socktype: SocketKind | None = None,
    ) -> None:
        super().__init__(address, facility, socktype)
        self._register_for_fork()

    def _start_afresh_in_child(self) -> None:
        _drop_inherited_socket(self.socket)
        self.socket = None
        self._forget_parents_drops()

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` as the standard handler does, first creating the
        socket a forked child dropped (3.11+ does that itself).  Over TCP, a
        record that cannot be sent is counted, not reported one by one, and
        the next record connects again; the count is reported when a record
        gets through again or the handler closes.  A connection the
        receiver closed is noticed before a record is sent on it."""
        if self._tcp and self.socket is not None and peer_gone(self.socket) is not None:
            self.socket.close()
            self.socket = None
        if not _STDLIB_SYSLOG_RECONNECTS and self.socket is None:
            try:
                self._create_socket()
            except Exception:
                self.handleError(record)
                return
        super().emit(record)
        if self._outage.dropped and self.socket is not None:
            self._outage.report(self, "a record got through again")

    def handleError(self, record: logging.LogRecord) -> None:
        """As the standard handler, but over TCP a failed connect or send
        counts as a dropped record, and drops the broken connection."""
        if self._tcp and isinstance(sys.exc_info()[1], OSError):
            if self.socket is not None:
                with contextlib.suppress(OSError):
                    self.socket.close()
            self.socket = None  # the next record connects again
            self._outage.drop(self, str(sys.exc_info()[1]))
            return
        super().handleError(record)

    @property
    def _tcp(self) -> bool:
        return self.socktype == socket.SOCK_STREAM and not self.unixsocket

    def close(self) -> None:
        """Close the socket, if any, and the handler; report records dropped
        and not reported yet."""
        self.acquire()
        try:
            self._report_drops("the handler closed")
            if self.socket is None:
                # 3.9 and 3.10 close() expects a socket; a child that has not
                # logged since the fork has none.
                logging.Handler.close(self)
            else:
                super().close()
        finally:
            self.release()

    def _create_socket(self) -> None:
        # What 3.11's createSocket() does, for 3.9 and 3.10.  __init__ has
        # already resolved self.socktype to the type in use.
        if isinstance(self.address, str):
            # As __init__: an absent local daemon is an error only on send.
            with contextlib.suppress(OSError):
                self._connect_unixsocket(self.address)  # type: ignore[attr-defined]
            return
        host, port = self.address
        last_error: OSError = OSError("getaddrinfo returns an empty list")
        for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, 0, self.socktype
        ):
            sock = None
            try:
                sock = socket.socket(family, kind, proto)
                if kind == socket.SOCK_STREAM:
                    sock.connect(address)
            except OSError as error:
                last_error = error
                if sock is not None:
                    sock.close()
                continue
            self.socket = sock
            return
        raise last_error
