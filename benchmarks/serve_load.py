"""Load test of ``distiltune serve`` against the usual way of serving a Hugging Face classifier.

Servers, each started on 127.0.0.1 as its own process (all of them up at once) and stopped with SIGTERM afterwards:

* ``distiltune-torch``: ``distiltune serve RUN`` (dynamic batching, PyTorch);
* ``distiltune-onnx-int8``: ``distiltune serve RUN --backend onnx`` on the run's int8 export (made here with
  ``distiltune.export`` when the run has none);
* ``pipeline``: the usual server, a minimal FastAPI app whose plain ``def`` endpoint (FastAPI's thread pool) calls
  ``transformers.pipeline("text-classification", model=RUN/model)`` once per request, torch's default threads;
* ``pipeline-1-thread``: the same with ``torch.set_num_threads(1)``.

The model: the packaged MiniLM-L6 fine-tuned on the bundled IMDb sample (trained here unless ``--run`` names a
run). Each request carries one real review from the bundled IMDb test set (``{"inputs": text}``), truncated by
every server to the run's max length. Load levels, each with every server in turn (``--rounds`` repeats them all,
each round starting with the next server; ``medians`` in the results file are over rounds):

* closed loop: 1, 8, 32, 64 concurrent clients (``--concurrency``), each sending its next request as soon as
  the previous one is answered, for ``--duration`` seconds after ``--warmup`` seconds that are not counted;
* overload (open loop): requests arrive at ``--overload-factor`` (2) times the best texts/s the server reached in
  the closed loop, whatever the answers, for ``--duration`` seconds (at most ``--max-outstanding`` unanswered at a
  time; arrivals beyond that are counted as ``not_sent``). Every request should get a result or a 429; 5xx and
  client-side errors (timeouts, refused connections) are counted.

The load generator (asyncio + httpx, in this process) stands in for locust: it keeps each request's latency and
status exactly (locust rounds latencies and mixes failures into its percentiles) and can drive an open-loop
arrival rate. It shares the machine's cores with the server under test, so compare servers, not machines.

Reported per server and level: texts/s (answers with status 200 per second of the measured window), latency
p50/p95/p99/mean of the 200 answers (ms), counts by status (429, 5xx, client errors), and for distiltune the mean
inputs per model batch from its /metrics. Run from the repository root::

    .venv/bin/python benchmarks/serve_load.py                       # trains MiniLM first (minutes)
    .venv/bin/python benchmarks/serve_load.py --run runs/<minilm-imdb-demo-run>
    .venv/bin/python benchmarks/serve_load.py --run RUN --smoke     # seconds per server, tiny sizes

Writes ``benchmarks/results/serve_load_<date>.json`` (``--smoke``: ``serve_load_smoke_<date>.json``) and prints
a table. The run stops by itself: every level is bounded in time and in requests.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import datetime
import importlib.resources
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("distiltune-torch", "distiltune-onnx-int8", "pipeline", "pipeline-1-thread")
HOST = "127.0.0.1"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command")
    pipeline = commands.add_parser("pipeline-server", help="(internal) serve the usual transformers pipeline app")
    pipeline.add_argument("--model", required=True)
    pipeline.add_argument("--port", type=int, required=True)
    pipeline.add_argument("--max-length", type=int, required=True)
    pipeline.add_argument("--one-thread", action="store_true")

    parser.add_argument("--run", type=Path, default=None, help="A trained run (default: train MiniLM on imdb-demo).")
    parser.add_argument("--epochs", type=float, default=1.0, help="Epochs when training the run here.")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"Comma-separated subset of {SERVERS}.")
    parser.add_argument("--concurrency", default="1,8,32,64", help="Closed-loop client counts.")
    parser.add_argument("--duration", type=float, default=30.0, help="Measured seconds per level.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds at the start of each level not counted.")
    parser.add_argument("--max-requests", type=int, default=20_000, help="Cap on the requests of one level.")
    parser.add_argument("--overload-factor", type=float, default=2.0, help="Open-loop rate / best closed-loop rate.")
    parser.add_argument("--no-overload", action="store_true", help="Skip the open-loop overload level.")
    parser.add_argument("--max-outstanding", type=int, default=512, help="Open loop: unanswered requests at most.")
    parser.add_argument("--timeout", type=float, default=60.0, help="Client timeout per request (s).")
    parser.add_argument("--startup-timeout", type=float, default=600.0, help="Seconds a server gets to be ready.")
    parser.add_argument(
        "--serve-args", default="", help="Extra flags for distiltune serve, e.g. '--max-wait-ms 5 --threads 2'."
    )
    parser.add_argument("--export-samples", type=int, default=500, help="Parity-check rows of the int8 export.")
    parser.add_argument(
        "--rounds", type=int, default=1, help="Rounds of every level; servers take turns within each (default 1)."
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--smoke", action="store_true", help="Tiny sizes: levels 1 and 4, 2 s each.")
    parser.add_argument("--output", type=Path, default=None, help="Result file (default benchmarks/results/...).")
    args = parser.parse_args(argv)
    if args.smoke:
        args.concurrency, args.duration, args.warmup, args.max_requests = "1,4", 2.0, 0.5, 500
        args.export_samples = min(args.export_samples, 50)
    return args


# --- the usual server ---------------------------------------------------------------------------------


def pipeline_app(model_dir: str, max_length: int, one_thread: bool) -> Any:
    """What a tutorial deploys: a pipeline built once, called per request from a plain ``def`` endpoint."""
    import torch
    from fastapi import FastAPI
    from transformers import pipeline

    if one_thread:
        torch.set_num_threads(1)
    classifier = pipeline("text-classification", model=model_dir, device=-1)
    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    def predict(body: dict[str, Any]) -> Any:
        # truncation to the run's max length: the same work as distiltune serve (and no 500 on long reviews)
        return classifier(body["inputs"], truncation=True, max_length=max_length, top_k=None)

    return app


def serve_pipeline(args: argparse.Namespace) -> None:
    import uvicorn

    uvicorn.run(pipeline_app(args.model, args.max_length, args.one_thread), host=HOST, port=args.port)


# --- servers ------------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    reports_batches: bool

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def server_commands(run_dir: Path, names: list[str], serve_args: list[str], max_length: int) -> list[Server]:
    servers = []
    for name in names:
        port = free_port()
        if name.startswith("distiltune"):
            command = [sys.executable, "-m", "distiltune", "serve", str(run_dir), "--host", HOST, "--port", str(port)]
            if name == "distiltune-onnx-int8":
                command += ["--backend", "onnx"]
            servers.append(Server(name, command + serve_args, port, reports_batches=True))
        else:
            command = [sys.executable, str(Path(__file__).resolve()), "pipeline-server", "--model"]
            command += [str(run_dir / "model"), "--port", str(port), "--max-length", str(max_length)]
            if name == "pipeline-1-thread":
                command.append("--one-thread")
            servers.append(Server(name, command, port, reports_batches=False))
    return servers


@contextlib.contextmanager
def started(server: Server, log_path: Path, startup_timeout: float) -> Iterator[dict[str, Any]]:
    """Start the server, wait for /health, yield a dict that receives its exit code after SIGTERM."""
    import httpx

    record: dict[str, Any] = {}
    with log_path.open("w") as log:
        process = subprocess.Popen(server.command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"{server.name} exited with {process.returncode} at startup; see {log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{server.name} was not ready after {startup_timeout:.0f} s; see {log_path}")
                time.sleep(0.5)
            with contextlib.suppress(httpx.HTTPError, ValueError):  # the pipeline servers have no /info
                info = httpx.get(f"{server.url}/info", timeout=5)
                if info.status_code == 200:
                    record["info"] = {key: info.json().get(key) for key in ("backend", "model_dtype", "version")}
            yield record
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                record["exit_code"] = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                record["exit_code"] = "killed after 60 s"


# --- load ---------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    start: float
    seconds: float
    status: str
    """The HTTP status code, or ``error:<exception name>`` when no answer came."""


@dataclass
class Level:
    mode: str
    clients: int | None = None
    rate: float | None = None
    outcomes: list[Outcome] = field(default_factory=list)
    not_sent: int = 0


async def closed_loop(url: str, texts: list[str], clients: int, args: argparse.Namespace) -> Level:
    import httpx

    level = Level(mode="closed", clients=clients)
    stop_at = time.perf_counter() + args.warmup + args.duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout) as client:

        async def one_client(index: int) -> None:
            position = index
            while time.perf_counter() < stop_at and len(level.outcomes) < args.max_requests:
                level.outcomes.append(await send(client, url, texts[position % len(texts)]))
                position += clients

        await asyncio.gather(*(one_client(index) for index in range(clients)))
    return level


async def open_loop(url: str, texts: list[str], rate: float, args: argparse.Namespace) -> Level:
    """Poisson arrivals at ``rate`` per second, sent whatever the server answers (up to ``max_outstanding``)."""
    import httpx

    level = Level(mode="open", rate=rate)
    arrivals = random.Random(args.seed)
    stop_at = time.perf_counter() + args.warmup + args.duration
    limits = httpx.Limits(max_connections=args.max_outstanding, max_keepalive_connections=args.max_outstanding)
    outstanding: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(limits=limits, timeout=args.timeout) as client:

        async def one_request(text: str) -> None:
            level.outcomes.append(await send(client, url, text))

        next_arrival, sent = time.perf_counter(), 0
        while next_arrival < stop_at and sent < args.max_requests:
            await asyncio.sleep(max(0.0, next_arrival - time.perf_counter()))
            if len(outstanding) >= args.max_outstanding:
                level.not_sent += 1
            else:
                task = asyncio.create_task(one_request(texts[sent % len(texts)]))
                outstanding.add(task)
                task.add_done_callback(outstanding.discard)
                sent += 1
            next_arrival += arrivals.expovariate(rate)
        if outstanding:
            await asyncio.wait(outstanding)
    return level


async def send(client: Any, url: str, text: str) -> Outcome:
    started = time.perf_counter()
    try:
        response = await client.post(f"{url}/predict", json={"inputs": text})
        status = str(response.status_code)
    except Exception as err:  # a timeout or a refused/reset connection: the client got no answer
        status = f"error:{type(err).__name__}"
    return Outcome(started, time.perf_counter() - started, status)


def summarize(level: Level, warmup: float) -> dict[str, Any]:
    import numpy as np

    if not level.outcomes:
        return {"mode": level.mode, "requests": 0}
    begin = min(outcome.start for outcome in level.outcomes) + warmup
    measured = [outcome for outcome in level.outcomes if outcome.start >= begin] or level.outcomes
    window = max(outcome.start + outcome.seconds for outcome in measured) - min(o.start for o in measured)
    statuses = collections.Counter(outcome.status for outcome in measured)
    answered = np.array([outcome.seconds for outcome in measured if outcome.status == "200"]) * 1000
    latency = (
        {
            "p50": round(float(np.percentile(answered, 50)), 1),
            "p95": round(float(np.percentile(answered, 95)), 1),
            "p99": round(float(np.percentile(answered, 99)), 1),
            "mean": round(float(answered.mean()), 1),
        }
        if len(answered)
        else None
    )
    return {
        "mode": level.mode,
        "clients": level.clients,
        "arrival_rate": round(level.rate, 2) if level.rate else None,
        "requests": len(measured),
        "window_seconds": round(window, 2),
        "texts_per_second": round(len(answered) / window, 2) if window > 0 else None,
        "latency_ms": latency,
        "status_counts": dict(sorted(statuses.items())),
        "rejected_429": statuses.get("429", 0),
        "server_errors_5xx": sum(count for status, count in statuses.items() if status.startswith("5")),
        "client_errors": sum(count for status, count in statuses.items() if status.startswith("error")),
        "not_sent": level.not_sent,
    }


def batch_counters(url: str) -> tuple[float, float]:
    """distiltune serve's batch-size histogram: (sum of batch sizes, number of batches)."""
    import httpx

    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {}
    for name in ("distiltune_batch_size_sum", "distiltune_batch_size_count"):
        match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
        values[name] = float(match.group(1)) if match else 0.0
    return values["distiltune_batch_size_sum"], values["distiltune_batch_size_count"]


