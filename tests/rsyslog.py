"""A real rsyslogd of a test's own, for the tests that log to syslog.

Never the system's service, never ``/dev/log``: each daemon has a
configuration of its own in the test's temporary directory, with inputs on
loopback ports chosen free at run time.  It counts as started once a probe
message sent to every input is written.  Where rsyslogd is not installed or
does not start, the test skips with the reason; with ``CI`` set it fails
instead, so that CI proves the daemon ran.  ``scripts/ci-setup`` installs it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest

#: Every probe message holds this; :meth:`Rsyslog.lines` leaves them out.
PROBE = "safelog-probe"


@dataclasses.dataclass
class Rsyslog:
    """An rsyslogd of a test's own, which may be stopped and started again
    on the same ports, appending to the same output file.

    ``config`` is formatted with ``work`` (its work directory), ``output``
    (the file its rules write) and each name of ``ports``; a port whose name
    starts with ``udp`` is a UDP input, any other a TCP one."""

    rsyslogd: str
    directory: pathlib.Path
    config: str
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None

    @property
    def output(self) -> pathlib.Path:
        return self.directory / "messages.log"

    def text(self) -> str:
        try:
            return self.output.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def lines(self) -> list[str]:
        """The lines written so far, probes left out."""
        return [line for line in self.text().splitlines() if PROBE not in line]

    def start(self, timeout: float = 10.0) -> None:
        """Start the daemon and wait until every input delivers a probe."""
        config = self.directory / "rsyslog.conf"
        config.write_text(
            self.config.format(work=self.directory, output=self.output, **self.ports)
        )
        before = self._probes_written()
        with open(self.directory / "rsyslogd.out", "ab") as log:
            self.process = subprocess.Popen(
                [
                    self.rsyslogd,
                    "-n",
                    "-f",
                    str(config),
                    "-i",
                    str(self.directory / "pid"),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.directory,
                start_new_session=True,  # its own process group: we stop only that
            )
        deadline = time.monotonic() + timeout
        sent: set[str] = set()
        while time.monotonic() < deadline and self.process.poll() is None:
            for name in set(self.ports) - sent:
                if self._probe(name):
                    sent.add(name)
            time.sleep(0.1)
            written = self._probes_written()
            if all(written[name] > before[name] for name in self.ports):
                return
        self.stop()
        said = (self.directory / "rsyslogd.out").read_text(errors="replace").strip()
        raise RuntimeError(f"rsyslogd did not deliver its probes in time: {said!r}")

    def _probes_written(self) -> dict[str, int]:
        text = self.text()
        return {name: text.count(f"{PROBE} {name}") for name in self.ports}

    def _probe(self, name: str) -> bool:
        """Send one probe to input ``name``; whether it was sent (a TCP
        input not listening yet refuses it)."""
        # A tag first: rsyslog takes the first word of a message without one.
        message = f"<14>probe: {PROBE} {name}\n".encode()
        address = ("127.0.0.1", self.ports[name])
        if name.startswith("udp"):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(message, address)
            return False  # a datagram may be lost: send one each round
        try:
            with socket.create_connection(address, 1) as tcp:
                tcp.sendall(message)
        except OSError:
            return False
        return True

    def wait_for(
        self, count: int, timeout: float = 20.0, quiet: float | None = None
    ) -> None:
        """Wait until at least ``count`` lines are written (or, with
        ``quiet``, until none has come for that many seconds), then stop the
        daemon so that everything it received is in the file."""
        deadline = time.monotonic() + timeout
        written = len(self.lines())
        last_change = time.monotonic()
        while written < count and time.monotonic() < deadline:
            time.sleep(0.05)
            now = len(self.lines())
            if now != written:
                written, last_change = now, time.monotonic()
            elif quiet is not None and time.monotonic() - last_change > quiet:
                break
        self.stop()

    def stop(self) -> None:
        """Stop the daemon (it writes out what it has read), or kill it."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def skip_or_fail(reason: str) -> None:
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"CI must run the rsyslog tests: {reason}", pytrace=False)
    pytest.skip(reason)


def launch(
    directory: pathlib.Path, config: str, port_names: tuple[str, ...]
) -> Rsyslog:
    """A started rsyslogd in ``directory`` (see :class:`Rsyslog`), or skip
    (fail in CI) when there is none to start."""
    rsyslogd = shutil.which("rsyslogd") or shutil.which(
        "rsyslogd", path="/usr/sbin:/sbin"
    )
    if rsyslogd is None:
        skip_or_fail("rsyslogd is not installed (scripts/ci-setup installs it)")
        raise AssertionError("unreachable")
    errors = []
    for attempt in range(3):  # a port chosen free may be taken before use
        ports = {
            name: free_port(
                socket.SOCK_DGRAM if name.startswith("udp") else socket.SOCK_STREAM
            )
            for name in port_names
        }
        daemon = Rsyslog(rsyslogd, directory / f"rsyslog-{attempt}", config, ports)
        daemon.directory.mkdir()
        try:
            daemon.start()
            return daemon
        except (OSError, RuntimeError) as error:
            errors.append(str(error))
    skip_or_fail(f"rsyslogd did not start: {errors[-1]}")
    raise AssertionError("unreachable")
