"""Out-of-core training (`train.model: streaming_sgd`, spamfilter.modeling.streaming): time and memory on a
million SMS-sized messages, and quality against the default model on the real corpus.

1. **Scale**: SMS-sized messages resampled from the real corpus's training split (the ingest split of
   params.yaml: ingest.test_size, ingest.seed) with one to three random one-character edits each (bench/scale.py's
   `edited`), so they are not duplicates, written by a separate process as a processed split (`train.jsonl`,
   corpus.to_jsonl's format). Each size is then trained in a fresh process by `train_streaming_from_split`,
   as the train stage would: the split read line by line in chunks, hashed in worker processes, counts kept
   on disk. Printed: wall and CPU time, peak RSS of the training process (os.wait4's ru_maxrss) and of
   its largest hashing worker (RUSAGE_CHILDREN), epochs and rows. Targets: 1M messages in <= 5 minutes,
   peak RSS <= 2 GiB, flat from 100k to 1M (nothing holds the corpus). Also the F1 of each trained model on
   the held-out part of the ingest split: real messages that no resampled message came from.
2. **Quality**: bench/quality.py's same-folds estimate: the de-duplicated corpus, stratified 5-fold CV
   with train.seed, pooled out-of-fold predictions; the default model (`--baseline`, params.yaml's
   featurize and train) against the streaming model (the same featurize params, hashed; trained chunk by
   chunk by `fit_streaming`). Target: F1 within 0.01 of the default model's.

    nice -n 10 python bench/scale_training.py [--corpus PATH] [--sizes 100000 1000000] [--workers 2]
        [--set C=1.0 --set loss=hinge ...] [--no-scale] [--no-quality]
(--set keys are StreamingSgdParams fields; its defaults, else `channels.sms.train.streaming_sgd` in params.yaml)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.quality import Predictions, apply_overrides, featurize, fit_predict, metrics_of, params_with, sms_section  # noqa: E402
from bench.scale import edited  # noqa: E402
from tests.conftest import SHARED_CORPUS  # noqa: E402

GIB = 1 << 30
TARGET_SECONDS = 300.0
TARGET_F1_GAP = 0.01


def streaming_params(params_path: Path, overrides: list[str]) -> Any:
    """StreamingSgdParams: params.yaml's `channels.sms.train.streaming_sgd` if present, then `--set` overrides."""
    from spamfilter.modeling.streaming import StreamingSgdParams

    section = sms_section(yaml.safe_load(params_path.read_text()) or {})
    values = dict(section.get("train", {}).get("streaming_sgd", {}) or {})
    return StreamingSgdParams.model_validate(apply_overrides(values, overrides))


def sms_params(params_path: Path, baseline: str) -> Any:
    """The SMS channel's Params with `train.model` = the baseline (the streaming section set aside: before
    config knows it, Params would refuse it)."""
    section = sms_section(yaml.safe_load(params_path.read_text()) or {})
    section.get("train", {}).pop("streaming_sgd", None)
    return params_with(section, [f"train.model={baseline}"])


def real_split(corpus_path: Path, params: Any) -> tuple[list[Any], list[Any]]:
    """The de-duplicated corpus split as the ingest stage splits it: (train, held-out) messages."""
    from spamfilter.data.corpus import deduplicate, parse_corpus, split

    dataset = deduplicate([parse_corpus(corpus_path.read_bytes(), str(corpus_path))])
    return split(dataset.messages, params.ingest.test_size, params.ingest.seed)


# -- child processes -----------------------------------------------------------------------------------------


def generate(pool_path: Path, out: Path, count: int, seed: int) -> dict[str, Any]:
    """`count` distinct edited messages from the pool (a JSONL split) as a processed split at `out`. Distinct by
    a set of 64-bit digests (this process only: the training process never sees it)."""
    from spamfilter.data.corpus import Message, read_jsonl, to_jsonl

    pool = [(message.label, message.text) for message in read_jsonl(pool_path)]
    rng = random.Random(seed)
    seen: set[int] = set()
    with out.open("w", encoding="utf-8") as handle:
        for line in range(1, count + 1):
            label, text = rng.choice(pool)
            candidate = edited(text, rng)
            for _ in range(10):
                if hash(candidate) not in seen:
                    break
                candidate = edited(candidate, rng)
            while hash(candidate) in seen:
                candidate = f"{candidate} {rng.randrange(10**9)}"
            seen.add(hash(candidate))
            handle.write(to_jsonl([Message(label, candidate, "generated", line)]))
    return {"rows": count, "bytes": out.stat().st_size}


