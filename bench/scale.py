"""Batch scoring at scale (`spamfilter score`): the local engine's throughput and memory, and the Spark engine's
throughput, on SMS-sized messages resampled from the real corpus with small random edits (so they are not
duplicates), generated once into a temporary TSV file.

  local engine, 100k and 1M messages: messages/s while scoring (reading, scoring, writing Parquet; set-up
      excluded) and peak RSS of the whole process (target: >= 80% of in-process batch speed, <= 1 GiB, flat)
  in-process batch speed: the same scorer (the API's lean scorer) on the same texts already in memory, in
      batches of the engine's chunk size: no reading, no hashing, no writing
  driver read rate: the readers alone (what a Spark driver can feed a cluster, per second)
  Spark engine on local[2], the same 1M input: messages/s, and per executor core

The model is the default SMS model (params.yaml's defaults) trained on the whole corpus and registered in a
temporary SQLite MLflow store; every run is its own process, so its peak RSS is its own (os.wait4).

    nice -n 10 python bench/scale.py [--corpus PATH] [--sizes 100000 1000000] [--spark-size 1000000] [--no-spark]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.conftest import SHARED_CORPUS  # noqa: E402 - the shared corpus beside the checkout

MODEL_NAME = "bench-scale-sms"
EDIT_ALPHABET = string.ascii_letters + string.digits + " !?.,£"
GIB = 1 << 30


def edited(text: str, rng: random.Random) -> str:
    """The text with one to three random one-character edits (substitute, insert or delete)."""
    chars = list(text)
    for _ in range(rng.randint(1, 3)):
        position = rng.randrange(len(chars) + 1)
        action = rng.randrange(3) if chars else 1
        if action == 0 and position < len(chars):
            chars[position] = rng.choice(EDIT_ALPHABET)
        elif action == 1:
            chars.insert(position, rng.choice(EDIT_ALPHABET))
        elif position < len(chars) and len(chars) > 1:
            del chars[position]
    return "".join(chars).replace("\t", " ").replace("\n", " ").replace("\r", " ").strip() or "ok"


def write_input(path: Path, pool: list[tuple[str, str]], count: int, seed: int) -> None:
    """`count` distinct edited messages as a UCI TSV file (with a header): a message whose edits give a text
    already written (short ones: "Ok") is edited again, and after ten tries gets a random number appended."""
    rng = random.Random(seed)
    seen: set[str] = set()
    with path.open("w", encoding="utf-8") as handle:
        handle.write("label\ttext\n")
        for _ in range(count):
            label, text = rng.choice(pool)
            line = edited(text, rng)
            for _ in range(10):
                if line not in seen:
                    break
                line = edited(line, rng)
            while line in seen:
                line = f"{line} {rng.randrange(10**9)}"
            seen.add(line)
            handle.write(f"{label}\t{line}\n")


def store_env(root: Path) -> dict[str, str]:
    return {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "SPAM_MLFLOW_ARTIFACT_ROOT": str(root / "mlartifacts"),
        "SPAM_EXPERIMENT": "bench-scale",
        "SPAM_REGISTERED_MODEL": MODEL_NAME,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }


def register_model(corpus_path: Path) -> None:
    """Train the default SMS model on the whole corpus and make it the champion of MODEL_NAME."""
    from spamfilter.config import Params, Settings
    from spamfilter.data import corpus
    from spamfilter.modeling import channels
    from spamfilter.modeling.pipeline import assemble
    from spamfilter.registry import tracking

    messages = corpus.deduplicate([corpus.parse_corpus(corpus_path.read_bytes(), str(corpus_path))]).messages
    texts, labels = corpus.texts_and_labels(messages)
    params = Params()
    featurizer = channels.build_featurizer(params)
    model = assemble(featurizer, channels.build_classifier(params).fit(featurizer.fit_transform(texts), labels))
    settings = Settings()  # the store of store_env(root), in the environment
    version = tracking.log_training_run(settings, model, {}, {"channel": "sms"}, texts[:2])
    tracking.set_alias(settings, "champion", version.version)


def child(mode: str, input_path: Path, out: Path, chunk_rows: int) -> dict[str, Any]:
    """One measured run, in its own process: `local`, `spark`, `read` (readers only) or `inprocess`."""
    from spamfilter.batch import inputs, job
    from spamfilter.config import Settings

    if mode == "read":
        reader = inputs.CorpusReader(input_path, "sms", chunk_rows=chunk_rows)
        started = time.perf_counter()
        rows = sum(len(chunk) for chunk in reader.chunks())
        return {"rows": rows, "seconds": time.perf_counter() - started}
    if mode == "inprocess":
        reader = inputs.CorpusReader(input_path, "sms", chunk_rows=chunk_rows)
        chunks = [chunk.inputs for chunk in reader.chunks()]
        model = job.load_model(Settings().for_channel("sms"), "sms", "champion")
        score, kind = job.channel_scorer(model.pipeline, "sms")
        started = time.perf_counter()
        for texts in chunks:
            score(texts)
        return {"rows": sum(map(len, chunks)), "seconds": time.perf_counter() - started, "scorer": kind}
    request = job.ScoreRequest(
        channel="sms",
        input=input_path,
        out=out,
        engine="spark" if mode == "spark" else "local",
        master="local[2]" if mode == "spark" else None,
        chunk_rows=chunk_rows,
        progress=False,
    )
    summary = job.score_corpus(request, Settings())
    return {
        "rows": summary.rows,
        "seconds": summary.score_seconds,
        "setup_seconds": summary.load_seconds,
        "scorer": summary.scorer,
    }


def measured(mode: str, input_path: Path, out: Path, chunk_rows: int, env: dict[str, str]) -> dict[str, Any]:
    """Run `child` in a fresh process; its result with the process's peak RSS."""
    command = [sys.executable, __file__, "--child", mode, str(input_path), str(out), str(chunk_rows)]
    with tempfile.TemporaryFile("w+") as result:
        process = subprocess.Popen(command, env={**os.environ, **env}, stdout=result, cwd=REPO_ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        result.seek(0)
        output = result.read()
    if process.returncode != 0:
        raise SystemExit(f"{mode} run failed ({process.returncode}):\n{output}")
    found: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    found["peak_rss"] = usage.ru_maxrss * 1024  # KiB on Linux
    found["rate"] = found["rows"] / found["seconds"]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--spark-size", type=int, default=1_000_000)
    parser.add_argument("--no-spark", action="store_true")
    parser.add_argument("--chunk-rows", type=int, default=10_000)
    parser.add_argument("--spark-chunk-rows", type=int, default=100_000)
    parser.add_argument("--child", nargs=4, metavar=("MODE", "INPUT", "OUT", "CHUNK_ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, input_path, out, chunk_rows = args.child
        print(json.dumps(child(mode, Path(input_path), Path(out), int(chunk_rows))))
        return 0

    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    from spamfilter.data import corpus

    pool = [(m.label, m.text) for m in corpus.parse_corpus(args.corpus.read_bytes(), str(args.corpus)).messages]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        env = store_env(root)
        os.environ.update(env)
        started = time.perf_counter()
        register_model(args.corpus)
        print(
            f"default SMS model trained on {len(pool):,} messages and registered in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        sizes = sorted(set(args.sizes) | (set() if args.no_spark else {args.spark_size}))
        paths = {}
        for size in sizes:
            paths[size] = root / f"sms-{size}.tsv"
            write_input(paths[size], pool, size, seed=size)
            print(f"input: {size:,} distinct messages, {paths[size].stat().st_size / 1e6:.0f} MB TSV", flush=True)

        smallest = paths[min(args.sizes)]
        inprocess = measured("inprocess", smallest, root / "unused", args.chunk_rows, env)
        print(
            f"in-process batch speed ({inprocess['scorer']} scorer, texts in memory, batches of {args.chunk_rows:,}): "
            f"{inprocess['rate']:,.0f} messages/s",
            flush=True,
        )
        local: dict[int, dict[str, Any]] = {}
        for size in args.sizes:
            local[size] = found = measured("local", paths[size], root / f"out-{size}.parquet", args.chunk_rows, env)
            print(
                f"local engine, {size:,} messages: {found['rate']:,.0f} messages/s "
                f"({found['rate'] / inprocess['rate']:.0%} of in-process), {found['seconds']:.1f} s + "
                f"{found['setup_seconds']:.1f} s set-up, peak RSS {found['peak_rss'] / 2**20:,.0f} MiB",
                flush=True,
            )
        biggest = max(args.sizes)
        reading = measured("read", paths[biggest], root / "unused", args.spark_chunk_rows, env)
        print(f"driver read rate (readers only, {biggest:,} messages): {reading['rate']:,.0f} messages/s", flush=True)
        spark = None
        if not args.no_spark:
            spark = measured("spark", paths[args.spark_size], root / "spark.parquet", args.spark_chunk_rows, env)
            print(
                f"spark engine on local[2], {args.spark_size:,} messages: {spark['rate']:,.0f} messages/s "
                f"({spark['rate'] / 2:,.0f} per executor core), {spark['seconds']:.1f} s + {spark['setup_seconds']:.1f} s "
                f"set-up; driver peak RSS {spark['peak_rss'] / 2**20:,.0f} MiB (the JVM and Python workers are other processes)",
                flush=True,
            )

    print("\nsummary")
    rates = [local[size]["rate"] for size in args.sizes]
    peaks = [local[size]["peak_rss"] for size in args.sizes]
    worst = min(rates) / inprocess["rate"]
    print(f"  local engine vs in-process: {worst:.0%} at worst (target >= 80%): {'PASS' if worst >= 0.8 else 'FAIL'}")
    print(
        f"  local engine peak RSS: {max(peaks) / 2**20:,.0f} MiB at most (target <= 1024 MiB): {'PASS' if max(peaks) <= GIB else 'FAIL'}"
    )
    if len(args.sizes) > 1:
        growth = peaks[-1] / peaks[0]
        print(f"  peak RSS {min(args.sizes):,} → {biggest:,} messages: ×{growth:.2f} (flat if close to 1)")
    if spark is not None:
        per_core = spark["rate"] / 2
        print(
            f"  spark local[2]: {spark['rate']:,.0f} messages/s beside the local engine's {local[biggest]['rate']:,.0f} (one core)"
        )
        print(
            f"  spark per executor core: {per_core:,.0f} messages/s; on paper N cores ≈ N × {per_core:,.0f}/s until the driver's feed rate ({reading['rate']:,.0f}/s here) caps it"
        )
    print(
        f"load average after: {os.getloadavg()[0]:.1f} (figures are provisional when it is above the {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
