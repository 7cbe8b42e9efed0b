"""Serving benchmark: the API against `mlflow models serve` on the same registered model.

Trains the default model (params.yaml) on the real corpus, registers it as
spam-classifier@champion in a fresh tmp MLflow store, then starts three servers at once:

  * `api`: `python -m api` (the Docker image's command), WORKERS=2, MODEL_URI=models:/…@champion,
    with the prediction log on (SQLite, as deployed by default);
  * `api-nolog`: the same with the prediction log off (PREDICTION_LOG_URL empty);
  * `mlflow`: `mlflow models serve -m models:/spam-classifier@champion --env-manager local -w 2`

and loads them from this process with wrk on 127.0.0.1, one message per request, the messages
drawn from the corpus. The servers are measured in turn within each round, at every connection
count, the order reversed every other round (api, api-nolog, mlflow; mlflow, api-nolog, api; …),
so slow drifts of a shared machine fall on all of them; each figure is the median over rounds, and
each ratio the median of the rounds' own ratios (adjacent runs). Every wrk run counts towards the
failed requests (non-2xx answers and socket errors), warm-ups included.

Also: the API's /predict/batch of 1,000 texts against scoring the same texts in this process, with
the lean scorer the API uses (`compile_scorer`) and, separately, the full scikit-learn pipeline
(`predict_proba`), rounds interleaved; and what one logged prediction costs the request path
(queueing a record) and the writer thread (inserting it), timed in-process on the API's
`PredictionLogWriter` against a SQLite file.

Targets: API ≥ 3× mlflow at 32 connections; API p99 ≤ 10 ms at 8 connections; batch ≥ 80% of
in-process (lean); prediction log costs ≤ 5% of throughput.

    python bench/serve.py [--quick] [--corpus PATH] [--duration 6] [--rounds 3] [--connections 1 8 32 128]
Needs wrk (apt-get install wrk). The machine's cores are shared with the load generator.
`--quick` is a smoke run (short points, one round, 8 and 32 connections): its figures are not the
published ones.

The e-mail channel (/predict/email and the spamd listener against SpamAssassin's spamd, and the mixed
soak with reloads) has its own benchmark: bench/serve_email.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
VENV_BIN = Path(sys.executable).parent
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"

from api.prediction_log import PredictionLogWriter, open_log  # noqa: E402
from spamfilter.config import Params, Settings, flatten  # noqa: E402
from spamfilter.data.corpus import parse_corpus  # noqa: E402
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM  # noqa: E402
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability  # noqa: E402
from spamfilter.modeling.scoring import compile_scorer  # noqa: E402
from spamfilter.registry import tracking  # noqa: E402

CHAMPION = "models:/spam-classifier@champion"
SERVERS = ("api", "api-nolog", "mlflow")
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass
class WrkResult:
    rps: float
    p50: float  # ms
    p99: float  # ms
    failed: int
    requests: int = 0  # answers wrk received (requests still in flight when the run ended are not among them)


@dataclass
class Target:
    """A server under load: the URL wrk posts to and its request script."""

    url: str
    script: Path


@dataclass
class Ledger:
    """Every wrk run of the benchmark, so that failed requests are counted over all of them."""

    runs: list[tuple[str, int, WrkResult]] = field(default_factory=list)

    def failed(self, name: str | None = None) -> int:
        return sum(result.failed for server, _, result in self.runs if name is None or server == name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def load_corpus(path: Path) -> tuple[list[str], list[str]]:
    parsed = parse_corpus(path.read_bytes(), str(path))
    return [m.text for m in parsed.messages], [m.label for m in parsed.messages]


def register_model(texts: list[str], labels: list[str], env: dict[str, str]) -> Any:
    data = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8")) or {}
    # The SMS channel's params: `channels.sms` (the top level in the flat layout that preceded channels).
    params = Params.model_validate(data["channels"]["sms"] if "channels" in data else data)
    featurizer = build_featurizer(params.featurize)
    features = featurizer.fit_transform(texts)
    model = assemble(featurizer, build_classifier(params.train).fit(features, labels))
    settings = Settings(**env)  # type: ignore[arg-type]
    run = tracking.log_training_run(
        settings,
        model,
        params=flatten(params.model_dump(mode="json", exclude={"gate", "monitor"})),
        tags={},
        input_example=[OBVIOUS_SPAM[0], OBVIOUS_HAM[0]],
        run_name="bench-serve",
    )
    tracking.set_alias(settings, "champion", run.version)
    return model


@contextmanager
def server(
    command: list[str], env: dict[str, str], ready_url: str, log_path: Path, start_timeout: float
) -> Iterator[subprocess.Popen[bytes]]:
    """The server process, started and answering `ready_url`; terminated on leaving."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent)
    try:
        deadline = time.monotonic() + start_timeout
        streak = 0
        while streak < 10:  # ten answers running on fresh connections: every worker is up
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                streak = streak + 1 if httpx.get(ready_url, timeout=5).status_code == 200 else 0
            except httpx.TransportError:
                streak = 0
            time.sleep(0.1 if streak else 0.5)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def lua_script(path: Path, bodies: list[str], headers: dict[str, str]) -> Path:
    """A wrk script cycling through the request bodies (Lua long strings, so no escaping)."""
    quoted = ",\n".join(f"[==[{body}]==]" for body in bodies if "]==]" not in body)
    header_lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    path.write_text(
        f"""wrk.method = "POST"
{header_lines}
local bodies = {{
{quoted}
}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
""",
        encoding="utf-8",
    )
    return path


