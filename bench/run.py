"""The roomsync benchmark: roomsync vs a plain sequential script vs dlt, side by side.

Each client runs as its own process (so its CPU time and peak RSS are its own, read with wait4)
against the stand-in API in another process on 127.0.0.1, with a set latency. Workloads:

- latency: N ids at L ms latency, concurrency C. The bound is N x L / C; `run/bound` compares
  each client's time after start-up with it.
- cpu: the same at 0 ms latency: what a request costs the client in CPU (fetch, parse, upsert).
  `CPU ms/id` subtracts the CPU of an empty run of the same command (start-up: imports, schema
  check), measured once per client.
- rate: roomsync with --rate-limit R for about 10 s; the server counts request starts in the
  busiest 10 s window.
- rss (only with --rss): a 1,000,000-line id file, of which the API knows a subset (the rest are
  404s), at 0 ms latency: peak RSS of the whole backfill (or of its first --rss-seconds), and of
  the validation pass alone.
- version: start-up time of `roomsync --version`.
- latency with `--tools roomsync,floor`: also each client's run/bound over that of a raw asyncio
  floor client (bench/raw_asyncio.py: streams, a hand-written GET, one connection per lane).
- transport (issue 21): CPU per id at 0 ms latency of roomsync on its own transport
  (etl/transport.py), of roomsync on httpx's transport (bench/roomsync_httpx.py, as before
  issue 21) and of a bare httpx GET + json() loop with one connection per lane
  (bench/bare_httpx.py), in interleaved repeats; prints min/median/max and the ratios.
- notfound: the CPU of a 404 against the CPU of a 200: `roomsync backfill` of N ids the API
  knows, then of N it does not (never stored, never failed), interleaved, at 0 ms; CPU per id
  after start-up, and the ratio run by run.
- firstsync (issue 21, opt-in): a first sync into an empty database of an account of N sessions
  at 0 ms, for each N of --first-sync (default 20,000 and 100,000; 1,000,000 with
  `--first-sync 1000000 --first-sync-tools sessions,floor`): `roomsync sync --with none`
  (sessions only, the like-for-like), `roomsync sync` (the whole bill: the stand-in then serves
  members, recordings, rooms and logs too) and the floor (bench/firstsync_floor.py: the list
  pages over http.client, json.loads, sqlite3 executemany / psycopg COPY), interleaved. CPU per
  session net of each one's start-up (an empty account), roomsync over the floor repeat by
  repeat, peak RSS, and the bytes per session between the smallest and the largest N. Run with
  PYTHONPATH set to another checkout to measure that version (the child's `etl` comes from
  there).

    python bench/run.py                          # the default run, a few minutes
    python bench/run.py --only cpu --cpu-ids 20000
    python bench/run.py --only rss --rss --rss-ids 1000000
    python bench/run.py --only transport --transport-ids 5000 --repeat 3 --transport-peers dlt
    python bench/run.py --only latency --tools roomsync,floor --ids 5000 --concurrency 100
    python bench/run.py --only firstsync --first-sync 20000,100000 --repeat 3

Results are printed as Markdown tables and saved as JSON under bench/results/.
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    BENCH,
    ROOT,
    VENV_BIN,
    Measured,
    api_server,
    client_env,
    measure,
    migrate,
)

CLIENT_TIMEOUT_S = 900.0
WORKLOADS = ("latency", "cpu", "rate", "version", "rss", "transport", "firstsync", "notfound")


@dataclass
class Row:
    """One line of the results table."""

    workload: str
    tool: str
    ids: int
    concurrency: int
    latency_ms: float
    measured: Measured | None = None
    summary: dict[str, Any] | None = None
    server: dict[str, Any] | None = None
    startup_cpu_s: float = 0.0
    note: str = ""
    concurrency_bound: int = 1  # the C of the workload's bound N x L / C
    bound_override_s: float | None = None  # a workload with another bound (the rate limit's)

    @property
    def run_s(self) -> float:
        assert self.summary is not None and self.measured is not None
        return float(self.summary.get("elapsed_s") or self.measured.wall_s)

    @property
    def bound_s(self) -> float:
        if self.bound_override_s is not None:
            return self.bound_override_s
        return self.ids * self.latency_ms / 1000 / self.concurrency_bound

    def cells(self) -> list[str]:
        if self.measured is None or self.summary is None:
            return [self.workload, self.tool, str(self.ids), *["-"] * 9, self.note]
        m, run = self.measured, self.run_s
        stored = self.summary.get("stored")
        if stored is None:
            stored = sum(self.summary.get(k, 0) for k in ("inserted", "updated", "unchanged"))
        requests = (self.server or {}).get("requests", self.ids)
        ratio = f"{run / self.bound_s:.3f}" if self.bound_s else "-"
        cpu_net = (m.cpu_s - self.startup_cpu_s) / max(self.ids, 1) * 1000
        return [
            self.workload,
            self.tool,
            str(self.ids),
            str(self.concurrency),
            f"{m.wall_s:.2f}",
            f"{run:.2f}",
            ratio,
            f"{requests / run:,.0f}",
            f"{cpu_net:.2f}",
            f"{stored / run:,.0f}",
            f"{m.maxrss_mb:.0f}",
            str((self.server or {}).get("max_in_flight", "-")),
            self.note,
        ]


HEADER = [
    "workload",
    "tool",
    "ids",
    "conc",
    "wall s",
    "run s",
    "run/bound",
    "req/s",
    "CPU ms/id",
    "rows/s",
    "peak RSS MB",
    "max in flight",
    "note",
]


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the clients


@functools.cache
def sessions_only() -> tuple[str, ...]:
    """`--with none` when the roomsync under test (PYTHONPATH may point at another checkout)
    fetches more than sessions by default; nothing for a version from before the bill."""
    out = subprocess.run(
        [str(VENV_BIN / "roomsync"), "backfill", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    return ("--with", "none") if "--with" in out else ()


def roomsync_cmd(ids_file: Path, concurrency: int, *extra: str) -> list[str]:
    return [
        str(VENV_BIN / "roomsync"),
        "backfill",
        str(ids_file),
        "--json",
        "--concurrency",
        str(concurrency),
        # sessions only: the peers fetch each session and nothing else (members and
        # recordings are measured by the firstsync workload and bench/simulate.py)
        *sessions_only(),
        *extra,
    ]


def roomsync_httpx_cmd(ids_file: Path, concurrency: int) -> list[str]:
    cmd = roomsync_cmd(ids_file, concurrency)
    return [sys.executable, str(BENCH / "roomsync_httpx.py"), *cmd[1:]]


def bare_httpx_cmd(ids_file: Path, concurrency: int) -> list[str]:
    return [sys.executable, str(BENCH / "bare_httpx.py"), str(ids_file), str(concurrency)]


def floor_cmd(ids_file: Path, concurrency: int) -> list[str]:
    return [sys.executable, str(BENCH / "raw_asyncio.py"), str(ids_file), str(concurrency)]


def plain_cmd(ids_file: Path, _concurrency: int) -> list[str]:
    return [sys.executable, str(BENCH / "plain_sync.py"), str(ids_file)]


def dlt_cmd(ids_file: Path, _concurrency: int) -> list[str]:
    return [sys.executable, str(BENCH / "dlt_load.py"), str(ids_file)]


@dataclass
class Tool:
    name: str
    cmd: Callable[[Path, int], list[str]]
    needs_migration: bool
    sequential: bool = False


TOOLS = {
    "roomsync": Tool("roomsync", roomsync_cmd, needs_migration=True),
    "plain": Tool("plain script", plain_cmd, needs_migration=False, sequential=True),
    "dlt": Tool("dlt merge", dlt_cmd, needs_migration=False),
    "roomsync-httpx": Tool("roomsync on httpx's transport", roomsync_httpx_cmd, True),
    "bare": Tool("bare httpx GET + json()", bare_httpx_cmd, needs_migration=False),
    "floor": Tool("raw asyncio floor", floor_cmd, needs_migration=False),
}


def dlt_available() -> str | None:
    """None when dlt imports here, else why not."""
    probe = [sys.executable, "-c", "import dlt, dlt.destinations; dlt.destinations.sqlalchemy"]
    env = {"RUNTIME__DLTHUB_TELEMETRY": "false", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(probe, capture_output=True, text=True, timeout=120, env=env)
    if result.returncode == 0:
        return None
    last = (result.stderr.strip().splitlines() or ["unknown error"])[-1]
    return f"dlt not runnable: {last} (pip install -e '.[bench]')"


class Databases:
    """A fresh database per measurement: SQLite files in a temp dir, or PostgreSQL databases."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.count = 0
        self.pg: Any = None
        if kind == "postgresql":
            sys.path.insert(0, str(ROOT / "tests"))
            from pgserver import start_pg_server

            self.pg = start_pg_server()

    def new(self, label: str) -> str:
        self.count += 1
        name = f"{label.replace(' ', '_')}_{self.count}"
        if self.pg is None:
            return f"sqlite:///{self.workdir / (name + '.db')}"
        return self.pg.create_database(name).replace("postgresql://", "postgresql+psycopg://", 1)

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()


