"""``safelog.RFC5424Handler``: RFC 5424 syslog over TCP, framed by octet
counting (RFC 6587), that keeps what it cannot send while the collector is
away and sends it when the collector is back.

Each record becomes one message::

    <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [meta sequenceId="N"] MSG

sent as ``LENGTH SP MESSAGE``, so a message may hold any bytes, line ends
included.  ``sequenceId`` (RFC 5424, section 7.3.1) counts this handler's
messages in this process from 1; with PROCID it tells a receiver which
message a copy repeats when one is sent again after a lost connection (see
``_spool``).
"""

from __future__ import annotations

import datetime
import logging
import logging.handlers
import math
import os
import socket
import sys
import time
import weakref
from typing import Any

from . import _pending
from ._delivery import note_record
from ._handlers import ForkSafeHandler
from ._spool import SpooledConnection

__all__ = ["RFC5424Handler"]

_SEQUENCE_MAX = 2_147_483_647  # RFC 5424: then it starts again from 1
# A flush() takes the handler lock for steps this long at most, so that
# other threads log (into the spool) while it waits for the collector.
_FLUSH_STEP = 0.05

# Every live RFC5424Handler, for safelog.flush() and the exit hooks.
_live_rfc5424_handlers: weakref.WeakSet[RFC5424Handler] = weakref.WeakSet()


def _severity(levelno: int) -> int:
    """The syslog severity of a logging level (as SysLogHandler maps the
    standard levels; a level between two takes the lower one's)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def _timestamp(created: float) -> str:
    """RFC 5424 TIMESTAMP: local time, microseconds, offset from UTC."""
    local = datetime.datetime.fromtimestamp(created).astimezone()
    return local.isoformat(timespec="microseconds")


def _header_field(name: str, value: Any, longest: int) -> str:
    """``value`` checked as an RFC 5424 header field: 1 to ``longest``
    printable US-ASCII characters, no space."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {value!r}")
    if not 0 < len(value) <= longest or not all(33 <= ord(c) <= 126 for c in value):
        raise ValueError(
            f"{name} must be 1 to {longest} printable ASCII characters without "
            f"spaces (RFC 5424), got {value!r}"
        )
    return value


def _fitted(value: str, longest: int) -> str:
    """A derived header field made valid: other characters become ``_``."""
    kept = "".join(c if 33 <= ord(c) <= 126 else "_" for c in value)[:longest]
    return kept or "-"


def _facility(value: Any) -> int:
    if isinstance(value, str):
        names = logging.handlers.SysLogHandler.facility_names
        if value not in names:
            raise ValueError(
                f"facility must be one of {sorted(names)} or 0 to 23, got {value!r}"
            )
        return names[value]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"facility must be an int or a facility name, got {value!r}")
    if not 0 <= value <= 23:
        raise ValueError(f"facility must be 0 to 23, got {value!r}")
    return value


def _check_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _address(value: Any) -> tuple[str, int]:
    # dictConfig gives a list where code gives a tuple.
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"address must be a (host, port) pair, got {value!r}")
    host, port = value
    if not isinstance(host, str) or isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"address must be a (str, int) pair, got {value!r}")
    if not 0 < port < 65536:
        raise ValueError(f"address port must be 1 to 65535, got {port!r}")
    return host, port