def _ms(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if found is None:
        raise ValueError(f"wrk latency {text!r} not understood")
    return float(found.group(1)) * UNITS[found.group(2)]


def _search(pattern: str, output: str) -> str:
    found = re.search(pattern, output, re.MULTILINE)
    if found is None:
        raise ValueError(f"wrk output without {pattern!r}:\n{output}")
    return found.group(1)


def run_wrk(target: Target, connections: int, duration: float) -> WrkResult:
    # One wrk thread: the 2 cores are shared with the servers, and one thread drives thousands of
    # requests per second; a second would take a core from the server under test.
    output = subprocess.run(
        [
            "wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", "--latency", "--timeout", "10s",
            "-s", str(target.script), target.url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    # The latency distribution's lines ("     50%    1.35ms"), not "87.50%" in the thread stats.
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return WrkResult(
        rps=float(_search(r"Requests/sec:\s+([\d.]+)", output)),
        p50=_ms(_search(r"^\s+50%\s+(\S+)", output)),
        p99=_ms(_search(r"^\s+99%\s+(\S+)", output)),
        failed=failed,
        requests=int(_search(r"^\s*(\d+) requests in", output)),
    )


def measure(
    targets: dict[str, Target], connections: Sequence[int], rounds: int, duration: float, ledger: Ledger
) -> dict[str, dict[int, list[WrkResult]]]:
    """Every server at every connection count, in turn, `rounds` times; the order reversed every
    other round. Returns the runs per server and connection count, in round order."""
    runs: dict[str, dict[int, list[WrkResult]]] = {name: {count: [] for count in connections} for name in targets}
    for name, target in targets.items():  # warm-up: caches, stemmer memo, connection pools
        ledger.runs.append((name, 8, run_wrk(target, 8, 2)))
    for round_number in range(rounds):
        order = list(targets) if round_number % 2 == 0 else list(reversed(targets))
        for count in connections:
            for name in order:
                result = run_wrk(targets[name], count, duration)
                runs[name][count].append(result)
                ledger.runs.append((name, count, result))
                print(
                    f"  round {round_number + 1} {name:<10} c={count:<4} {result.rps:8.0f} req/s   "
                    f"p50 {result.p50:7.2f} ms   p99 {result.p99:7.2f} ms   failed {result.failed}",
                    flush=True,
                )
    return runs


def paired_ratio(numerator: list[WrkResult], denominator: list[WrkResult]) -> float:
    """The median over rounds of one round's throughput ratio: adjacent runs, drifts cancelled."""
    return statistics.median(a.rps / b.rps for a, b in zip(numerator, denominator, strict=True))


def batch_rounds(
    url: str, texts: list[str], rounds: int, in_process: dict[str, Callable[[list[str]], Any]]
) -> dict[str, list[float]]:
    """Texts per second: the served batch and each in-process scorer, interleaved round by round."""
    rates: dict[str, list[float]] = {"served": [], **{name: [] for name in in_process}}
    with httpx.Client(timeout=120) as client:
        client.post(url, json={"texts": texts}).raise_for_status()  # warm-up
        for score in in_process.values():
            score(texts)
        for _ in range(rounds):
            started = time.perf_counter()
            client.post(url, json={"texts": texts}).raise_for_status()
            rates["served"].append(len(texts) / (time.perf_counter() - started))
            for name, score in in_process.items():
                started = time.perf_counter()
                score(texts)
                rates[name].append(len(texts) / (time.perf_counter() - started))
    return rates


def log_cost(directory: Path, texts: list[str], records: int) -> tuple[float, float]:
    """CPU seconds per logged prediction, in-process on the API's writer against a SQLite file:
    (queueing one record on the request path, inserting it in the writer thread). The writer
    thread is not started: this thread flushes, so the process CPU clock sees only this work."""
    writer = PredictionLogWriter(open_log(f"sqlite:///{directory / 'log-cost.db'}"), log_text=False)
    try:
        started = time.process_time()
        for i in range(records):
            writer.record("1", texts[i % len(texts)], 0.5, "ham")
        queueing = (time.process_time() - started) / records
        started = time.process_time()
        writer.flush()
        writing = (time.process_time() - started) / records
    finally:
        writer.stop()
    return queueing, writing


def median_of(results: list[WrkResult], key: str) -> float:
    return statistics.median(float(getattr(result, key)) for result in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("SPAM_DATA") or SHARED_CORPUS))
    parser.add_argument("--duration", type=float, default=6, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every server at every connection count")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--batch-rounds", type=int, default=10)
    parser.add_argument("--log-records", type=int, default=20_000, help="records for the in-process log cost")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=600,
        help="seconds a server may take to answer (a loaded machine is slow)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 s points, 1 round, 8 and 32 connections")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.rounds, args.connections, args.batch_rounds, args.log_records = 2, 1, [8, 32], 3, 2000
    if shutil.which("wrk") is None:
        print("error: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1

    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        return run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args: argparse.Namespace, tmp: Path) -> int:
    texts, labels = load_corpus(args.corpus)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "API_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
            "SPAM_MLFLOW_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    print(f"training and registering the default model on {len(texts)} messages …", flush=True)
    model = register_model(texts, labels, {k: env[k] for k in ("MLFLOW_TRACKING_URI", "SPAM_MLFLOW_ARTIFACT_ROOT")})
    sample = texts[:: max(1, len(texts) // 300)][:300]
    json_headers = {"Content-Type": "application/json"}
    api_script = lua_script(tmp / "api.lua", [json.dumps({"text": t}) for t in sample], json_headers)
    mlflow_script = lua_script(
        tmp / "mlflow.lua",
        [json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t]]}}) for t in sample],
        json_headers,
    )
    ports = {name: free_port() for name in SERVERS}
    base = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    api_env = {**env, "MODEL_URI": CHAMPION, "HOST": "127.0.0.1", "WORKERS": "2"}
    api_command = [sys.executable, "-m", "api"]
    mlflow_command = [
        str(VENV_BIN / "mlflow"), "models", "serve", "-m", CHAMPION, "--env-manager", "local",
        "-w", "2", "-h", "127.0.0.1", "-p", str(ports["mlflow"]),
    ]  # fmt: skip
    targets = {
        "api": Target(f"{base['api']}/predict", api_script),
        "api-nolog": Target(f"{base['api-nolog']}/predict", api_script),
        "mlflow": Target(f"{base['mlflow']}/invocations", mlflow_script),
    }
    ledger = Ledger()
    batch_texts = texts[:1000]
    lean, scorer_kind = compile_scorer(model)
    in_process: dict[str, Callable[[list[str]], Any]] = {
        f"in-process {scorer_kind}": lean,
        "in-process pipeline": lambda batch: spam_probability(model, batch),
    }

    print(
        f"\nsingle-text requests, {args.duration:g} s per point, {args.rounds} round(s), servers in turn "
        "(wrk, 127.0.0.1):",
        flush=True,
    )
    with ExitStack() as stack:
        log_url = f"sqlite:///{tmp / 'predictions.db'}"
        stack.enter_context(
            server(
                api_command,
                {**api_env, "PORT": str(ports["api"]), "PREDICTION_LOG_URL": log_url},
                f"{base['api']}/ready",
                tmp / "api.log",
                args.start_timeout,
            )
        )
        stack.enter_context(
            server(
                api_command,
                {**api_env, "PORT": str(ports["api-nolog"]), "PREDICTION_LOG_URL": ""},
                f"{base['api-nolog']}/ready",
                tmp / "api-nolog.log",
                args.start_timeout,
            )
        )
        stack.enter_context(
            server(mlflow_command, env, f"{base['mlflow']}/ping", tmp / "mlflow.log", args.start_timeout)
        )
        runs = measure(targets, args.connections, args.rounds, args.duration, ledger)
        print(f"\n/predict/batch of {len(batch_texts)} texts vs in-process, {args.batch_rounds} interleaved rounds:")
        rates = batch_rounds(f"{base['api']}/predict/batch", batch_texts, args.batch_rounds, in_process)
    queueing, writing = log_cost(tmp, texts, args.log_records)

    print("\nmedians over rounds:")
    for name in SERVERS:
        for count in args.connections:
            points = runs[name][count]
            print(
                f"  {name:<10} c={count:<4} {median_of(points, 'rps'):8.0f} req/s   p50 {median_of(points, 'p50'):7.2f} ms   "
                f"p99 {median_of(points, 'p99'):7.2f} ms"
            )
    for name, values in rates.items():
        print(f"  {name:<24} {statistics.median(values):8.0f} texts/s (batch of {len(batch_texts)})")

    print("\nsummary:")
    if 32 in args.connections:
        ratio = paired_ratio(runs["api"][32], runs["mlflow"][32])
        print(
            f"  api / mlflow serve at 32 connections: {ratio:.2f}x, median of {args.rounds} paired rounds (target >= 3x)"
        )
        cost = 1 - paired_ratio(runs["api"][32], runs["api-nolog"][32])
        print(
            f"  prediction log: throughput cost at 32 connections {cost:.1%}, median of {args.rounds} paired rounds "
            "(target <= 5%; negative = noise)"
        )
    if 8 in args.connections:
        print(
            f"  api p99 at 8 connections (log on): {median_of(runs['api'][8], 'p99'):.2f} ms, median of {args.rounds} "
            "rounds (target <= 10 ms)"
        )
        cost = 1 - paired_ratio(runs["api"][8], runs["api-nolog"][8])
        print(f"  prediction log: throughput cost at 8 connections {cost:.1%}")
    served = statistics.median(rates["served"])
    for name in in_process:
        share = statistics.median(s / r for s, r in zip(rates["served"], rates[name], strict=True))
        target = " (target >= 80%)" if name.endswith("lean") else ""
        print(
            f"  /predict/batch vs {name}: {served:.0f} vs {statistics.median(rates[name]):.0f} texts/s, "
            f"{share:.0%} (median of paired rounds){target}"
        )
    at_32 = median_of(runs["api"][32], "rps") if 32 in args.connections else None
    share_of_core = f", {(queueing + writing) * at_32:.1%} of a core at {at_32:.0f} req/s" if at_32 else ""
    print(
        f"  one logged prediction (in-process, CPU time, {args.log_records} records): queueing "
        f"{queueing * 1e6:.1f} µs + writing {writing * 1e6:.1f} µs = {(queueing + writing) * 1e6:.1f} µs{share_of_core}"
    )
    per_server = ", ".join(f"{name} {ledger.failed(name)}" for name in SERVERS)
    print(
        f"  failed requests over all {len(ledger.runs)} wrk runs (warm-ups included): {ledger.failed()} ({per_server})"
    )
    if args.quick:
        print("  (--quick: a smoke run; these are not the figures to publish)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