def run_client(
    tool: Tool,
    ids_file: Path,
    concurrency: int,
    base_url: str,
    dbs: Databases,
    *extra: str,
    stop_after_s: float | None = None,
) -> Measured:
    url = dbs.new(tool.name)
    if tool.needs_migration:
        migrate(url)
    env = client_env(base_url, url, DLT_WORKERS=str(concurrency))
    cmd = tool.cmd(ids_file, concurrency) + list(extra)
    return measure(cmd, env, CLIENT_TIMEOUT_S, stop_after_s=stop_after_s)


def startup_cpu(tool: Tool, base_url: str, dbs: Databases, workdir: Path) -> float:
    """CPU seconds of the same command over an empty id file (median of three)."""
    empty = workdir / "empty.txt"
    empty.write_text("")
    runs = [run_client(tool, empty, 1, base_url, dbs).cpu_s for _ in range(3)]
    return statistics.median(runs)


# --------------------------------------------------------------------------- workloads


def measure_tool(
    workload: str,
    tool: Tool,
    args: argparse.Namespace,
    n: int,
    latency_ms: float,
    server: Any,
    dbs: Databases,
    workdir: Path,
    startups: dict[str, float],
) -> Row:
    ids_file = workdir / f"{workload}-ids.txt"
    count = n
    if tool.sequential and n > args.plain_ids:
        count = args.plain_ids
        ids_file = workdir / f"{workload}-ids-{count}.txt"
        lines = (workdir / f"{workload}-ids.txt").read_text().splitlines()[:count]
        ids_file.write_text("".join(line + "\n" for line in lines))
    measured = run_client(tool, ids_file, args.concurrency, server.base_url, dbs)
    concurrency = 1 if tool.sequential else args.concurrency
    row = Row(workload, tool.name, count, concurrency, latency_ms, measured)
    row.concurrency_bound = args.concurrency
    row.startup_cpu_s = startups[_key(tool)]
    try:
        row.summary = measured.json()
    except RuntimeError as exc:
        row.measured = None
        row.note = str(exc).splitlines()[0]
    if measured.returncode not in (0,):
        row.note = f"exit {measured.returncode}"
    return row


