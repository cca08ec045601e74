"""Production server: N daphne worker processes on one port, sharing Redis and the database.

    manage.py chat_serve --workers 4 --port 8000 [--host 127.0.0.1] [-- <daphne options>]

The supervisor creates the listening sockets, so a worker that dies and is restarted gets the
same socket back: connections the kernel queued for it in the meantime wait in the backlog
instead of being refused. It forwards SIGTERM/SIGINT (each worker closes its sockets with
1001, chat.realtime.liveness) and exits when the workers have. README, "Production".
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

# As scripts/dev: Twisted's default of 50 overflows in a burst of reconnects
# (docs/performance.md, item 19). The kernel caps it at net.core.somaxconn.
LISTEN_BACKLOG = 1024
FIRST_BACKOFF, MAX_BACKOFF = 0.5, 30.0
# A worker that ran this long before dying is restarted at once again (back-off reset).
HEALTHY_SECONDS = 60.0
STOP_TIMEOUT = 30.0  # after a forwarded SIGTERM, before SIGKILL
# A worker whose restart waits this long (it keeps dying) has its SO_REUSEPORT socket closed
# meanwhile, while another worker is up: the kernel then sends its share of new connections
# to the others, instead of into a backlog nobody accepts from for up to MAX_BACKOFF.
PARK_SOCKET_BACKOFF = 2.0


def ipv4_address(host: str, port: int) -> str:
    """daphne's fd endpoint adopts a socket as AF_INET whatever it is: the host's IPv4
    address (a name such as localhost may resolve to ::1 first)."""
    try:
        info = socket.getaddrinfo(host, port, family=socket.AF_INET, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise CommandError(
            f"--workers > 1 serves IPv4 only (daphne --fd); {host!r} has no IPv4 address "
            f"({error.strerror})"
        ) from error
    return info[0][4][0]


def listening_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    address = ipv4_address(host, port)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # restart while TIME_WAITs linger
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address, port))
    except OSError as error:
        sock.close()
        raise CommandError(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(LISTEN_BACKLOG)
    sock.set_inheritable(True)
    return sock


def refuse_a_taken_port(host: str, port: int) -> None:
    """A bind without SO_REUSEPORT fails where anything listens already: another chat_serve
    (or a worker it left behind), whose SO_REUSEPORT sockets ours would otherwise join
    silently, each side then taking a share of the other's connections."""
    address = ipv4_address(host, port)
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind((address, port))
    except OSError as error:
        raise CommandError(f"{host}:{port} is in use ({error.strerror})") from error
    finally:
        probe.close()