class RFC5424Handler(ForkSafeHandler):
    """RFC 5424 syslog over TCP with octet counting; nothing is lost while
    the collector restarts.

    A log call formats the record (the handler's formatter makes MSG), puts
    the message in a spool of at most ``spool_size`` messages and sends what
    the connection takes, waiting for the network at most ``timeout``
    seconds itself (it may also wait for the handler lock while another
    thread is in that wait).  What is not sent by then is sent, in order,
    by a later log call, :meth:`flush`, or at exit.

    While the collector is unreachable, messages wait in the spool and the
    handler reconnects with a back-off (0.1 s doubling to 2 s).  A message
    logged into a full spool is dropped and counted in :attr:`dropped`.
    When a connection is lost, the messages sent in its last
    ``resend_window`` seconds are sent again (TCP cannot tell which of them
    the collector read), counted in :attr:`resent`.  Both are reported by a
    warning message from logger ``"safelog"`` once the collector is back;
    messages still spooled when the handler closes are reported through
    :meth:`handleError`.

    Fork: a forked child drops its copy of the parent's connection without
    shutting it down and starts with an empty spool: the parent alone sends
    what it spooled.  A child also notices a fork that skipped the at-fork
    hooks (its process id changed).  ``safelog.flush()``, the exit hooks
    (also in ``multiprocessing`` children) and :meth:`close` send the spool,
    waiting at most ``flush_timeout`` seconds for the collector.
    """

    def __init__(
        self,
        address: tuple[str, int] = ("localhost", 514),
        *,
        facility: int | str = logging.handlers.SysLogHandler.LOG_USER,
        hostname: str | None = None,
        app_name: str | None = None,
        msgid: str = "-",
        spool_size: int = 10_000,
        timeout: float = 0.1,
        flush_timeout: float = 2.0,
        resend_window: float = 0.2,
    ) -> None:
        super().__init__()
        self.address = _address(address)
        self.facility = _facility(facility)
        self.hostname = (
            _fitted(socket.gethostname(), 255)
            if hostname is None
            else _header_field("hostname", hostname, 255)
        )
        self.app_name = (
            _fitted(os.path.basename(sys.argv[0]) if sys.argv else "", 48)
            if app_name is None
            else _header_field("app_name", app_name, 48)
        )
        self.msgid = _header_field("msgid", msgid, 32)
        if isinstance(spool_size, bool) or not isinstance(spool_size, int):
            raise TypeError(f"spool_size must be an int, got {spool_size!r}")
        if spool_size < 1:
            raise ValueError(f"spool_size must be at least 1, got {spool_size!r}")
        self.timeout = _check_seconds("timeout", timeout)
        self.flush_timeout = _check_seconds("flush_timeout", flush_timeout)
        self._connection = SpooledConnection(
            self.address,
            limit=spool_size,
            resend_window=_check_seconds("resend_window", resend_window),
        )
        self._start_counting()
        self._exiting = False
        self._closed = False
        self._register_for_fork()
        _live_rfc5424_handlers.add(self)

    def _start_counting(self) -> None:
        self._pid = os.getpid()
        self._sequence = 0
        self._dropped_reported = 0
        self._resent_reported = 0
        self._unsent_reported = (0, 0)

    @property
    def spool_size(self) -> int:
        """Messages the spool holds before a new one is dropped."""
        return self._connection.limit

    @property
    def resend_window(self) -> float:
        """Seconds of a lost connection whose messages are sent again."""
        return self._connection.resend_window

    @property
    def dropped(self) -> int:
        """Messages dropped in this process because the spool was full."""
        return self._connection.dropped

    @property
    def resent(self) -> int:
        """Messages sent again in this process after a lost connection."""
        return self._connection.resent

    def emit(self, record: logging.LogRecord) -> None:
        """Spool ``record`` as one message and send what the connection
        takes within ``timeout``."""
        if self._pid != os.getpid():  # a fork that skipped the at-fork hooks
            self._start_afresh_in_child()
        try:
            self._connection.put(self._message(record))
            self._send(self.timeout)
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Send everything spooled, waiting at most ``flush_timeout`` seconds
        for the collector (other threads may log meanwhile); what is still
        spooled then stays spooled, and is reported through
        :meth:`handleError`."""
        if self._pid != os.getpid():
            return  # the parent's spool: nothing of this process's
        self._wait_for_collector(0.0 if self._exiting else self.flush_timeout)
        self._report_unsent("flush() gave up waiting for the collector")

    def close(self) -> None:
        """Send what is spooled, as :meth:`flush` does; report what was not
        sent, and close the connection."""
        if self._closed:
            return
        if self._pid == os.getpid():
            self._wait_for_collector(0.0 if self._exiting else self.flush_timeout)
        self.acquire()
        try:
            self._report_unsent("closed")
            self._closed = True
            _live_rfc5424_handlers.discard(self)
            self._connection.close()
            self._connection.spool.clear()
        finally:
            self.release()
        super().close()

    def _wait_for_collector(self, seconds: float) -> None:
        """Send the spool, waiting at most ``seconds``; the handler lock is
        taken for short steps only, so other threads log meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            self.acquire()
            try:
                self._send(min(_FLUSH_STEP, max(0.0, deadline - time.monotonic())))
                if not self._connection.pending:
                    return
                pause = self._connection.retry_in()
            finally:
                self.release()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(max(pause, 0.001), left))

    def _report_unsent(self, why: str) -> None:
        """Report, through :meth:`handleError`, the messages still spooled
        and the drops not reported yet (unless this very count was reported
        last)."""
        connection = self._connection
        unsent = connection.pending
        dropped = connection.dropped - self._dropped_reported
        if (unsent, dropped) == self._unsent_reported or not (unsent or dropped):
            return
        self._unsent_reported = (unsent, dropped)
        since = connection.away_since
        away = "" if since is None else f", unreachable since {time.ctime(since)}"
        try:
            raise ConnectionError(
                f"{self!r} {why}: {unsent} message(s) not sent and {dropped} "
                f"dropped (spool full); {self.address[0]}:{self.address[1]}: "
                f"{connection.last_error or 'not connected'}{away}"
            )
        except ConnectionError:
            self.handleError(note_record(f"({why})"))

    def _send(self, wait: float) -> None:
        """Send within ``wait``; once connected, report what was dropped or
        sent again since the last report (the report goes out first)."""
        connection = self._connection
        connection.pump(wait)
        if not connection.connected:
            return
        dropped = connection.dropped - self._dropped_reported
        resent = connection.resent - self._resent_reported
        if not dropped and not resent:
            return
        self._dropped_reported = connection.dropped
        self._resent_reported = connection.resent
        where = f"{self.address[0]}:{self.address[1]}"
        parts = []
        if dropped:
            parts.append(
                f"dropped {dropped} message(s): the spool was full "
                f"({connection.limit}) while {where} was unreachable"
            )
        if resent:
            parts.append(
                f"sent {resent} message(s) again after the connection to {where} "
                f"was lost ({connection.lost_because}); a copy with the PROCID and "
                f"sequenceId of a message received before repeats it"
            )
        note = note_record(
            "safelog.RFC5424Handler " + "; ".join(parts), logging.WARNING
        )
        connection.put_over_limit(self._message(note))
        connection.pump(0.0)

    def _message(self, record: logging.LogRecord) -> bytes:
        """``record`` as one octet-counted RFC 5424 message."""
        text = self.format(record)
        self._sequence = self._sequence % _SEQUENCE_MAX + 1
        procid = "-" if record.process is None else str(record.process)
        header = (
            f"<{self.facility * 8 + _severity(record.levelno)}>1 "
            f"{_timestamp(record.created)} {self.hostname} {self.app_name} "
            f'{procid} {self.msgid} [meta sequenceId="{self._sequence}"]'
        ).encode("ascii")
        if text:
            header += b" " + text.encode("utf-8", "backslashreplace")
        return b"%d %s" % (len(header), header)

    # -- fork and exit -------------------------------------------------------

    def _start_afresh_in_child(self) -> None:
        self._connection.forget()
        self._start_counting()
        self._exiting = False
        if not self._closed:
            _live_rfc5424_handlers.add(self)

    def _ready_for_exit(self) -> None:
        """Exit hook: send the spool (within ``flush_timeout``) and report
        what was not sent; after that a flush or close at exit waits no
        more."""
        self.flush()
        self._exiting = True

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<safelog.RFC5424Handler {self.address[0]}:{self.address[1]} ({level})>"


def _flush_all() -> None:
    for handler in list(_live_rfc5424_handlers):
        handler.flush()


def _ready_all_for_exit() -> None:
    for handler in list(_live_rfc5424_handlers):
        try:
            handler._ready_for_exit()
        except Exception:  # one broken handler must not cost the others
            continue


_pending.register(_pending.SPOOLS, _flush_all, _ready_all_for_exit)