def measure(server: Server, texts: list[str], args: argparse.Namespace, level_runner: Callable[[], Any]) -> dict:
    before = batch_counters(server.url) if server.reports_batches else None
    summary = summarize(asyncio.run(level_runner()), args.warmup)
    if before is not None:
        after = batch_counters(server.url)
        batches = after[1] - before[1]
        summary["mean_batch_size"] = round((after[0] - before[0]) / batches, 2) if batches else None
    return summary


def load_round(turn: list[Server], texts: list[str], args: argparse.Namespace) -> Iterator[tuple[Server, dict]]:
    """One round: every closed-loop level with each server in turn, then each server's open-loop overload level (at
    ``--overload-factor`` x the best texts/s that server reached in this round's closed loop)."""
    best: dict[str, float] = {server.name: 0.0 for server in turn}
    for clients in [int(value) for value in args.concurrency.split(",")]:
        for server in turn:
            level = measure(server, texts, args, lambda s=server, c=clients: closed_loop(s.url, texts, c, args))
            best[server.name] = max(best[server.name], level.get("texts_per_second") or 0.0)
            yield server, level
    if not args.no_overload:
        for server in turn:
            rate = max(1.0, args.overload_factor * best[server.name])
            yield server, measure(server, texts, args, lambda s=server, r=rate: open_loop(s.url, texts, r, args))