def listening_sockets(host: str, port: int, count: int, reuse_port: bool) -> list[socket.socket]:
    """One socket per worker on one port (SO_REUSEPORT), or one shared by all."""
    if port:
        refuse_a_taken_port(host, port)
    sockets = [listening_socket(host, port, reuse_port)]
    port = sockets[0].getsockname()[1]  # --port 0: the one the kernel chose, for every worker
    try:
        for _ in range(count - 1):
            sockets.append(listening_socket(host, port, reuse_port) if reuse_port else sockets[0])
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> None:
    """In a new worker, before exec: SIGTERM it when the supervisor dies (SIGKILLed, OOM), as
    if forwarded, instead of leaving it up in its own process group, holding the port."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        return  # not Linux: no such guard
    if os.getppid() != parent_pid:  # it died before the guard was set
        os._exit(1)


@dataclass
class Worker:
    index: int
    sock: socket.socket
    command: list[str]
    process: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = FIRST_BACKOFF
    restart_at: float | None = None
    signalled: bool = False
    reuse_port: bool = False  # its own SO_REUSEPORT socket, which may be closed while it is down
    address: tuple[str, int] | None = None  # of its socket, while closed

    def close_socket(self) -> None:
        self.address = self.sock.getsockname()[:2]
        self.sock.close()

    def reopen_socket(self) -> None:
        self.sock = listening_socket(*self.address, reuse_port=True)
        at = self.command.index("--fd") + 1
        self.command = [*self.command[:at], str(self.sock.fileno()), *self.command[at + 1 :]]
        self.address = None

    def start(self) -> None:
        if self.address is not None:
            self.reopen_socket()
        # Own process group: a terminal's Ctrl+C reaches only the supervisor, which forwards
        # it once (a second SIGINT would make Twisted stop without the 1001 closes).
        self.process = subprocess.Popen(
            self.command,
            pass_fds=[self.sock.fileno()],
            process_group=0,
            preexec_fn=functools.partial(die_with_parent, os.getpid()),
        )
        self.started = time.monotonic()
        self.restart_at = None
        self.signalled = False

    def stop(self, signum: int) -> None:
        """Signal it once, even when the signal came while it was being started."""
        if not self.signalled:
            self.signalled = True
            self.process.send_signal(signum)


class Supervisor:
    def __init__(self, workers: list[Worker], log) -> None:
        self.workers = workers
        self.log = log
        self.stopping: int | None = None

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.forward)
        for worker in self.workers:
            if self.stopping is None:
                self.start(worker)
        while self.stopping is None:
            self.reap_and_restart()
            time.sleep(0.2)
        return self.wait_for_workers()

    def start(self, worker: Worker) -> None:
        try:
            worker.start()
        except CommandError as error:  # its closed socket could not be opened again
            self.log(f"worker {worker.index} not restarted: {error}; retrying", "ERROR")
            worker.restart_at = time.monotonic() + worker.backoff
            return
        host, port = worker.sock.getsockname()[:2]
        self.log(f"worker {worker.index} pid {worker.process.pid} listening on {host}:{port}")

    def forward(self, signum, _frame) -> None:
        """The signal handler: it only records the signal. The main loop logs and forwards it:
        a handler that wrote to stderr while the loop was writing there would raise
        RuntimeError (a reentrant call), crashing the supervisor with its workers left up."""
        if self.stopping is None:
            self.stopping = signum

    def running(self) -> list[Worker]:
        return [w for w in self.workers if w.process and w.process.poll() is None]

    def reap_and_restart(self) -> None:
        now = time.monotonic()
        for worker in self.workers:
            if worker.restart_at is not None:
                if now >= worker.restart_at:
                    self.start(worker)
            elif worker.process.poll() is not None:
                self.schedule_restart(worker, now)

    def schedule_restart(self, worker: Worker, now: float) -> None:
        if now - worker.started >= HEALTHY_SECONDS:
            worker.backoff = FIRST_BACKOFF
        self.log(
            f"worker {worker.index} pid {worker.process.pid} died unexpectedly "
            f"(status {worker.process.returncode}); restarting in {worker.backoff:g}s"
        )
        worker.restart_at = now + worker.backoff
        if worker.reuse_port and worker.address is None and worker.backoff >= PARK_SOCKET_BACKOFF:
            if any(w is not worker for w in self.running()):
                self.log(
                    f"worker {worker.index} keeps dying: its socket is closed until it restarts "
                    "(the other workers take its new connections)"
                )
                worker.close_socket()
        worker.backoff = min(worker.backoff * 2, MAX_BACKOFF)

    def wait_for_workers(self) -> int:
        self.log(f"{signal.Signals(self.stopping).name}: stopping {len(self.workers)} workers")
        for worker in self.running():
            worker.stop(self.stopping)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        killed = self.running()
        for worker in killed:
            self.log(f"worker {worker.index} pid {worker.process.pid} still up: SIGKILL")
            worker.process.kill()
            worker.process.wait()
        self.log("all workers stopped")
        # Not 0 when a worker had to be killed: its sockets got no 1001, and systemd should
        # record the stop as unclean.
        return 1 if killed else 0


class Command(BaseCommand):
    help = "Serve the chat with N daphne workers on one port (all share Redis and the database)."

    def add_arguments(self, parser):
        parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--application", default="crm_backend.asgi:application")
        parser.add_argument(
            "--shared-socket",
            action="store_true",
            help="one listening socket inherited by all workers instead of one SO_REUSEPORT "
            "socket per worker (docs/scaling.md, 'Workers on one machine')",
        )
        parser.add_argument("daphne_args", nargs="*", help="after --: passed to every daphne")

    def handle(self, *args, **options):
        workers = options["workers"]
        if workers < 1:
            raise CommandError("--workers must be at least 1")
        if workers > 1:
            self.check_shared_services()
        daphne = [sys.executable, "-m", "daphne", *options["daphne_args"]]
        if workers == 1:
            self.exec_plain_daphne(daphne, options)
        sys.exit(self.supervise(daphne, options))

    def check_shared_services(self) -> None:
        if not getattr(settings, "REDIS_URL", ""):
            raise CommandError(
                "--workers > 1 needs REDIS_URL: without it each worker has its own in-memory "
                "channel layer, which cannot cross processes, so members of one room on "
                "different workers would not see each other's messages or presence."
            )
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            self.log(
                "PROMETHEUS_MULTIPROC_DIR is unset: /metrics on the shared port reports "
                "only the worker the scrape lands on (README, 'Metrics')."
            )
        if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
            self.log(
                "SQLite with several workers: one writer at a time across processes "
                "(writes wait on its lock); use PostgreSQL (DATABASE_URL) in production.",
                "WARNING",
            )

    def exec_plain_daphne(self, daphne: list[str], options) -> None:
        """One worker is plain daphne, as scripts/dev runs it: this process becomes it."""
        host = options["host"].replace(":", r"\:")
        listen = f"tcp:port={options['port']}:interface={host}:backlog={LISTEN_BACKLOG}"
        sys.stdout.flush()
        os.execv(daphne[0], [*daphne, "-e", listen, options["application"]])

    def supervise(self, daphne: list[str], options) -> int:
        sockets = listening_sockets(
            options["host"], options["port"], options["workers"], not options["shared_socket"]
        )
        reuse_port = not options["shared_socket"]
        workers = [
            Worker(
                index,
                sock,
                [*daphne, "--fd", str(sock.fileno()), options["application"]],
                reuse_port=reuse_port,
            )
            for index, sock in enumerate(sockets, start=1)
        ]
        return Supervisor(workers, self.log).run()

    def log(self, line: str, level: str = "INFO") -> None:
        # Timestamped like the workers' log lines, so a restart can be timed from the log.
        stamp = datetime.now().strftime("%Y-%m-%d %H:%M:%S,%f")[:-3]
        self.stderr.write(f"{stamp} {level} chat_serve {line}")
        self.stderr.flush()
