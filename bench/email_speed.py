"""E-mail scoring speed in process, on one core: the default e-mail model on SpamAssassin corpus messages.

Targets: scoring one median-size message (3.5 KB) from raw bytes to P(spam) in <= 3 ms, and batch scoring
>= 500 messages/s. Parsing alone is reported separately (it is part of both figures).

The model is fitted on the seed-42 80/20 split of the de-duplicated corpus (or loaded with --model) and
scores the held-out messages through the lean scorer the API uses for e-mail (`compile_email_scorer`,
bit-identical to `predict_proba`), and through the pipeline's own `predict_proba` for comparison. The
process is pinned to one CPU and BLAS to one thread. Each figure is the median of repeated timings, in
wall-clock and in CPU time: on a shared machine the CPU time is the steadier of the two.

    python bench/email_speed.py [--archive PATH] [--model models/email/model.joblib] [--repeat 300]
"""

from __future__ import annotations

import os

# One thread for BLAS, set before numpy loads: the figures are for one core.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402

from spamfilter.config import DEFAULT_LABEL_FOLDERS  # noqa: E402
from spamfilter.data.corpus import split  # noqa: E402
from spamfilter.data.mail_corpus import read_mail_corpus  # noqa: E402
from spamfilter.data.mail_dataset import deduplicate_mail  # noqa: E402
from spamfilter.mail import MailLimits, parse_message  # noqa: E402
from spamfilter.modeling.email import (  # noqa: E402
    DEFAULT_FEATURE_HEADER_FIELDS,
    EmailFeaturizeParams,
    EmailTrainParams,
    build_email_model,
    compile_email_scorer,
)
from spamfilter.modeling.pipeline import spam_probability  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ARCHIVE = REPO_ROOT.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
TARGET_SINGLE_MS = 3.0
TARGET_BATCH_PER_SECOND = 500.0
SEED = 42


def timed(call: Callable[[], Any], repeat: int) -> tuple[float, float, float]:
    """Median wall and CPU seconds of `call`, and the 99th-percentile wall seconds."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), float(np.percentile(walls, 99))


def per_message(call: Callable[[bytes], Any], messages: Sequence[bytes], rounds: int) -> tuple[float, float]:
    """Median over messages of the median wall and CPU seconds to process each one alone."""
    walls, cpus = [], []
    for raw in messages:
        wall, cpu, _ = timed(partial(call, raw), rounds)
        walls.append(wall)
        cpus.append(cpu)
    return statistics.median(walls), statistics.median(cpus)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archive", type=Path, default=DEFAULT_ARCHIVE)
    parser.add_argument("--model", type=Path, help="a fitted e-mail pipeline (joblib); default: fit one here")
    parser.add_argument("--repeat", type=int, default=300, help="timings of the median-size message")
    parser.add_argument("--band", type=int, default=60, help="messages of 3-4 KB timed one by one")
    parser.add_argument("--batches", type=int, default=5, help="timings of the whole test set in one call")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    limits = MailLimits()
    dataset = deduplicate_mail([read_mail_corpus(args.archive, DEFAULT_LABEL_FOLDERS, limits.max_bytes)], limits)
    train, test = split(dataset.messages, 0.2, SEED)
    if args.model:
        model = joblib.load(args.model)
        origin = str(args.model)
    else:
        started = time.perf_counter()
        model = build_email_model(EmailFeaturizeParams(), EmailTrainParams(), limits)
        model.fit([m.raw for m in train], [m.label for m in train])
        origin = f"default params, fitted here on {len(train)} messages in {time.perf_counter() - started:.0f} s"
    scorer, kind = compile_email_scorer(model)
    raws = [m.raw for m in test]
    sizes = np.array([len(raw) for raw in raws])
    median_size = float(np.median([len(m.raw) for m in dataset.messages]))
    median_message = raws[int(np.argmin(np.abs(sizes - median_size)))]
    band = [raw for raw in raws if 3_000 <= len(raw) <= 4_000][: args.band]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"model: {origin}; scorer: {kind}\n"
        f"test messages: {len(raws)} (seed-{SEED} 80/20 split of {len(dataset.messages)} de-duplicated); "
        f"median message size in the corpus {median_size / 1000:.1f} KB; one CPU; load average {load:.1f}"
    )
    assert np.array_equal(scorer(raws[:50]), spam_probability(model, raws[:50])), "lean scorer differs"

    def parse(raw: bytes) -> Any:
        return parse_message(raw, limits, DEFAULT_FEATURE_HEADER_FIELDS)

    def lean_one(raw: bytes) -> Any:
        return scorer([raw])

    def pipeline_one(raw: bytes) -> Any:
        return model.predict_proba([raw])

    for warm in (parse, lean_one, pipeline_one):  # warm caches (stemmer memo, imports)
        for raw in raws[:200]:
            warm(raw)

    print(f"\n{'one message (median of timings)':<48} {'wall ms':>8} {'CPU ms':>8} {'p99 wall':>9}")
    figures: dict[str, float] = {}
    singles: tuple[tuple[str, Callable[[bytes], Any]], ...] = (
        ("parse only", parse),
        ("lean scorer (raw → P(spam))", lean_one),
        ("pipeline predict_proba", pipeline_one),
    )
    for name, call in singles:
        wall, cpu, p99 = timed(partial(call, median_message), args.repeat)
        figures[name] = wall
        print(
            f"{name + f', the {len(median_message):,}-byte message':<48} {wall * 1e3:>8.2f} {cpu * 1e3:>8.2f} {p99 * 1e3:>9.2f}"
        )
    for name, call in (("parse only", parse), ("lean scorer", lean_one)):
        wall, cpu = per_message(call, band, 15)
        figures[f"{name} band"] = wall
        print(f"{name + f', {len(band)} messages of 3-4 KB (median)':<48} {wall * 1e3:>8.2f} {cpu * 1e3:>8.2f}")

    print(f"\n{'batch: all test messages in one call':<48} {'msg/s':>8} {'CPU msg/s':>10}")
    batches: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("parse only", lambda: [parse(raw) for raw in raws]),
        ("lean scorer", lambda: scorer(raws)),
        ("pipeline predict_proba", lambda: model.predict_proba(raws)),
    )
    for name, batch_call in batches:
        wall, cpu, _ = timed(batch_call, args.batches)
        figures[f"{name} batch"] = len(raws) / wall
        print(f"{name:<48} {len(raws) / wall:>8.0f} {len(raws) / cpu:>10.0f}")

    single = figures["lean scorer (raw → P(spam))"] * 1e3
    batch = figures["lean scorer batch"]
    print(
        f"\none median-size message: {single:.2f} ms (target <= {TARGET_SINGLE_MS} ms): "
        f"{'PASS' if single <= TARGET_SINGLE_MS else 'FAIL'}\n"
        f"batch: {batch:.0f} messages/s (target >= {TARGET_BATCH_PER_SECOND:.0f}): "
        f"{'PASS' if batch >= TARGET_BATCH_PER_SECOND else 'FAIL'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