def level_medians(levels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per load (clients, or the open loop), the median over rounds of texts/s and latency percentiles, and the
    status counts summed over rounds."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for level in levels:
        groups.setdefault("open" if level["mode"] == "open" else str(level["clients"]), []).append(level)
    medians = []
    for load, group in groups.items():
        latencies = [level.get("latency_ms") or {} for level in group]
        medians.append(
            {
                "load": load,
                "rounds": len(group),
                "texts_per_second": _median([level.get("texts_per_second") for level in group]),
                "latency_ms": {key: _median([lat.get(key) for lat in latencies]) for key in ("p50", "p95", "p99")},
                "rejected_429": sum(level["rejected_429"] for level in group),
                "server_errors_5xx": sum(level["server_errors_5xx"] for level in group),
                "client_errors": sum(level["client_errors"] for level in group),
            }
        )
    return medians


def _median(values: list[Any]) -> float | None:
    present = [value for value in values if value is not None]
    return round(statistics.median(present), 2) if present else None


def describe(level: dict[str, Any]) -> str:
    load = f"{level['clients']} clients" if level["mode"] == "closed" else f"{level['arrival_rate']} req/s open loop"
    latency = level.get("latency_ms") or {}
    return (
        f"{load}: {level.get('texts_per_second')} texts/s, p50 {latency.get('p50')} ms, p95 {latency.get('p95')} "
        f"ms, p99 {latency.get('p99')} ms, 429 {level['rejected_429']}, 5xx {level['server_errors_5xx']}, "
        f"client errors {level['client_errors']}"
    )


# --- setup --------------------------------------------------------------------------------------------


def review_texts(seed: int) -> list[str]:
    """The bundled IMDb test reviews (the imdb-demo preset's test split), shuffled."""
    resource = importlib.resources.files("distiltune").joinpath("resources/imdb_demo/test.jsonl")
    texts = [json.loads(line)["text"] for line in resource.read_text(encoding="utf-8").split("\n") if line.strip()]
    random.Random(seed).shuffle(texts)
    return texts


def prepare_run(args: argparse.Namespace) -> Path:
    if args.run is not None:
        return args.run
    import distiltune

    print("Training MiniLM on the bundled IMDb sample (distiltune demo settings)...", flush=True)
    run = distiltune.train(
        None,
        {
            "data.dataset": "imdb-demo",
            "model.name": "minilm",
            "train.epochs": args.epochs,
            "train.batch_size": 16,
            "train.lr": 5e-5,
            "run.output_dir": str(REPO_ROOT / "runs"),
        },
    )
    return run.dir


def ensure_int8_export(run_dir: Path, samples: int) -> None:
    from distiltune.export import export_run
    from distiltune.inference.onnx_runtime import default_export_dir

    if not (default_export_dir(run_dir, "int8") / "model.onnx").is_file():
        print(f"Exporting {run_dir} to ONNX int8...", flush=True)
        export_run(run_dir, quantize="int8", max_samples=samples)


def run_max_length(run_dir: Path) -> int:
    return int(json.loads((run_dir / "model" / "labels.json").read_text())["max_length"])


def main() -> None:
    args = parse_args()
    if args.command == "pipeline-server":
        serve_pipeline(args)
        return
    from throughput import hardware_summary  # a sibling script: imports torch, so only here

    if args.rounds < 1:
        raise SystemExit(f"--rounds must be at least 1, got {args.rounds}.")
    names = [name.strip() for name in args.servers.split(",") if name.strip()]
    unknown = sorted(set(names) - set(SERVERS))
    if unknown:
        raise SystemExit(f"Unknown servers {unknown}; choose from {SERVERS}.")
    run_dir = prepare_run(args)
    if "distiltune-onnx-int8" in names:
        ensure_int8_export(run_dir, args.export_samples)
    texts = review_texts(args.seed)
    date = datetime.date.today().isoformat()
    name = f"serve_load{'_smoke' if args.smoke else ''}_{date}.json"
    output = args.output or REPO_ROOT / "benchmarks" / "results" / name
    logs = Path(tempfile.mkdtemp(prefix="serve_load_logs_"))
    result: dict[str, Any] = {
        "benchmark": "serve_load",
        "date": date,
        "hardware": hardware_summary("cpu"),
        "run": run_dir.name,
        "max_length": run_max_length(run_dir),
        "texts": "bundled IMDb test reviews (imdb-demo), one per request",
        "settings": {key: value for key, value in vars(args).items() if key not in ("command", "run", "output")},
        "servers": {},
    }
    servers = server_commands(run_dir, names, args.serve_args.split(), result["max_length"])
    with contextlib.ExitStack() as stack:
        records = {}
        for server in servers:
            print(f"{server.name}: {' '.join(server.command)}", flush=True)
            records[server.name] = stack.enter_context(
                started(server, logs / f"{server.name}.log", args.startup_timeout)
            )
            result["servers"][server.name] = {"command": server.command[1:], "levels": []}
        for round_index in range(args.rounds):
            # Every server is up at once and they take turns at each level, each round starting one server later:
            # a VM whose speed drifts over minutes then slows every server alike instead of whichever ran last.
            shift = round_index % len(servers)
            turn = servers[shift:] + servers[:shift]
            for server, level in load_round(turn, texts, args):
                level["round"] = round_index
                result["servers"][server.name]["levels"].append(level)
                print(f"  round {round_index + 1}, {server.name}: {describe(level)}", flush=True)
                output.write_text(json.dumps(result, indent=2) + "\n")  # after each level: a partial result survives
    for server in servers:
        entry = result["servers"][server.name]
        entry.update(records[server.name])
        entry["medians"] = level_medians(entry["levels"])
    output.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print(f"Wrote {output} (server logs in {logs})")


def print_table(result: dict[str, Any]) -> None:
    header = (
        f"{'server':22} {'load':>16} {'texts/s':>9} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'429':>6} {'5xx':>5}"
    )
    print(header + f" {'client err':>10}")
    for name, server in result["servers"].items():
        for level in server["levels"]:
            load = f"{level['clients']} clients" if level["mode"] == "closed" else f"{level['arrival_rate']}/s open"
            latency = level.get("latency_ms") or {}
            print(
                f"{name:22} {load:>16} {level.get('texts_per_second') or 0:>9} {latency.get('p50', '-'):>9} "
                f"{latency.get('p95', '-'):>9} {latency.get('p99', '-'):>9} {level['rejected_429']:>6} "
                f"{level['server_errors_5xx']:>5} {level['client_errors']:>10}"
            )
        print(f"{name:22} exit code after SIGTERM: {server.get('exit_code')}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
