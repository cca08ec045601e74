"""manage.py chat_serve without starting servers: refusals, sockets, the restart back-off.
The workers themselves run in tests/e2e/test_workers.py."""

import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from chat.management.commands import chat_serve
from chat.management.commands.chat_serve import LISTEN_BACKLOG, Supervisor, Worker


def test_several_workers_without_redis_are_refused(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match=r"needs REDIS_URL.*cannot cross processes"):
        call_command("chat_serve", "--workers=2")


def test_zero_workers_are_refused():
    with pytest.raises(CommandError, match="at least 1"):
        call_command("chat_serve", "--workers=0")


def test_an_ipv6_host_is_refused_with_the_reason():
    with pytest.raises(CommandError, match="IPv4 only"):
        chat_serve.listening_socket("::1", 0, reuse_port=True)


def test_reuse_port_sockets_share_one_port_and_are_inheritable():
    first = chat_serve.listening_socket("127.0.0.1", 0, reuse_port=True)
    port = first.getsockname()[1]
    second = chat_serve.listening_socket("127.0.0.1", port, reuse_port=True)
    try:
        assert second.getsockname()[1] == port
        assert first.get_inheritable() and second.get_inheritable()
        assert first.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        first.close()
        second.close()
    assert LISTEN_BACKLOG == 1024


def test_a_dying_worker_is_restarted_with_a_doubling_back_off():
    lines = []
    sock = socket.socket()
    worker = Worker(1, sock, [sys.executable, "-c", "raise SystemExit(3)"])
    supervisor = Supervisor([worker], lines.append)
    supervisor.start(worker)
    worker.process.wait()
    delays = []
    for _ in range(4):
        supervisor.schedule_restart(worker, now=worker.started + 1)
        delays.append(worker.restart_at - (worker.started + 1))
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert "died unexpectedly (status 3); restarting in 0.5s" in lines[1]
    supervisor.schedule_restart(worker, now=worker.started + 61)  # it had run a minute: reset
    assert worker.restart_at - (worker.started + 61) == 0.5
    sock.close()


def test_one_worker_execs_plain_daphne(monkeypatch):
    execs = []
    monkeypatch.setattr(chat_serve.os, "execv", lambda path, argv: execs.append(argv))
    monkeypatch.setattr(chat_serve.Command, "supervise", lambda *a: 0)
    with pytest.raises(SystemExit):  # the real execv never returns; this one does
        call_command("chat_serve", "--workers=1", "--port=8123")
    (argv,) = execs
    assert argv[1:3] == ["-m", "daphne"]
    assert "tcp:port=8123:interface=127.0.0.1:backlog=1024" in argv
    assert argv[-1] == "crm_backend.asgi:application"


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "manage.py", "chat_serve", "--help"],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for option in ("--workers", "--host", "--port", "--application", "--shared-socket"):
        assert option in out


@pytest.fixture
def bound_sockets(settings, monkeypatch):
    """Run chat_serve up to its workers' start: the sockets it bound, closed afterwards."""
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # only its presence is checked
    bound = []

    def run(supervisor):
        bound.extend(worker.sock for worker in supervisor.workers)
        return 0

    monkeypatch.setattr(Supervisor, "run", run)
    yield bound
    for sock in bound:
        sock.close()


def test_a_port_another_server_listens_on_is_refused_not_shared(bound_sockets):
    # Another chat_serve (or a worker it left behind) holds SO_REUSEPORT sockets on the port:
    # joining them would silently take a share of its connections.
    other = chat_serve.listening_socket("127.0.0.1", 0, reuse_port=True)
    port = other.getsockname()[1]
    try:
        for shared in ([], ["--shared-socket"]):
            with pytest.raises(CommandError, match=f"127.0.0.1:{port} is in use"):
                call_command("chat_serve", "--workers=2", f"--port={port}", *shared)
    finally:
        other.close()
    assert bound_sockets == []


def test_port_0_puts_every_worker_on_the_same_port(bound_sockets):
    with pytest.raises(SystemExit):
        call_command("chat_serve", "--workers=3", "--port=0")
    ports = {sock.getsockname()[1] for sock in bound_sockets}
    assert len(bound_sockets) == 3 and len(ports) == 1 and 0 not in ports


def test_an_ipv6_host_is_refused_as_ipv6_not_as_a_taken_port(bound_sockets):
    with pytest.raises(CommandError, match="IPv4 only"):
        call_command("chat_serve", "--workers=2", "--host=::1", "--port=8123")


def test_a_signal_while_the_supervisor_logs_is_handled_outside_the_handler():
    """A handler that writes to stderr while the main loop is writing to it raises
    RuntimeError ("reentrant call"): the supervisor would crash, its workers left running."""
    import os
    import signal
    import time

    lines, inside = [], []

    def log(line: str) -> None:
        assert not inside, f"logged from a signal handler while logging: {line!r}"
        inside.append(line)
        try:
            lines.append(line)
            if "died unexpectedly" in line:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the handler runs in here, between two bytecodes
        finally:
            inside.clear()

    sock = socket.socket()
    worker = Worker(1, sock, [sys.executable, "-c", "raise SystemExit(3)"])
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert Supervisor([worker], log).run() == 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    assert any("SIGTERM: stopping 1 workers" in line for line in lines)
    assert lines[-1] == "all workers stopped"


