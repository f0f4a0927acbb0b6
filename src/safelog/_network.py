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
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import socket
import sys
from socket import SocketKind
from socket import socket as Socket

from ._handlers import _ForkSafeHandler

__all__ = ["DatagramHandler", "SocketHandler", "SysLogHandler"]


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


class SocketHandler(_ForkSafeHandler, logging.handlers.SocketHandler):
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

    def __init__(self, host: str, port: int | None) -> None:
        super().__init__(host, port)
        self._register_for_fork()

    def _start_afresh_in_child(self) -> None:
        _drop_inherited_socket(self.sock)
        self.sock = None
        self.retryTime = None  # the parent's back-off is not the child's


class DatagramHandler(SocketHandler, logging.handlers.DatagramHandler):
    """``logging.handlers.DatagramHandler`` whose forked children send from a
    socket of their own.

    Same signature, attributes and datagrams as the standard handler.  A
    datagram is never torn, but a child sharing its parent's socket shares its
    source address, so the receiver cannot tell them apart; in a forked child
    the inherited socket is dropped and the next record creates a new one.
    Delivery is the datagram's: not guaranteed, not ordered.
    """


# 3.11 added SysLogHandler.createSocket, which emit() calls whenever there is
# no socket; on 3.9 and 3.10 the socket is made once, in __init__.
_STDLIB_SYSLOG_RECONNECTS = sys.version_info >= (3, 11)


class SysLogHandler(_ForkSafeHandler, logging.handlers.SysLogHandler):
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

    def emit(self, record: logging.LogRecord) -> None:
        """Send ``record`` as the standard handler does, first creating the
        socket a forked child dropped (3.11+ does that itself)."""
        if not _STDLIB_SYSLOG_RECONNECTS and self.socket is None:
            try:
                self._create_socket()
            except Exception:
                self.handleError(record)
                return
        super().emit(record)

    def close(self) -> None:
        """Close the socket, if any, and the handler."""
        self.acquire()
        try:
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