def _key(tool: Tool) -> str:
    return next(key for key, value in TOOLS.items() if value is tool)


def latency_rows(
    args: argparse.Namespace, tools: list[str], dbs: Databases, workdir: Path, startups: dict
) -> list[Row]:
    """The latency workload, one server per tool so each gets its own request statistics."""
    return per_server_rows(
        "latency", args, args.ids, args.latency_ms, tools, dbs, workdir, startups
    )


def floor_lines(rows: list[Row]) -> list[str]:
    """Each client's run/bound over the raw asyncio floor's, same run (issue 21's measure)."""
    floor = next((r for r in rows if r.tool == TOOLS["floor"].name and r.summary), None)
    if floor is None:
        return []
    base = floor.run_s / floor.bound_s
    return [
        f"latency run/bound over the raw asyncio floor's ({base:.3f}): "
        + "; ".join(
            f"{r.tool} {r.run_s / r.bound_s / base:.3f}"
            for r in rows
            if r is not floor and r.summary and r.bound_s
        )
    ]


def cpu_rows(
    args: argparse.Namespace, tools: list[str], dbs: Databases, workdir: Path, startups: dict
) -> list[Row]:
    return per_server_rows("cpu", args, args.cpu_ids, 0.0, tools, dbs, workdir, startups)


def per_server_rows(
    workload: str,
    args: argparse.Namespace,
    n: int,
    latency_ms: float,
    tools: list[str],
    dbs: Databases,
    workdir: Path,
    startups: dict[str, float],
) -> list[Row]:
    rows = []
    for key in tools:
        tool = TOOLS[key]
        if key == "dlt" and (why := dlt_available()):
            rows.append(Row(workload, tool.name, n, args.concurrency, latency_ms, note=why))
            continue
        runs = []
        for _ in range(args.repeat):  # a fresh server each time: its statistics are per run
            ids_file = workdir / f"{workload}-ids.txt"
            with api_server(n, latency_ms, ids_file) as server:
                if key not in startups:  # an empty run sends no request: statistics stay clean
                    startups[key] = startup_cpu(tool, server.base_url, dbs, workdir)
                row = measure_tool(
                    workload, tool, args, n, latency_ms, server, dbs, workdir, startups
                )
            row.server = server.stats
            runs.append(row)
            print(markdown(HEADER, [row.cells()]).splitlines()[-1], file=sys.stderr, flush=True)
        rows.append(median_row(runs))
    return rows