def running(pid: int) -> bool:
    """Alive, and not a zombie waiting for a reaper that never comes (a container's init)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


SUPERVISE_ONE_SLEEPER = """
import socket, sys
from chat.management.commands.chat_serve import Supervisor, Worker
sock = socket.socket()
command = [sys.executable, "-c", "import time; time.sleep(60)"]
Supervisor([Worker(1, sock, command)], lambda line: print(line, flush=True)).run()
"""


def test_workers_do_not_outlive_a_killed_supervisor():
    """SIGKILLed (the OOM killer, a `kill -9`), the supervisor cannot stop its workers: they
    must stop by themselves, not hold the port (and the old code) for ever."""
    import os
    import re
    import signal
    import time

    supervisor = subprocess.Popen(
        [sys.executable, "-c", SUPERVISE_ONE_SLEEPER],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        worker_pid = int(re.search(r"pid (\d+)", supervisor.stdout.readline()).group(1))
        supervisor.kill()
        supervisor.wait(timeout=10)
        deadline = time.monotonic() + 10
        while running(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        orphaned = running(worker_pid)
        if orphaned:
            os.kill(worker_pid, signal.SIGKILL)
        assert not orphaned, "the worker outlived its supervisor"
    finally:
        supervisor.kill()


def test_a_host_name_with_an_ipv6_address_first_listens_on_its_ipv4_one(monkeypatch):
    """`--host localhost` resolves to ::1 first on most dual-stack machines: its IPv4 address
    serves, rather than the name being refused as IPv6."""
    real = socket.getaddrinfo

    def dual_stack(host, port, family=0, type=0, *args):
        if host != "localhost":
            return real(host, port, family, type, *args)
        v6 = (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))
        v4 = (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))
        return [v4] if family == socket.AF_INET else [v6, v4]

    monkeypatch.setattr(chat_serve.socket, "getaddrinfo", dual_stack)
    sock = chat_serve.listening_socket("localhost", 0, reuse_port=True)
    try:
        assert sock.family == socket.AF_INET and sock.getsockname()[0] == "127.0.0.1"
    finally:
        sock.close()


def test_a_worker_that_keeps_dying_hands_its_new_connections_to_the_others():
    """Its SO_REUSEPORT socket would take its share of new connections into a backlog nobody
    accepts from, for up to MAX_BACKOFF (30 s) per death: closed, the kernel sends them to the
    live workers. A first restart (0.5 s, 1 s) keeps it: those connections just wait."""
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    dying = [sys.executable, "-c", "raise SystemExit(3)", "--fd", "X"]
    live_sock, dead_sock = chat_serve.listening_sockets("127.0.0.1", 0, 2, reuse_port=True)
    port = live_sock.getsockname()[1]
    live = Worker(1, live_sock, sleeper, reuse_port=True)
    dead = Worker(2, dead_sock, dying, reuse_port=True)
    lines = []
    supervisor = Supervisor([live, dead], lines.append)
    try:
        supervisor.start(live)
        supervisor.start(dead)
        dead.process.wait()
        for delay in (0.5, 1.0):
            supervisor.schedule_restart(dead, now=dead.started + 1)
            assert dead.sock.fileno() != -1, f"kept for a {delay} s restart"
        supervisor.schedule_restart(dead, now=dead.started + 1)  # 2 s: it keeps dying
        assert dead.sock.fileno() == -1
        assert "worker 2 keeps dying" in lines[-1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(20)]
        live_sock.settimeout(2)
        for _ in clients:  # every one reached the live worker's socket
            live_sock.accept()[0].close()
        for client in clients:
            client.close()

        supervisor.start(dead)  # reopened on the same port, passed by its new descriptor
        assert dead.sock.getsockname()[1] == port
        assert dead.command[-1] == str(dead.sock.fileno())
        dead.process.wait()
    finally:
        live.process.kill()
        live.process.wait()
        live_sock.close()
        dead.sock.close()


def test_a_worker_that_ignores_sigterm_is_killed_and_the_stop_is_unclean(monkeypatch):
    """Exit status 1, not 0: a worker killed after STOP_TIMEOUT closed no socket with 1001."""
    import os
    import signal
    import threading

    monkeypatch.setattr(chat_serve, "STOP_TIMEOUT", 0.5)
    lines = []
    sock = socket.socket()
    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    worker = Worker(1, sock, [sys.executable, "-c", stubborn])
    previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    stop = threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGTERM))
    stop.start()
    try:
        assert Supervisor([worker], lines.append).run() == 1
    finally:
        stop.cancel()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sock.close()
    assert any("still up: SIGKILL" in line for line in lines)
    assert worker.process.returncode == -signal.SIGKILL