def train(
    split_path: Path, held_out_path: Path, params_path: Path, overrides: list[str], workers: int
) -> dict[str, Any]:
    """Train out-of-core on the split; time, CPU, the workers' peak RSS, and F1 on the held-out messages."""
    from spamfilter.data.corpus import read_jsonl
    from spamfilter.modeling import streaming
    from spamfilter.modeling.pipeline import spam_probability

    sms = sms_params(params_path, "linear_svm")
    stream = streaming_params(params_path, overrides)
    model = streaming.build_streaming_model(sms.featurize, stream, sms.train.threshold, sms.train.seed)
    started, cpu_started = time.perf_counter(), os.times()
    streaming.train_streaming_from_split("sms", split_path, model, workers=workers, scratch_dir=split_path.parent)
    seconds = time.perf_counter() - started
    cpu = os.times()
    cpu_seconds = sum(cpu[:4]) - sum(cpu_started[:4])  # this process and its (finished) workers
    classifier = model.named_steps["classifier"]
    held_out = read_jsonl(held_out_path)
    truth = np.array([message.label for message in held_out], dtype=object)
    proba = spam_probability(model, [message.text for message in held_out])
    predicted = np.where(proba >= classifier.threshold, "spam", "ham").astype(object)
    return {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "worker_peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "epochs": classifier.n_epochs_,
        "train_rows": classifier.n_train_rows_,
        "calibration_rows": classifier.n_calibration_rows_,
        "held_out_f1": metrics_of(truth, Predictions(predicted, proba))["f1"],
    }


def measured(command: list[str]) -> tuple[dict[str, Any], int]:
    """Run this script's child command in a fresh process: its JSON result and its own peak RSS (bytes)."""
    with tempfile.TemporaryFile("w+") as result:
        process = subprocess.Popen([sys.executable, __file__, *command], stdout=result, cwd=REPO_ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        result.seek(0)
        output = result.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed:\n{output}")
    found: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return found, usage.ru_maxrss * 1024  # KiB on Linux


# -- quality -------------------------------------------------------------------------------------------------


def quality(corpus_path: Path, params_path: Path, overrides: list[str], baseline: str, folds: int) -> dict[str, Any]:
    """Pooled out-of-fold metrics of the baseline and the streaming model on bench/quality.py's folds."""
    from sklearn.model_selection import StratifiedKFold

    from spamfilter.data.corpus import deduplicate, parse_corpus
    from spamfilter.labels import LABELS
    from spamfilter.modeling import streaming
    from spamfilter.modeling.pipeline import spam_probability

    params = sms_params(params_path, baseline)
    stream = streaming_params(params_path, overrides)
    dataset = deduplicate([parse_corpus(corpus_path.read_bytes(), str(corpus_path))])
    texts = np.array([m.text for m in dataset.messages], dtype=object)
    labels = np.array([m.label for m in dataset.messages], dtype=object)
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=params.train.seed).split(texts, labels))
    pooled = {name: Predictions.empty(len(texts)) for name in (baseline, "streaming_sgd")}
    seconds = dict.fromkeys(pooled, 0.0)
    for train_idx, test_idx in splits:
        started = time.perf_counter()
        train_features, test_features = featurize(params, texts, train_idx, test_idx)
        found = fit_predict(params, train_features, labels[train_idx], test_features)
        pooled[baseline].labels[test_idx], pooled[baseline].proba[test_idx] = found.labels, found.proba
        seconds[baseline] += time.perf_counter() - started

        started = time.perf_counter()
        model = streaming.build_streaming_model(params.featurize, stream, params.train.threshold, params.train.seed)
        rows = stream.chunk_rows
        chunks = (
            (texts[train_idx[start : start + rows]].tolist(), labels[train_idx[start : start + rows]].tolist())
            for start in range(0, len(train_idx), rows)
        )
        streaming.fit_streaming(model, chunks, sorted(LABELS))
        proba = spam_probability(model, texts[test_idx].tolist())
        pooled["streaming_sgd"].proba[test_idx] = proba
        pooled["streaming_sgd"].labels[test_idx] = np.where(proba >= params.train.threshold, "spam", "ham")
        seconds["streaming_sgd"] += time.perf_counter() - started
    return {
        "messages": len(texts),
        "spam": int((labels == "spam").sum()),
        "metrics": {name: metrics_of(labels, predicted) for name, predicted in pooled.items()},
        "seconds": seconds,
    }