TRANSPORT_TOOLS = ("roomsync-httpx", "roomsync", "bare")


def transport_rows(
    args: argparse.Namespace, dbs: Databases, workdir: Path, startups: dict[str, float]
) -> tuple[list[Row], list[str]]:
    """Issue 21's CPU measure: the three clients in interleaved repeats (a, b, c, a, b, c...),
    each against a fresh 0 ms stand-in; CPU per id net of each client's start-up."""
    n = args.transport_ids
    keys = [*TRANSPORT_TOOLS, *(k for k in args.transport_peers.split(",") if k)]
    if "dlt" in keys and (why := dlt_available()):
        print(f"transport: {why}", file=sys.stderr)
        keys.remove("dlt")
    runs: dict[str, list[Row]] = {key: [] for key in keys}
    for _ in range(args.repeat):
        for key in keys:
            tool = TOOLS[key]
            ids_file = workdir / "transport-ids.txt"
            with api_server(n, 0.0, ids_file) as server:
                if key not in startups:
                    startups[key] = startup_cpu(tool, server.base_url, dbs, workdir)
                row = measure_tool("transport", tool, args, n, 0.0, server, dbs, workdir, startups)
            row.server = server.stats
            runs[key].append(row)
            print(markdown(HEADER, [row.cells()]).splitlines()[-1], file=sys.stderr, flush=True)
    cpu = {key: [_cpu_ms_per_id(row) for row in rows] for key, rows in runs.items()}
    lines = [
        f"transport CPU ms/id (min/median/max of {args.repeat}): "
        + "; ".join(
            f"{TOOLS[key].name} {min(v):.3f}/{statistics.median(v):.3f}/{max(v):.3f}"
            for key, v in cpu.items()
        )
    ]
    med = {key: statistics.median(v) for key, v in cpu.items()}
    lines.append(
        "transport ratios of medians: roomsync / roomsync on httpx's transport "
        f"{med['roomsync'] / med['roomsync-httpx']:.2f}; roomsync / bare httpx "
        f"{med['roomsync'] / med['bare']:.2f} (target 0.6); roomsync on httpx's transport / "
        f"bare httpx {med['roomsync-httpx'] / med['bare']:.2f}"
        + "".join(
            f"; roomsync / {TOOLS[key].name} {med['roomsync'] / med[key]:.2f}"
            for key in keys
            if key not in TRANSPORT_TOOLS
        )
    )
    return [median_row(rows) for rows in runs.values()], lines


def _cpu_ms_per_id(row: Row) -> float:
    if row.measured is None:
        return float("nan")
    return (row.measured.cpu_s - row.startup_cpu_s) / max(row.ids, 1) * 1000


def median_row(runs: list[Row]) -> Row:
    """The run with the median time after start-up (the first if any run failed)."""
    if any(run.summary is None for run in runs):
        return next(run for run in runs if run.summary is None)
    ordered = sorted(runs, key=lambda run: run.run_s)
    row = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        row.note = f"median of {len(runs)}; all runs: " + ", ".join(
            row_ratio(run) for run in sorted(runs, key=lambda run: run.run_s)
        )
    return row


def row_ratio(row: Row) -> str:
    return f"{row.run_s / row.bound_s:.3f}" if row.bound_s else f"{row.run_s:.2f} s"


