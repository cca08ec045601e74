"""The benchmark runner: starts servers, seeds data, runs scenarios, writes JSON + markdown.

    .venv/bin/python -m bench.run                 # the default set (make bench), ~10-15 min
    .venv/bin/python -m bench.run --quick         # smoke run (make bench-quick)
    .venv/bin/python -m bench.run --scenarios s1 --layers memory --quick
    .venv/bin/python -m bench.run --scenarios s1 --servers daphne,uvicorn --layers memory,redis

Talks only to 127.0.0.1 (the servers it starts, Redis on 6379, PostgreSQL on 5432). Every
run is bounded: fixed step counts and durations, per-scenario timeouts and --max-minutes.
Results: bench/results/<stamp>.json and <stamp>.md (plus py-spy profiles with --profile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import mixed, scenarios
from bench.loadgen import Tally
from bench.profile_summary import as_text, summarize
from bench.report import markdown
from bench.server import PROJECT_DIR, ServerProcess, cpu_layout, worker_cpus

RESULTS_DIR = PROJECT_DIR / "bench" / "results"
BENCH_SECRET = "bench-only-secret-key-not-for-production-0123456789"
REDIS_URL = "redis://127.0.0.1:6379/0"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIO_TIMEOUT = 420.0


@dataclass
class Phase:
    server: str
    layer: str
    db: str
    items: list = field(default_factory=list)  # (scenario, variant)
    workers: int = 1

    @property
    def label(self) -> str:
        return self.server if self.workers == 1 else f"{self.server} ×{self.workers}"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smoke run: short steps, small counts")
    p.add_argument("--scenarios", default="s1,s2,s3,s4,s5")
    p.add_argument(
        "--servers",
        default="daphne",
        help="daphne,uvicorn; plain = a no-Django websockets broadcast server (S1)",
    )
    p.add_argument(
        "--layers",
        default="memory,channels-memory,redis",
        help="memory (the product's default without Redis), channels-memory "
        "(Channels' InMemoryChannelLayer), redis (pub/sub), redis-core",
    )
    p.add_argument("--dbs", default="sqlite,postgres")
    p.add_argument(
        "--workers",
        default="1",
        help="daphne worker counts, e.g. 1,2: each phase once per count; > 1 runs "
        "manage.py chat_serve on every CPU (needs a Redis layer)",
    )
    p.add_argument("--s1-rates", default="", help="comma-separated msg/s steps for S1")
    p.add_argument(
        "--s1-variants",
        default="product,control",
        help="product,control",
    )
    p.add_argument("--s3-connections", default="", help="e.g. 1000,5000")
    p.add_argument(
        "--s3-room-size",
        type=int,
        default=100,
        help="S3 connections are spread over rooms of this size (5000: one room)",
    )
    p.add_argument("--s4-messages", type=int, default=0, help="default 1,000,000 (quick 100,000)")
    p.add_argument(
        "--profile",
        dest="profile",
        action="store_true",
        default=None,
        help="py-spy the product during S1 (default: on unless --quick)",
    )
    p.add_argument("--no-profile", dest="profile", action="store_false")
    p.add_argument("--profile-seconds", type=float, default=10.0)
    p.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server (experiments), repeatable",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin server/loadgen to CPUs")
    p.add_argument(
        "--log-level",
        default="WARNING",
        help="CHAT_LOG_LEVEL of the server (the product logs each handshake at INFO)",
    )
    p.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="skip remaining scenarios after this (default 25, quick 8)",
    )
    p.add_argument("--out", default="", help="results file stem (default: timestamp)")
    args = p.parse_args(argv)
    args.scenarios = _csv(args.scenarios)
    args.servers, args.layers, args.dbs = _csv(args.servers), _csv(args.layers), _csv(args.dbs)
    args.s1_variants = _csv(args.s1_variants)
    args.workers = [int(w) for w in _csv(args.workers)]
    if args.profile is None:
        args.profile = not args.quick
    args.max_minutes = args.max_minutes or (8.0 if args.quick else 25.0)
    return args


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def plan(args) -> list[Phase]:
    """Which scenario runs on which server process. Every phase starts a fresh server;
    with several worker counts, each phase runs once per count, side by side."""
    phases = []
    for phase in plan_one_worker(args):
        for workers in args.workers if phase.server == "daphne" else [1]:
            phases.append(Phase(phase.server, phase.layer, phase.db, phase.items, workers))
    return phases


def plan_one_worker(args) -> list[Phase]:
    s = set(args.scenarios)
    first_layer, first_db, first_server = args.layers[0], args.dbs[0], args.servers[0]
    phases = []
    for server in args.servers:
        if server == "plain":  # the no-Django reference: S1 with the control's protocol only
            if "s1" in s:
                phases.append(Phase("plain", "none", first_db, [("s1", "control")]))
            continue
        for layer in args.layers:
            for db in args.dbs:
                items = []
                if "s1" in s and db == first_db:
                    items += [("s1", variant) for variant in args.s1_variants]
                if "s6" in s and db == first_db:
                    items.append(("s6", "product"))
                if "s2" in s and layer == first_layer:
                    items.append(("s2", "product"))
                    if db == first_db:
                        items.append(("s2", "control"))
                if "s4" in s and server == first_server and layer == first_layer:
                    items.append(("s4", "product"))
                if "s5" in s and layer == first_layer:
                    items.append(("s5", "product"))
                if "s3" in s and db == first_db and layer.startswith("redis"):
                    items += [
                        ("s3-burst", "product"),
                        ("s3-burst", "control"),
                        ("s3-stale", "product"),
                    ]
                if items:
                    phases.append(Phase(server, layer, db, items))
                # Memory per connection needs a server that never held more connections
                # before: one fresh server per measurement.
                if "s3" in s and db == first_db and layer == first_layer:
                    for count in s3_counts(args):
                        for variant in ("product", "control"):
                            if variant == "control" and count > 1000:
                                continue
                            phases.append(Phase(server, layer, db, [("s3-idle", variant, count)]))
    return phases


def s3_counts(args) -> list[int]:
    if args.s3_connections:
        return [int(c) for c in _csv(args.s3_connections)]
    return scenarios.S3_CONNECTIONS_QUICK if args.quick else scenarios.S3_CONNECTIONS


def setup_spec(args) -> dict:
    s = set(args.scenarios)
    users = 101
    rooms = [{"key": "s1", "members": list(range(101))}]
    if "s2" in s:
        users = max(users, scenarios.S2_ROOMS * scenarios.S2_ROOM_SIZE)
        rooms += [
            {"key": f"s2-{r}", "members": list(range(r * 10, r * 10 + 10))}
            for r in range(scenarios.S2_ROOMS)
        ]
    if "s3" in s:
        n = max(max(s3_counts(args)), scenarios.S3_BURST + 1000)
        users = max(users, n)
        size = args.s3_room_size
        rooms += [
            {"key": f"s3-{k}", "members": list(range(k * size, min(n, (k + 1) * size)))}
            for k in range((n + size - 1) // size)
        ]
    if "s5" in s:
        size = scenarios.S5_ROOM_SIZE
        rooms += [
            {"key": f"s5-{r}", "members": list(range(r * size, r * size + size))}
            for r in range(scenarios.S5_ROOMS)
        ]
    history = []
    if "s4" in s:
        big = args.s4_messages or (100_000 if args.quick else 1_000_000)
        history = [{"key": "s4-small", "count": 1_000}, {"key": "s4-big", "count": big}]
    return {"users": users, "rooms": rooms, "history": history}


def base_env() -> dict:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "CHAT_", "DATABASE_", "REDIS_", "CHANNEL_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=BENCH_SECRET,
        JWT_ACCESS_MINUTES="1440",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=str(PROJECT_DIR),
    )
    return env


class Databases:
    """One SQLite file and/or one PostgreSQL database per run, seeded once, dropped at the end."""

    def __init__(self, workdir: Path, stamp: str, spec: dict, log):
        self.workdir, self.spec, self.log = workdir, spec, log
        self.pg_name = f"crm_chat_bench_{os.getpid()}"
        self.pg_created = False
        self.data: dict[str, dict] = {}
        self.urls: dict[str, str] = {}

    def url(self, db: str) -> str:
        if db == "sqlite":
            return f"sqlite:///{self.workdir / 'bench.sqlite3'}"
        if db == "postgres":
            return f"postgres://postgres@127.0.0.1:5432/{self.pg_name}"
        raise ValueError(f"unknown database {db!r}")

    def prepare(self, db: str) -> dict:
        if db in self.data:
            return self.data[db]
        if db == "postgres" and not self.pg_created:
            self._pg(f'CREATE DATABASE "{self.pg_name}"')
            self.pg_created = True
        spec_path = self.workdir / f"spec-{db}.json"
        out_path = self.workdir / f"data-{db}.json"
        spec_path.write_text(json.dumps(self.spec))
        env = {**base_env(), "DATABASE_URL": self.url(db)}
        self.log(
            f"  seeding {db}: {self.spec['users']} users, {len(self.spec['rooms'])} rooms, "
            f"history {[h['count'] for h in self.spec['history']]}"
        )
        cmd = [sys.executable, "-m", "bench.setup_db", str(spec_path), str(out_path)]
        if shutil.which("taskset"):
            cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0) | _all_cpus()))
            cmd = ["taskset", "-c", cpus, *cmd]
        result = subprocess.run(
            cmd, cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=900
        )
        if result.returncode != 0:
            raise RuntimeError(f"setup of {db} failed:\n{result.stdout}\n{result.stderr}")
        self.data[db] = json.loads(out_path.read_text())
        self.log(f"  seeded {db} in {self.data[db]['setup_seconds']} s")
        return self.data[db]

    def _pg(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def cleanup(self) -> None:
        if self.pg_created:
            try:
                self._pg(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
            except Exception as error:
                self.log(f"  could not drop {self.pg_name}: {error}")


def _all_cpus() -> set[int]:
    try:
        with open("/sys/devices/system/cpu/online") as f:
            spec = f.read().strip()
    except OSError:
        return set()
    cpus = set()
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 65536
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def machine_notes(server_cpu, gen_cpu) -> dict:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), ""
            )
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_DIR, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "--", "chat", "accounts", "crm_backend"],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "loadavg_at_start": os.getloadavg(),
        "python": platform.python_version(),
        "server_cpu": server_cpu,
        "loadgen_cpu": gen_cpu,
        "git_commit": commit + ("+local changes" if dirty else ""),
    }


def layer_backend(env: dict) -> str:
    """The channel layer class the server will really use with this environment."""
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.CHANNEL_LAYERS['default']['BACKEND'])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout.strip() or "?"


def layer_env(layer: str, prefix: str) -> dict:
    if layer in ("memory", "none"):
        return {}
    if layer == "channels-memory":
        return {"BENCH_CHANNEL_LAYER": "channels-memory"}
    if layer in ("redis", "redis-pubsub"):
        return {
            "REDIS_URL": REDIS_URL,
            "CHANNEL_LAYER_PREFIX": prefix,
            "REDIS_CHANNEL_LAYER": "pubsub",
        }
    if layer == "redis-core":
        return {
            "REDIS_URL": REDIS_URL,
            "CHANNEL_LAYER_PREFIX": prefix,
            "REDIS_CHANNEL_LAYER": "core",
        }
    raise ValueError(f"unknown layer {layer!r}")


def make_profile_hook(server: ServerProcess, stem_base: str, args, gen_cpu, log):
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        log("  py-spy not installed (pip install -r requirements-bench.txt): no profile")
        return None

    async def hook(label, send_for, rate, formats=("raw", "flamegraph")):
        out = {}
        seconds = args.profile_seconds
        stem = f"{stem_base}-{label}"
        for fmt, suffix in (("raw", "txt"), ("flamegraph", "svg")):
            if fmt not in formats:
                continue
            path = RESULTS_DIR / f"{stem}.{suffix}"
            cmd = [
                pyspy,
                "record",
                "--pid",
                str(server.pid),
                "--rate",
                "200",
                "--nonblocking",
                "--threads",
                "--full-filenames",
                "--duration",
                str(int(seconds)),
                "--format",
                fmt,
                "-o",
                str(path),
            ]
            if gen_cpu is not None:
                cmd = ["taskset", "-c", str(gen_cpu), *cmd]
            log(f"    py-spy ({fmt}) for {seconds:.0f} s at {rate} msg/s -> {path.name}")
            proc = await asyncio.create_subprocess_exec(
                *cmd, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
            )
            await asyncio.sleep(0.5)
            await send_for(seconds)
            _, err = await asyncio.wait_for(proc.communicate(), 60)
            if proc.returncode != 0:
                log(f"    py-spy failed: {err.decode()[-500:]}")
                continue
            out[fmt] = str(path.relative_to(PROJECT_DIR))
            if fmt == "raw":
                summary = summarize(str(path))
                text_path = RESULTS_DIR / f"{stem}-summary.txt"
                text_path.write_text(
                    f"py-spy, {server.kind}, {label}, {rate}\n\n" + as_text(summary) + "\n"
                )
                out["summary"] = summary
                out["summary_text"] = str(text_path.relative_to(PROJECT_DIR))
        out["workload"] = rate
        return out

    return hook


async def run_phase(
    phase: Phase,
    server: ServerProcess,
    data: dict,
    args,
    prefix: str,
    profile_hook,
    deadline: float,
    log,
) -> dict:
    ctx = scenarios.Context(
        server=server,
        data=data,
        quick=args.quick,
        layer=phase.layer,
        db=phase.db,
        tally=Tally(),
        profile_hook=profile_hook,
        log=log,
    )
    results: dict = {}
    for item in phase.items:
        name, variant = item[0], item[1]
        key = f"{name}:{variant}"
        if time.monotonic() > deadline:
            results[key] = {"skipped": "--max-minutes reached"}
            log(f"  {key}: skipped (time budget)")
            continue
        ctx.tally = Tally()
        if not await scenarios.wait_server_idle(ctx):
            log("  server still busy after 90 s (backlog of the previous scenario)")
        log(f"  {key} ...")
        started = time.monotonic()
        try:
            if name == "s1":
                rates = [int(r) for r in _csv(args.s1_rates)] or None
                coro = scenarios.s1_fanout(ctx, variant, rates)
            elif name == "s2":
                coro = scenarios.s2_many_rooms(ctx, variant)
            elif name == "s3-idle":
                coro = scenarios.s3_idle(ctx, variant, item[2])
            elif name == "s3-burst":
                coro = scenarios.s3_burst(ctx, variant)
            elif name == "s3-stale":
                coro = scenarios.s3_stale(ctx, prefix, 200 if args.quick else 1000)
            elif name == "s4":
                coro = asyncio.to_thread(scenarios.s4_history, ctx)
            elif name == "s5":
                coro = scenarios.s5_store(ctx)
            elif name == "s6":
                coro = mixed.s6_mixed(ctx)
            else:
                raise ValueError(name)
            results[key] = await asyncio.wait_for(coro, SCENARIO_TIMEOUT)
        except Exception as error:
            results[key] = {
                "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc()[-2000:],
            }
            log(f"  {key}: ERROR {type(error).__name__}: {error}")
        results[key]["elapsed_s"] = round(time.monotonic() - started, 1)
        log(f"  {key}: {_brief(name, results[key])}")
    return results


def _brief(name: str, r: dict) -> str:
    if "error" in r or "skipped" in r:
        return r.get("error") or r.get("skipped")
    if name == "s1":
        return (
            f"sustainable {r['sustainable_rate_msgs_per_s']} msg/s = "
            f"{r['sustainable_deliveries_per_s']} deliveries/s"
        )
    if name == "s2":
        return f"{r['deliveries_per_s']} deliv/s p99 {r['p99_ms']} ms lost {r['lost']}"
    if name == "s3-idle":
        return (
            f"{r['opened']}/{r['connections']} at {r['handshakes_per_s']}/s, "
            f"{r['rss_per_connection_kb']} KB/conn"
        )
    if name == "s3-burst":
        return f"{r['opened']}/{r['attempted']} opened, failures {r['failures']}"
    if name == "s3-stale":
        return f"stale subscriptions {r['stale_subscriptions']}"
    if name == "s4":
        return "; ".join(
            f"{k}: latest p99 {v['latest']['p99_ms']} ms" for k, v in r["rooms"].items()
        )
    if name == "s6":
        return f"lost {sum(p['lost'] for p in r['phases'].values())}, cost vs message " + str(
            r["cost_vs_message"]
        )
    if name == "s5":
        return (
            f"{r['stored_per_s']} stored/s ack p99 {r['ack_p99_ms']} ms failed {r['failed_sends']}"
        )
    return ""


def new_loop():
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def main(argv=None) -> int:
    args = parse_args(argv)
    scenarios.S3_ROOM_SIZE = args.s3_room_size
    started = time.monotonic()
    deadline = started + args.max_minutes * 60
    stamp = args.out or datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path, md_path = RESULTS_DIR / f"{stamp}.json", RESULTS_DIR / f"{stamp}.md"
    log_lines: list[str] = []

    def log(msg: str) -> None:
        line = f"[{time.monotonic() - started:6.1f}s] {msg}"
        print(line, flush=True)
        log_lines.append(line)

    nofile = raise_nofile()
    server_cpu, gen_cpu = (None, None) if args.no_pin else cpu_layout()
    workdir = Path(tempfile.mkdtemp(prefix="crm-bench-"))
    phases = plan(args)
    out = {
        "meta": {
            **machine_notes(server_cpu, gen_cpu),
            "command": " ".join(
                [
                    Path(sys.executable).name,
                    "-m",
                    "bench.run",
                    *(argv if argv is not None else sys.argv[1:]),
                ]
            ),
            "quick": args.quick,
            "s3_room_size": args.s3_room_size,
            "server_env": args.server_env,
            "nofile": nofile,
            "loadgen_loop": type(new_loop()).__module__,
        },
        "phases": [],
    }
    log(f"plan: {[(p.server, p.layer, p.db, p.items) for p in phases]}")
    databases = Databases(workdir, stamp, setup_spec(args), log)
    try:
        for index, phase in enumerate(phases):
            if time.monotonic() > deadline:
                log(f"phase {phase.server}/{phase.layer}/{phase.db}: skipped (time budget)")
                continue
            log(f"phase {phase.label} + {phase.layer} + {phase.db}")
            record = {"server": phase.label, "layer": phase.layer, "db": phase.db}
            record["workers"] = phase.workers
            try:
                data = databases.prepare(phase.db)
            except Exception as error:
                record["error"] = f"database {phase.db}: {error}"
                log(f"  {record['error']}")
                out["phases"].append(record)
                continue
            prefix = f"crm_chat_bench_{os.getpid()}_{index}_"
            env = {
                **base_env(),
                "DATABASE_URL": databases.url(phase.db),
                "CHAT_LOG_LEVEL": args.log_level,
                **layer_env(phase.layer, prefix),
                **dict(item.split("=", 1) for item in args.server_env),
            }
            record["layer_backend"] = layer_backend(env)
            server = ServerProcess(
                phase.server,
                env,
                RESULTS_DIR / f"{stamp}-server-{index}-{phase.server}-{phase.layer}-{phase.db}.log",
                cpu=worker_cpus(server_cpu, phase.workers),
                workers=phase.workers,
            )
            try:
                server.start()
            except Exception as error:
                record["error"] = f"server did not start: {error}"
                log(f"  {record['error']}")
                out["phases"].append(record)
                continue
            if gen_cpu is not None:
                os.sched_setaffinity(0, {gen_cpu})
            hook = None
            if args.profile and any(i[0] in ("s1", "s5") for i in phase.items):
                stem = f"{stamp}-profile-{phase.server}-{phase.layer}-{phase.db}"
                hook = make_profile_hook(server, stem, args, gen_cpu, log)
            try:
                with asyncio.Runner(loop_factory=new_loop) as runner:
                    record["results"] = runner.run(
                        run_phase(phase, server, data, args, prefix, hook, deadline, log)
                    )
                record["server_threads_at_end"] = server.threads()
                record["server_rss_at_end_mb"] = round(server.rss_bytes() / 2**20, 1)
            finally:
                server.stop()
                if gen_cpu is not None:
                    os.sched_setaffinity(0, _all_cpus() or {gen_cpu})
            errors = [
                line
                for line in server.log_tail(200_000).splitlines()
                if "Traceback" in line or " ERROR " in line
            ]
            record["server_log_errors"] = len(errors)
            record["server_log_error_sample"] = errors[:5]
            out["phases"].append(record)
            json_path.write_text(json.dumps(out, indent=1))
    finally:
        databases.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    out["meta"]["total_minutes"] = round((time.monotonic() - started) / 60, 1)
    out["log"] = log_lines
    json_path.write_text(json.dumps(out, indent=1))
    md_path.write_text(markdown(out))
    print()
    print(md_path.read_text())
    print(f"results: {json_path.relative_to(PROJECT_DIR)} and {md_path.relative_to(PROJECT_DIR)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
