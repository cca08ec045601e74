"""Render a results JSON (bench/results/<stamp>.json) as markdown tables.

python -m bench.report bench/results/<stamp>.json
"""

from __future__ import annotations

import json
import sys


def _v(value, fmt="{}"):
    return "—" if value is None else fmt.format(value)


def markdown(out: dict) -> str:
    meta = out["meta"]
    lines = [
        f"# Benchmark results {meta['date']}",
        "",
        f"`{meta['command']}` — commit {meta['git_commit']}, {meta['cpus']} CPUs "
        f"({meta['cpu_model']}), {meta['memory_gb']} GB, Python {meta['python']}, "
        f"server pinned to CPU {meta['server_cpu']}, load generator to CPU {meta['loadgen_cpu']}"
        f" ({meta['loadgen_loop']} loop){_workers_note(out)}, load average at start "
        f"{', '.join(f'{x:.2f}' for x in meta['loadavg_at_start'])}"
        + (", QUICK mode (smoke run: short steps, small counts)" if meta["quick"] else "")
        + ".",
        "",
    ]
    phases = out["phases"]
    backends = {}
    for p in phases:
        if p.get("layer_backend"):
            backends[p["layer"]] = p["layer_backend"]
    if backends:
        lines += [
            "Channel layers: " + "; ".join(f"`{k}` = `{v}`" for k, v in backends.items()) + ".",
            "",
        ]

    def rows(key):
        for p in phases:
            r = p.get("results", {}).get(key)
            if r is not None:
                yield p, r

    # S1
    s1 = []
    for p in phases:
        res = p.get("results", {})
        ctrl = res.get("s1:control", {})
        for key, r in res.items():
            if not key.startswith("s1:"):
                continue
            kind = key.split(":", 1)[1]
            label = "tutorial control" if kind == "control" else kind
            if p["server"] == "plain":
                label = "plain websockets server (no Django)"
            if "error" in r or "skipped" in r:
                s1.append(
                    f"| {p['server']} | {p['layer']} | {label} | "
                    f"{r.get('error') or r.get('skipped')} ||||||"
                )
                continue
            ratio = None
            if kind != "control" and ctrl.get("sustainable_deliveries_per_s"):
                ratio = r["sustainable_deliveries_per_s"] / ctrl["sustainable_deliveries_per_s"]
            best = r.get("at_sustainable") or {}
            last = r["steps"][-1] if r["steps"] else None
            fail = (
                f"{last['rate']} msg/s: p99 {last['p99_ms']} ms, lost {last['lost']}"
                if last and not last["ok"]
                else "none up to the last step"
            )
            s1.append(
                f"| {p['server']} | {p['layer']} | {label} | {r['sustainable_rate_msgs_per_s']} | "
                f"**{r['sustainable_deliveries_per_s']:,}** | {_v(best.get('p50_ms'))} / "
                f"{_v(best.get('p99_ms'))} | {_v(best.get('server_cpu_us_per_delivery'))} | "
                f"{_v(best.get('loadgen_cpu_util'))} | {fail} | "
                + (f"**{ratio:.2f}×**" if ratio is not None else "")
                + " |"
            )
    if s1:
        lines += [
            "## S1 fan-out: 1 room, 100 receivers + 1 sender (101 deliveries per message)",
            "",
            "Sustainable = highest send rate with p99 send→receive < 100 ms and zero loss.",
            "",
            "| server | layer | stack | sustainable msg/s | deliveries/s | p50 / p99 ms | "
            "server CPU µs/delivery | loadgen CPU | step that failed twice | product ÷ control |",
            "|---|---|---|---:|---:|---:|---:|---:|---|---:|",
            *s1,
            "",
        ]
    # S2
    s2 = []
    for p in phases:
        for kind in ("product", "control"):
            r = p.get("results", {}).get(f"s2:{kind}")
            if r is None:
                continue
            if "error" in r or "skipped" in r:
                s2.append(
                    f"| {p['server']} | {p['layer']} | {p['db']} | {kind} | "
                    f"{r.get('error') or r.get('skipped')} ||||||"
                )
                continue
            s2.append(
                f"| {p['server']} | {p['layer']} | {p['db'] if kind == 'product' else '—'} | "
                f"{'product' if kind == 'product' else 'tutorial control'} | "
                f"{r['messages_per_s']} | {r['deliveries_per_s']} | {r['p50_ms']} / {r['p99_ms']} "
                f"| {r['lost']} of {r['expected_deliveries']} | {r['server_cpu_util']} | "
                f"{'yes' if r['ok'] else '**no**'} |"
            )
    if s2:
        lines += [
            "## S2 many rooms: 50 rooms × 10 clients, each client 1 msg/s",
            "",
            "| server | layer | database | stack | msg/s in | deliveries/s | p50 / p99 ms | lost |"
            " server CPU util | p99 ≤ 100 ms, 0 lost |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---|",
            *s2,
            "",
        ]
    # S3
    s3 = []
    for p in phases:
        for kind in ("product", "control"):
            r = p.get("results", {}).get(f"s3-idle:{kind}")
            if r is None:
                continue
            if "error" in r or "skipped" in r:
                s3.append(
                    f"| {p['server']} | {p['layer']} | {kind} | "
                    f"{r.get('error') or r.get('skipped')} |||||||||"
                )
                continue
            x = r
            s3.append(
                f"| {p['server']} | {p['layer']} | "
                f"{'product' if kind == 'product' else 'tutorial control'} | "
                f"{x['connections']:,} | {x['opened']:,} | {x['handshakes_per_s']} | "
                f"{x['handshake_p50_ms']} / {x['handshake_p99_ms']} | "
                f"{_v(x['server_cpu_ms_per_handshake'])} | "
                f"{_v(x.get('server_cpu_util'))} / {_v(x.get('loadgen_cpu_util'))} | "
                f"{_v(x.get('listen_overflows'))} | {x['rss_per_connection_kb']} | "
                f"{x['server_rss_before_mb']} → {x['server_rss_open_mb']} → "
                f"{x['server_rss_after_close_mb']} |"
            )
    if s3:
        lines += [
            "## S3 capacity: idle connections (product: JWT + room + membership checks)",
            "",
            "| server | layer | stack | connections | opened | handshakes/s (100 in flight) | "
            "handshake p50 / p99 ms | server CPU ms/handshake | CPU util server / loadgen | "
            "listen queue overflows | server RSS KB/connection | RSS MB before → open → closed |",
            "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
            *s3,
            "",
        ]
    burst = []
    for p in phases:
        for kind in ("product", "control"):
            r = p.get("results", {}).get(f"s3-burst:{kind}")
            if r is None:
                continue
            if "error" in r or "skipped" in r:
                burst.append(
                    f"| {p['server']} | {p['layer']} | {kind} | "
                    f"{r.get('error') or r.get('skipped')} |||"
                )
                continue
            burst.append(
                f"| {p['server']} | {p['layer']} | "
                f"{'product' if kind == 'product' else 'tutorial control'} | "
                f"{r['attempted']} | {r['failed']} | {r['failures'] or '—'} | "
                f"{r['seconds']} |"
            )
        r = p.get("results", {}).get("s3-stale:product")
        if r is not None and "error" not in r and "skipped" not in r:
            burst.append(
                f"| {p['server']} | {p['layer']} | product: {r['connections']} connect, then all "
                f"drop at once | {r['connections']} | {r['failed']} | Redis subscriptions "
                f"{r['redis_subscriptions_baseline']} → {r['redis_subscriptions_while_open']} → "
                f"{r['redis_subscriptions_after_disconnect']}: **{r['stale_subscriptions']} "
                f"stale** | {r['seconds_until_clean']} s to clean |"
            )
        elif r is not None:
            burst.append(
                f"| {p['server']} | {p['layer']} | stale check | "
                f"{r.get('error') or r.get('skipped')} ||||"
            )
    if burst:
        lines += [
            "## S3 with Redis: clients connecting at the same moment; stale members",
            "",
            "| server | layer | stack | clients | failed handshakes | failures / detail | "
            "seconds |",
            "|---|---|---|---:|---:|---|---:|",
            *burst,
            "",
        ]
    # S4
    s4 = []
    for p, r in rows("s4:product"):
        if "rooms" not in r:
            s4.append(f"| {p['db']} | {r.get('error') or r.get('skipped')} ||||")
            continue
        for _key, room in r["rooms"].items():
            s4.append(
                f"| {p['server']} | {p['db']} | {room['messages']:,} | "
                + " | ".join(
                    f"{room[q]['p50_ms']} / {room[q]['p99_ms']}"
                    for q in ("latest", "before_deep", "after_mid")
                )
                + f" | {_v(room.get('insert_seconds'))} |"
            )
    if s4:
        lines += [
            "## S4 history: `GET /api/chat/rooms/<id>/messages/` (50 per page), sequential",
            "",
            "| server | database | messages in room | latest p50 / p99 ms | deep `before=` "
            "p50 / p99 ms | `after=` (middle) p50 / p99 ms | bulk insert s |",
            "|---|---|---:|---:|---:|---:|---:|",
            *s4,
            "",
        ]
    # S5
    s5 = []
    for p, r in rows("s5:product"):
        if "error" in r or "skipped" in r:
            s5.append(
                f"| {p['server']} | {p['layer']} | {p['db']} | "
                f"{r.get('error') or r.get('skipped')} ||||||"
            )
            continue
        s5.append(
            f"| {p['server']} | {p['layer']} | {p['db']} | {r['senders']} in {r['rooms']} rooms |"
            f" **{r['stored_per_s']}** | {r['ack_p50_ms']} / {r['ack_p99_ms']} | "
            f"{r['failed_sends']} | {r['lost']} | {_v(r['server_cpu_ms_per_stored_message'])} | "
            f"{r['server_cpu_util']} |"
        )
    if s5:
        lines += [
            "## S5 stored messages/s: closed-loop senders (send, wait for own copy, repeat)",
            "",
            "| server | layer | database | senders | stored msg/s | ack p50 / p99 ms | failed "
            "sends | lost deliveries | server CPU ms/message | server CPU util |",
            "|---|---|---|---|---:|---:|---:|---:|---:|---:|",
            *s5,
            "",
        ]
    # Profiles
    for key in ("s1:product", "s5:product"):
        for p, r in rows(key):
            prof = r.get("profile") or {}
            if not prof.get("summary"):
                continue
            summary = prof["summary"]
            lines += [
                f"## py-spy: product on {p['server']} + {p['layer']} + {p['db']}: "
                f"{prof.get('workload')}",
                "",
                f"Raw stacks: `{prof.get('raw', '—')}`; flame graph: "
                f"`{prof.get('flamegraph', '—')}`; summary: `{prof.get('summary_text')}`.",
                "",
                "| self time by package | % of samples |",
                "|---|---:|",
                *[f"| {k} | {v} |" for k, v in list(summary["self_by_package_pct"].items())[:12]],
                "",
                "| threads | % of samples |",
                "|---|---:|",
                *[f"| {k} | {v} |" for k, v in summary["threads_pct"].items()],
                "",
            ]
    errors = [(p, p["error"]) for p in phases if "error" in p]
    if errors:
        lines += ["## Phases that did not run", ""]
        lines += [f"- {p['server']} + {p['layer']} + {p['db']}: {e}" for p, e in errors]
        lines.append("")
    return "\n".join(lines)


def _workers_note(out: dict) -> str:
    if all(phase.get("workers", 1) == 1 for phase in out["phases"]):
        return ""
    return "; daphne ×N: N chat_serve workers on every CPU, one shared with the load generator"


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        print(markdown(json.load(f)))