def rate_rows(
    args: argparse.Namespace, dbs: Databases, workdir: Path, startups: dict[str, float]
) -> tuple[list[Row], str]:
    """roomsync --rate-limit R over about --rate-seconds + 2 s; the busiest 10 s window."""
    n = int(args.rate_limit * (args.rate_seconds + 2))
    ids_file = workdir / "rate-ids.txt"
    tool = TOOLS["roomsync"]
    with api_server(n, args.latency_ms, ids_file) as server:
        measured = run_client(
            tool,
            ids_file,
            args.concurrency,
            server.base_url,
            dbs,
            "--rate-limit",
            str(args.rate_limit),
        )
    stats = server.stats
    row = Row(
        "rate",
        f"roomsync --rate-limit {args.rate_limit:g}",
        n,
        args.concurrency,
        args.latency_ms,
        measured,
        measured.json(),
        stats,
    )
    row.bound_override_s = n / args.rate_limit
    row.startup_cpu_s = startups.get("roomsync", 0.0)
    span = stats["last_start"] - stats["first_start"]
    overall = (stats["requests"] - 1) / span if span > 0 else float("nan")
    window = stats["most_in_10s"] / 10
    row.note = f"busiest 10 s: {window:.2f}/s; overall {overall:.2f}/s"
    line = (
        f"rate limit {args.rate_limit:g}/s: busiest 10 s window {stats['most_in_10s']} requests "
        f"= {window:.2f}/s ({(window / args.rate_limit - 1) * 100:+.1f} %), busiest 1 s "
        f"{stats['most_in_1s']}, overall {overall:.2f}/s over {span:.1f} s"
    )
    return [row], line


def version_line(repeat: int = 7) -> str:
    """Median wall and CPU of `roomsync --version`, and of a bare interpreter for scale."""

    def med(cmd: list[str]) -> tuple[float, float]:
        runs = [measure(cmd, {"PATH": "/usr/bin:/bin"}, 60) for _ in range(repeat)]
        return (
            statistics.median(m.wall_s for m in runs),
            statistics.median(m.cpu_s for m in runs),
        )

    wall, cpu = med([str(VENV_BIN / "roomsync"), "--version"])
    bare_wall, bare_cpu = med([sys.executable, "-c", "pass"])
    return (
        f"`roomsync --version`: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU "
        f"(bare `python -c pass`: {bare_wall * 1000:.0f} ms wall), median of {repeat}"
    )


def rss_rows(
    args: argparse.Namespace, dbs: Databases, workdir: Path, startups: dict[str, float]
) -> tuple[list[Row], str]:
    """The million-line file: the backfill's peak RSS, and the validation pass's on its own."""
    known_file = workdir / "rss-known.txt"
    ids_file = workdir / "rss-ids.txt"
    tool = TOOLS["roomsync"]
    with api_server(args.rss_known, 0.0, known_file) as server:
        write_mixed_ids(known_file, ids_file, args.rss_ids)
        measured = run_client(
            tool,
            ids_file,
            args.concurrency,
            server.base_url,
            dbs,
            stop_after_s=args.rss_seconds,
        )
    summary = measured.json()
    row = Row(
        "rss",
        "roomsync",
        summary["requested"],
        args.concurrency,
        0.0,
        measured,
        summary,
        server.stats,
    )
    row.startup_cpu_s = startups.get("roomsync", 0.0)
    row.note = f"file of {args.rss_ids:,} ids, {args.rss_known:,} known" + (
        f"; stopped by SIGTERM after {args.rss_seconds:g} s"
        if summary.get("interrupted")
        else "; ran to the end"
    )
    validation = measure_validation(ids_file)
    line = (
        f"validation pass alone over {args.rss_ids:,} ids (IdSource: check + dedupe, then "
        f"iterate): peak RSS {validation.maxrss_mb:.0f} MB, {validation.wall_s:.1f} s"
    )
    return [row], line


