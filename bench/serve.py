"""Serving benchmark: the API against `mlflow models serve` on the same registered model.

Trains the default model (params.yaml) on the real corpus, registers it as
spam-classifier@champion in a fresh tmp MLflow store, then starts

  * the API: `python -m api` (the Docker image's command), WORKERS=2, MODEL_URI=models:/…@champion
  * `mlflow models serve -m models:/spam-classifier@champion --env-manager local -w 2`

and loads both from a second process with wrk on 127.0.0.1, one message per request, the
messages drawn from the corpus. Prints, for each server, throughput and p50/p99 latency at
1, 8, 32 and 128 connections; the API's /predict/batch of 1,000 texts against scoring the same
texts in-process; and the API's throughput with the prediction log on and off (two servers,
measured alternately, medians compared).

Targets: API ≥ 3× mlflow at 32 connections; API p99 ≤ 10 ms at 8 connections; batch ≥ 80% of
in-process; prediction log costs ≤ 5% of throughput.

    python bench/serve.py [--corpus PATH] [--duration 6] [--connections 1 8 32 128]
Needs wrk (apt-get install wrk). The machine's cores are shared with the load generator.
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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
VENV_BIN = Path(sys.executable).parent
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "sms_spam_collection.tsv"

from spamfilter.config import Settings, flatten, load_params  # noqa: E402
from spamfilter.data.corpus import parse_corpus  # noqa: E402
from spamfilter.modeling.metrics import OBVIOUS_HAM, OBVIOUS_SPAM  # noqa: E402
from spamfilter.modeling.pipeline import assemble, build_classifier, build_featurizer, spam_probability  # noqa: E402
from spamfilter.registry import tracking  # noqa: E402

CHAMPION = "models:/spam-classifier@champion"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_corpus(path: Path) -> tuple[list[str], list[str]]:
    parsed = parse_corpus(path.read_bytes(), str(path))
    return [m.text for m in parsed.messages], [m.label for m in parsed.messages]


def register_model(texts: list[str], labels: list[str], env: dict[str, str]) -> Any:
    params = load_params(REPO_ROOT / "params.yaml")
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
def server(command: list[str], env: dict[str, str], ready_url: str, log_path: Path) -> Iterator[None]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=log_path.parent)
    try:
        deadline = time.monotonic() + 180
        streak = 0
        while streak < 10:  # ten answers running on fresh connections: every worker is up
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{command[:3]} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
            try:
                streak = streak + 1 if httpx.get(ready_url, timeout=5).status_code == 200 else 0
            except httpx.TransportError:
                streak = 0
            time.sleep(0.1 if streak else 0.5)
        yield
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


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    # One wrk thread: the 2 cores are shared with the servers, and one thread drives thousands of
    # requests per second; a second would take a core from the server under test.
    threads = 1
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{duration}s",
            "--latency",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    # The latency distribution's lines ("     50%    1.35ms"), not "87.50%" in the thread stats.
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failed = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return {"rps": rps, "p50": p50, "p99": p99, "failed": failed}


def curve(name: str, url: str, script: Path, connections: list[int], duration: int) -> dict[int, dict[str, float]]:
    run_wrk(url, script, 8, 2)  # warm-up: caches, stemmer memo, connection pools
    results = {}
    for count in connections:
        results[count] = result = run_wrk(url, script, count, duration)
        print(
            f"  {name:<14} c={count:<4} {result['rps']:8.0f} req/s   p50 {result['p50']:7.2f} ms   "
            f"p99 {result['p99']:7.2f} ms   failed {result['failed']:.0f}",
            flush=True,
        )
    return results


def batch_throughput(url: str, texts: list[str], rounds: int) -> float:
    with httpx.Client(timeout=120) as client:
        client.post(url, json={"texts": texts}).raise_for_status()
        started = time.perf_counter()
        for _ in range(rounds):
            response = client.post(url, json={"texts": texts})
            response.raise_for_status()
        return rounds * len(texts) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=Path(os.environ.get("SPAM_DATA") or SHARED_CORPUS))
    parser.add_argument("--duration", type=int, default=6, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 8, 32, 128])
    parser.add_argument("--log-rounds", type=int, default=5, help="alternating log on/off rounds")
    parser.add_argument("--batch-rounds", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("error: wrk not found (apt-get install wrk)", file=sys.stderr)
        return 1

    texts, labels = load_corpus(args.corpus)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
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

    api_script = lua_script(
        tmp / "api.lua", [json.dumps({"text": t}) for t in sample], {"Content-Type": "application/json"}
    )
    mlflow_script = lua_script(
        tmp / "mlflow.lua",
        [json.dumps({"dataframe_split": {"columns": ["text"], "data": [[t]]}}) for t in sample],
        {"Content-Type": "application/json"},
    )
    api_port, mlflow_port = free_port(), free_port()
    api_env = {
        **env,
        "MODEL_URI": CHAMPION,
        "HOST": "127.0.0.1",
        "PORT": str(api_port),
        "WORKERS": "2",
        "PREDICTION_LOG_URL": f"sqlite:///{tmp / 'predictions.db'}",
    }
    api_command = [sys.executable, "-m", "api"]
    api = f"http://127.0.0.1:{api_port}"
    results: dict[str, Any] = {}

    print(f"\nsingle-text requests, {args.duration:g} s per point (wrk, 127.0.0.1):", flush=True)
    with server(api_command, api_env, f"{api}/ready", tmp / "api.log"):
        results["api"] = curve("api", f"{api}/predict", api_script, args.connections, args.duration)
        batch_texts = texts[:1000]
        served = batch_throughput(f"{api}/predict/batch", batch_texts, args.batch_rounds)
    mlflow_command = [
        str(VENV_BIN / "mlflow"), "models", "serve", "-m", CHAMPION, "--env-manager", "local",
        "-w", "2", "-h", "127.0.0.1", "-p", str(mlflow_port),
    ]  # fmt: skip
    mlflow_url = f"http://127.0.0.1:{mlflow_port}"
    with server(mlflow_command, env, f"{mlflow_url}/ping", tmp / "mlflow.log"):
        results["mlflow"] = curve(
            "mlflow serve", f"{mlflow_url}/invocations", mlflow_script, args.connections, args.duration
        )

    rounds = []
    for _ in range(args.batch_rounds):
        started = time.perf_counter()
        spam_probability(model, batch_texts)
        rounds.append(len(batch_texts) / (time.perf_counter() - started))
    in_process = statistics.median(rounds)

    # Log on vs off: two API servers up at once, measured alternately (on, off, on, off, …) so slow
    # drifts of the shared machine fall on both; the medians are compared.
    print(f"\nprediction log on vs off, alternating, {args.log_rounds} rounds at 8 and 32 connections:", flush=True)
    nolog_port = free_port()
    nolog_env = {**api_env, "PORT": str(nolog_port), "PREDICTION_LOG_URL": ""}
    nolog = f"http://127.0.0.1:{nolog_port}"
    paired: dict[str, dict[int, list[dict[str, float]]]] = {"on": {8: [], 32: []}, "off": {8: [], 32: []}}
    with (
        server(api_command, api_env, f"{api}/ready", tmp / "api-log.log"),
        server(api_command, nolog_env, f"{nolog}/ready", tmp / "api-nolog.log"),
    ):
        run_wrk(f"{api}/predict", api_script, 8, 2)
        run_wrk(f"{nolog}/predict", api_script, 8, 2)
        for _ in range(args.log_rounds):
            for count in (8, 32):
                for mode, url in (("on", api), ("off", nolog)):
                    paired[mode][count].append(run_wrk(f"{url}/predict", api_script, count, args.duration))

    def median_of(mode: str, count: int, key: str) -> float:
        return statistics.median(point[key] for point in paired[mode][count])

    for mode in ("on", "off"):
        for count in (8, 32):
            print(
                f"  log {mode:<3} c={count:<4} median {median_of(mode, count, 'rps'):8.0f} req/s   "
                f"p99 {median_of(mode, count, 'p99'):7.2f} ms",
                flush=True,
            )
    with_log = {"rps": median_of("on", 32, "rps")}
    without_log = {"rps": median_of("off", 32, "rps")}
    # Each round's on and off runs are adjacent: their ratio cancels the machine's slow drifts.
    paired_cost = {
        count: 1
        - statistics.median(
            on["rps"] / off["rps"] for on, off in zip(paired["on"][count], paired["off"][count], strict=True)
        )
        for count in (8, 32)
    }
    p99_at_8 = median_of("on", 8, "p99")
    results["api-log-on"] = {8: paired["on"][8][-1], 32: paired["on"][32][-1]}
    results["api-log-off"] = {8: paired["off"][8][-1], 32: paired["off"][32][-1]}

    print("\nsummary:")
    if 32 in args.connections:
        ratio = results["api"][32]["rps"] / results["mlflow"][32]["rps"]
        print(f"  api / mlflow serve at 32 connections: {ratio:.2f}x (target >= 3x)")
    print(
        f"  api p99 at 8 connections: {p99_at_8:.2f} ms, median of {args.log_rounds} runs with the log on "
        f"(curve above: {results['api'].get(8, {}).get('p99', float('nan')):.2f} ms) (target <= 10 ms)"
    )
    print(
        f"  /predict/batch of {len(batch_texts)}: {served:.0f} texts/s served vs {in_process:.0f} texts/s in-process "
        f"(model.predict_proba): {served / in_process:.0%} (target >= 80%)"
    )
    print(
        f"  prediction log: {with_log['rps']:.0f} req/s with, {without_log['rps']:.0f} without (medians at 32); "
        f"cost, median of paired rounds: {paired_cost[32]:.1%} at 32 connections, {paired_cost[8]:.1%} at 8 "
        "(target <= 5%; negative = noise)"
    )
    failed = sum(point["failed"] for runs in results.values() for point in runs.values())
    print(f"  failed requests: {failed:.0f}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