# -- main ----------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=SHARED_CORPUS)
    parser.add_argument("--params", type=Path, default=REPO_ROOT / "params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--workers", type=int, default=2, help="hashing processes (1: hash in the training process)")
    parser.add_argument("--baseline", default="linear_svm", help="the model to compare with (params.yaml's default)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--no-quality", action="store_true")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "generate":
            result = generate(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]))
        else:
            result = train(Path(rest[0]), Path(rest[1]), args.params, args.overrides, args.workers)
        print(json.dumps(result))
        return 0

    stream = streaming_params(args.params, args.overrides)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    print(f"streaming_sgd params: {stream.model_dump()}", flush=True)
    verdicts: list[str] = []

    if not args.no_scale:
        from spamfilter.data.corpus import to_jsonl

        params = sms_params(args.params, args.baseline)
        train_messages, held_out = real_split(args.corpus, params)
        peaks: list[int] = []
        with tempfile.TemporaryDirectory(prefix="bench-scale-training-") as tmp:
            root = Path(tmp)
            (root / "pool.jsonl").write_text(to_jsonl(train_messages), encoding="utf-8")
            (root / "held_out.jsonl").write_text(to_jsonl(held_out), encoding="utf-8")
            print(
                f"\n1. scale: resampling the {len(train_messages):,} messages of the ingest training split; "
                f"F1 on its {len(held_out):,} held-out messages; {args.workers} hashing process(es)",
                flush=True,
            )
            for size in args.sizes:
                split_path = root / str(size) / "train.jsonl"
                split_path.parent.mkdir()
                started = time.perf_counter()
                made, _ = measured(
                    ["--child", "generate", str(root / "pool.jsonl"), str(split_path), str(size), str(size)]
                )
                print(
                    f"  {size:,} messages generated ({made['bytes'] / 1e6:,.0f} MB JSONL) in {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
                overrides = [item for override in args.overrides for item in ("--set", override)]
                found, peak = measured(
                    [
                        "--params",
                        str(args.params),
                        *overrides,
                        "--workers",
                        str(args.workers),
                        "--child",
                        "train",
                        str(split_path),
                        str(root / "held_out.jsonl"),
                    ]
                )
                split_path.unlink()
                peaks.append(peak)
                print(
                    f"  {size:,} messages trained out-of-core: {found['seconds']:.1f} s wall, {found['cpu_seconds']:.1f} s CPU "
                    f"({size / found['seconds']:,.0f} messages/s); peak RSS {peak / 2**20:,.0f} MiB (training process), "
                    f"{found['worker_peak_rss'] / 2**20:,.0f} MiB (largest hashing worker); {found['epochs']} epoch(s) over "
                    f"{found['train_rows']:,} rows, {found['calibration_rows']:,} held out for calibration; "
                    f"held-out F1 {found['held_out_f1']:.4f}",
                    flush=True,
                )
                if size == max(args.sizes):
                    verdicts.append(
                        f"{size:,} messages in {found['seconds']:.0f} s (target <= {TARGET_SECONDS:.0f} s): "
                        f"{'PASS' if found['seconds'] <= TARGET_SECONDS else 'FAIL'}"
                    )
                    worst = max(peak, found["worker_peak_rss"])
                    verdicts.append(
                        f"peak RSS {worst / 2**20:,.0f} MiB per process, {(peak + args.workers * found['worker_peak_rss']) / 2**20:,.0f} "
                        f"MiB at most for all {1 + args.workers if args.workers > 1 else 1} together (target <= 2048 MiB): "
                        f"{'PASS' if peak + args.workers * found['worker_peak_rss'] <= 2 * GIB else 'FAIL'}"
                    )
        if len(peaks) > 1:
            verdicts.append(
                f"training-process peak RSS {min(args.sizes):,} → {max(args.sizes):,} messages: ×{peaks[-1] / peaks[0]:.2f} (flat if close to 1)"
            )

    if not args.no_quality:
        print(
            f"\n2. quality: stratified {args.folds}-fold CV on the de-duplicated corpus (bench/quality.py's folds)",
            flush=True,
        )
        found = quality(args.corpus, args.params, args.overrides, args.baseline, args.folds)
        print(f"  {found['messages']:,} messages ({found['spam']:,} spam)")
        for name, metrics in found["metrics"].items():
            print(
                f"  {name:<14} F1 {metrics['f1']:.4f}  MCC {metrics['mcc']:.4f}  blocked-ham {metrics['blocked_ham_rate'] * 100:.3f}%  "
                f"precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  ROC AUC {metrics['roc_auc']:.4f}  "
                f"({found['seconds'][name]:.0f} s for {args.folds} folds)",
                flush=True,
            )
        gap = found["metrics"][args.baseline]["f1"] - found["metrics"]["streaming_sgd"]["f1"]
        verdicts.append(
            f"F1 {found['metrics']['streaming_sgd']['f1']:.4f} vs {args.baseline} {found['metrics'][args.baseline]['f1']:.4f}: "
            f"{gap:+.4f} below (target <= {TARGET_F1_GAP}): {'PASS' if gap <= TARGET_F1_GAP else 'FAIL'}"
        )

    print("\nsummary")
    for verdict in verdicts:
        print(f"  {verdict}")
    print(
        f"load average after: {os.getloadavg()[0]:.1f} (figures are provisional when it is above the {os.cpu_count()} cores)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