def write_mixed_ids(known_file: Path, ids_file: Path, total: int) -> None:
    """`total` lines: the known ids spread evenly among random (unknown, so 404) ones."""
    known = known_file.read_text().split()
    rng = random.Random(1)
    step = max(total // max(len(known), 1), 1)
    with ids_file.open("w") as out:
        k = 0
        for i in range(total):
            if i % step == 0 and k < len(known):
                out.write(known[k] + "\n")
                k += 1
            else:
                out.write(str(uuid.UUID(int=rng.getrandbits(128), version=4)) + "\n")


def measure_validation(ids_file: Path) -> Measured:
    """Peak RSS of the id file's validation pass alone (IdSource: check and dedupe, then
    iterate), in a fresh interpreter."""
    code = (
        "import sys\n"
        "from etl.idfiles import IdSource\n"
        "n = sum(1 for _ in IdSource.from_path(sys.argv[1]))\n"
        "print('{\"ids\": %d}' % n)\n"
    )
    return measure(
        [sys.executable, "-P", "-c", code, str(ids_file)], {"PATH": "/usr/bin:/bin"}, 600
    )


@dataclass
class FirstSyncTool:
    """One client of the firstsync workload: its table label and its command."""

    name: str
    cmd: list[str]


def first_sync_tools(args: argparse.Namespace) -> dict[str, FirstSyncTool]:
    roomsync = [
        str(VENV_BIN / "roomsync"),
        "sync",
        "--json",
        "--concurrency",
        str(args.concurrency),
    ]
    every = {
        "sessions": FirstSyncTool("roomsync sync --with none", [*roomsync, "--with", "none"]),
        "bill": FirstSyncTool("roomsync sync (whole bill)", roomsync),
        "floor": FirstSyncTool(
            "list floor (pages, json.loads, driver insert)",
            [sys.executable, str(BENCH / "firstsync_floor.py")],
        ),
    }
    keys = [k for k in args.first_sync_tools.split(",") if k]
    unknown = sorted(set(keys) - set(every))
    if unknown:
        raise SystemExit(
            f"--first-sync-tools: unknown {', '.join(unknown)} (of {', '.join(every)})"
        )
    return {key: every[key] for key in keys}


def _first_sync_run(
    tool: FirstSyncTool, n: int, base_url: str, dbs: Databases, startup: float
) -> Row:
    """One client into a freshly migrated empty database (the floor writes the same table)."""
    url = dbs.new("firstsync")
    migrate(url)
    measured = measure(tool.cmd, client_env(base_url, url), CLIENT_TIMEOUT_S * 4)
    row = Row("firstsync", tool.name, n, 1, 0.0, measured)
    row.startup_cpu_s = startup
    try:
        row.summary = measured.json()
    except RuntimeError as exc:
        row.measured, row.note = None, str(exc).splitlines()[0]
    if row.summary is not None:
        row.note = f"CPU µs/session {_us_per_session(row):.1f}" if n else ""
        if measured.returncode != 0:
            row.note = f"exit {measured.returncode}"
    return row


def _first_sync_startups(
    tools: dict[str, FirstSyncTool], dbs: Databases, account: bool
) -> dict[str, float]:
    """Each client's CPU over an empty account (median of three): its start-up, subtracted."""
    extra = ["--account"] if account else []
    with api_server(0, 0.0, None, extra=extra) as server:
        return {
            key: statistics.median(
                _cpu(_first_sync_run(tool, 0, server.base_url, dbs, 0.0)) for _ in range(3)
            )
            for key, tool in tools.items()
        }


def _cpu(row: Row) -> float:
    return row.measured.cpu_s if row.measured is not None else float("nan")


def first_sync_rows(
    args: argparse.Namespace, dbs: Databases, workdir: Path
) -> tuple[list[Row], list[str]]:
    """Issue 21's first-sync measure: for each account size, a first `roomsync sync` of the
    sessions only (`--with none`, the like-for-like), of the whole bill, and the floor
    (bench/firstsync_floor.py: list pages, json.loads, the bare driver's insert), interleaved
    (a, b, c, a, b, c...) against one stand-in holding the account, each into a fresh migrated
    database. CPU per session net of each client's start-up (an empty account), the ratio
    to the floor run by run, peak RSS."""
    tools = first_sync_tools(args)
    account = "bill" in tools  # members, recordings, rooms and logs only matter to the bill
    startups = _first_sync_startups(tools, dbs, account)
    rows: list[Row] = []
    lines = [
        "first sync start-up CPU (empty account, median of 3), subtracted: "
        + ", ".join(f"{tools[k].name} {v * 1000:.0f} ms" for k, v in startups.items())
    ]
    peaks: dict[str, dict[int, list[float]]] = {key: {} for key in tools}
    sizes = [int(n) for n in args.first_sync.split(",")]
    for n in sizes:
        runs: dict[str, list[Row]] = {key: [] for key in tools}
        extra = ["--account"] if account else []
        with api_server(n, 0.0, None, max_seconds=4 * 3600, extra=extra) as server:
            for _ in range(args.repeat):
                for key, tool in tools.items():
                    row = _first_sync_run(tool, n, server.base_url, dbs, startups[key])
                    runs[key].append(row)
                    line = markdown(HEADER, [row.cells()]).splitlines()[-1]
                    print(line, file=sys.stderr, flush=True)
        for key, key_runs in runs.items():
            peaks[key][n] = [r.measured.maxrss_mb for r in key_runs if r.measured is not None]
            row = median_row(key_runs)
            row.note = f"peak RSS MB min/median/max {_spread(peaks[key][n], '.0f')}"
            rows.append(row)
        lines += _first_sync_lines(n, tools, runs)
    for key in tools:
        if key != "floor":
            lines += _rss_projection(tools[key].name, sizes, peaks[key])
    return rows, lines


def _us_per_session(row: Row) -> float:
    if row.measured is None or row.summary is None or row.measured.returncode != 0:
        return float("nan")
    return (row.measured.cpu_s - row.startup_cpu_s) / max(row.ids, 1) * 1e6


def _first_sync_lines(
    n: int, tools: dict[str, FirstSyncTool], runs: dict[str, list[Row]]
) -> list[str]:
    """CPU µs per session of each client, and each roomsync over the floor run by run."""
    cpu = {key: [_us_per_session(r) for r in key_runs] for key, key_runs in runs.items()}
    lines = [
        f"first sync of {n:,} sessions, CPU µs/session net of start-up (min/median/max of "
        f"{len(next(iter(cpu.values())))}): "
        + "; ".join(f"{tools[k].name} {_spread(v, '.1f')}" for k, v in cpu.items())
    ]
    if "floor" in cpu:
        for key in (k for k in cpu if k != "floor"):
            ratios = [a / b for a, b in zip(cpu[key], cpu["floor"], strict=True)]
            lines.append(
                f"first sync of {n:,} sessions, {tools[key].name} / floor, CPU per session, "
                f"repeat by repeat (min/median/max): {_spread(ratios, '.2f')}; of the medians "
                f"{statistics.median(cpu[key]) / statistics.median(cpu['floor']):.2f}"
            )
    return lines


def _rss_projection(name: str, sizes: list[int], peaks: dict[int, list[float]]) -> list[str]:
    """Peak RSS per session between the smallest and the largest account, and where a
    1,000,000-session account would land if it grew on that line."""
    if len(sizes) < 2 or not peaks.get(sizes[0]) or not peaks.get(sizes[-1]):
        return []
    small, large = sizes[0], sizes[-1]
    rise = statistics.median(peaks[large]) - statistics.median(peaks[small])
    slope = rise * 1024 * 1024 / (large - small)
    at_million = statistics.median(peaks[large]) + slope * (1_000_000 - large) / 1024 / 1024
    return [
        f"first sync, {name}: {slope:.0f} bytes of peak RSS per session between {small:,} and "
        f"{large:,} sessions; projected peak for 1,000,000 sessions: {at_million:.0f} MB"
    ]


def notfound_rows(
    args: argparse.Namespace, dbs: Databases, workdir: Path, startups: dict[str, float]
) -> tuple[list[Row], list[str]]:
    """CPU per 404 against CPU per 200, same command, same number of ids, interleaved."""
    n = args.notfound_ids
    tool = TOOLS["roomsync"]
    known = workdir / "notfound-known.txt"
    unknown = workdir / "notfound-unknown.txt"
    rng = random.Random(404)
    unknown.write_text(
        "".join(f"{uuid.UUID(int=rng.getrandbits(128), version=4)}\n" for _ in range(n))
    )
    kinds: dict[str, list[Row]] = {"200": [], "404": []}
    with api_server(n, 0.0, known) as server:
        if "roomsync" not in startups:
            startups["roomsync"] = startup_cpu(tool, server.base_url, dbs, workdir)
        for _ in range(args.repeat):
            for kind, ids_file in (("200", known), ("404", unknown)):
                measured = run_client(tool, ids_file, args.concurrency, server.base_url, dbs)
                row = Row("notfound", f"roomsync, {kind}s", n, args.concurrency, 0.0, measured)
                row.summary = measured.json()
                row.startup_cpu_s = startups["roomsync"]
                kinds[kind].append(row)
                print(markdown(HEADER, [row.cells()]).splitlines()[-1], file=sys.stderr, flush=True)

    def cpu_ms(row: Row) -> float:
        assert row.measured is not None
        return (row.measured.cpu_s - row.startup_cpu_s) / n * 1000

    ratios = [cpu_ms(b) / cpu_ms(a) for a, b in zip(kinds["200"], kinds["404"], strict=True)]
    rows = [median_row(kinds["200"]), median_row(kinds["404"])]
    line = (
        f"CPU per 404 / CPU per 200 ({n:,} ids each, run by run, min/median/max): "
        + _spread(ratios, ".2f")
        + "; CPU ms/id 200: "
        + _spread([cpu_ms(r) for r in kinds["200"]], ".3f")
        + ", 404: "
        + _spread([cpu_ms(r) for r in kinds["404"]], ".3f")
    )
    return rows, [line]


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    middle = statistics.median(values)
    return "/".join(format(v, fmt) for v in (min(values), middle, max(values)))


# --------------------------------------------------------------------------- main


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", action="append", choices=WORKLOADS, help="repeatable")
    p.add_argument("--tools", default="roomsync,plain,dlt", help="comma-separated subset")
    p.add_argument("--ids", type=int, default=2000, help="ids in the latency workload")
    p.add_argument("--latency-ms", type=float, default=100.0)
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument(
        "--plain-ids",
        type=int,
        default=300,
        help="the sequential script's share of each workload (it is slow)",
    )
    p.add_argument("--cpu-ids", type=int, default=20000, help="ids in the 0 ms cpu workload")
    p.add_argument(
        "--transport-ids", type=int, default=5000, help="ids in the 0 ms transport workload"
    )
    p.add_argument(
        "--transport-peers",
        default="",
        help="more tools in the transport workload, comma-separated (dlt, floor)",
    )
    p.add_argument("--rate-limit", type=float, default=50.0)
    p.add_argument("--rate-seconds", type=float, default=10.0)
    p.add_argument("--rss", action="store_true", help="run the million-id RSS workload")
    p.add_argument("--rss-ids", type=int, default=1_000_000)
    p.add_argument("--rss-known", type=int, default=20_000, help="ids the API knows")
    p.add_argument(
        "--rss-seconds",
        type=float,
        default=None,
        help="stop the RSS backfill (SIGTERM) after this long; default: run to the end",
    )
    p.add_argument("--notfound-ids", type=int, default=5000, help="ids of each notfound run")
    p.add_argument(
        "--first-sync",
        default="20000,100000",
        help="account sizes of the firstsync workload (comma-separated)",
    )
    p.add_argument(
        "--first-sync-tools",
        default="sessions,bill,floor",
        help="clients of the firstsync workload, comma-separated: sessions (roomsync sync "
        "--with none), bill (roomsync sync, every part), floor (bench/firstsync_floor.py)",
    )
    p.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    p.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is kept")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    opt_in = ("rss", "transport", "firstsync", "notfound")
    default = [w for w in WORKLOADS if w not in opt_in or (w == "rss" and args.rss)]
    only = set(args.only or default)
    tools = [t for t in args.tools.split(",") if t]
    rows: list[Row] = []
    lines: list[str] = []
    startups: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="roomsync-bench-") as tmp:
        workdir = Path(tmp)
        dbs = Databases(args.database, workdir)
        try:
            if "latency" in only:
                latency = latency_rows(args, tools, dbs, workdir, startups)
                rows += latency
                lines += floor_lines(latency)
            if "cpu" in only:
                rows += cpu_rows(args, tools, dbs, workdir, startups)
            if "rate" in only:
                rate, line = rate_rows(args, dbs, workdir, startups)
                rows += rate
                lines.append(line)
            if "rss" in only:
                rss, line = rss_rows(args, dbs, workdir, startups)
                rows += rss
                lines.append(line)
            if "transport" in only:
                transport, transport_lines = transport_rows(args, dbs, workdir, startups)
                rows += transport
                lines += transport_lines
            if "notfound" in only:
                found, found_lines = notfound_rows(args, dbs, workdir, startups)
                rows += found
                lines += found_lines
            if "firstsync" in only:
                first, first_lines = first_sync_rows(args, dbs, workdir)
                rows += first
                lines += first_lines
            if "version" in only:
                lines.append(version_line())
        finally:
            dbs.close()
    report(args, rows, lines, startups)
    return 0


def report(
    args: argparse.Namespace, rows: list[Row], lines: list[str], startups: dict[str, float]
) -> None:
    print(
        f"machine: {platform.machine()}, {_cores()} cores, Python {platform.python_version()}, "
        f"database {args.database}; command: python bench/run.py {' '.join(sys.argv[1:])}"
    )
    print()
    print(markdown(HEADER, [row.cells() for row in rows]))
    print()
    starts = ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in startups.items())
    if starts:
        print(f"- start-up CPU subtracted from CPU ms/id (an empty run): {starts}")
    for line in lines:
        print(f"- {line}")
    out = BENCH / "results"
    out.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (out / f"{stamp}.json").write_text(
        json.dumps(
            {
                "args": vars(args),
                "rows": [dict(zip(HEADER, row.cells(), strict=True)) for row in rows],
                "lines": lines,
                "startup_cpu_s": startups,
                "at": time.time(),
            },
            indent=2,
        )
    )


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
