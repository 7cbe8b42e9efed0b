"""Monitor benchmark: false alarms on clean windows, detection of each injected drift against its
strength, and speed.

Real corpus (../shared/data/sms_spam_collection.tsv beside the checkout), de-duplicated. The reference
and the windows come from disjoint messages: the corpus is cut into `--rotations` stratified parts;
in rotation k, part k is the *traffic pool* every window of that rotation is drawn from, and the
other parts are split as the pipeline splits its data (ingest.test_size, ingest.seed) into a training
split (the model, and the reference's texts, descriptors and vocabulary) and a reference held-out
split (the reference's scores, spam rates, confusion counts and metrics), the profile built as the
`evaluate` stage builds it. No window shares a message with its reference; windows of one rotation
overlap each other (a pool of ~1,000 messages, windows of 500), and the rotations spread the
false-alarm rate over five different references. Windows are labelled and carry their texts, so
every check runs; a drifted window is the pool sampled and drifted by `spamfilter feed`'s code.

Prints:
  * the false-alarm rate (retrain_needed on a clean window) over 200 windows of 500   (target <= 5%)
  * the detection rate of each drift mode at its documented moderate strength        (target >= 95%)
  * the detection rate against strength per drift mode (0.02 to 0.3): where detection starts to fail
  * the time `run_checks` takes on a 10,000-message window, and `spamfilter monitor`
    end to end on a 10,000-row prediction log                                         (target <= 5 s)
  * with --evidently VENV (a separate venv with Evidently installed), Evidently's DataDriftPreset on
    the same clean and moderate-strength windows, with the same columns (text, text length, score,
    predicted label, true label), as a peer.

Usage: python bench/monitor.py [--windows 200] [--drift-windows 60] [--sweep-windows 20]
                               [--strengths 0.02 0.05 0.1 0.15 0.2 0.3] [--evidently /tmp/evidently-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import binomtest
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from spamfilter import files
from spamfilter.config import MonitorParams, Params
from spamfilter.data import corpus, feed
from spamfilter.modeling.metrics import classification_metrics
from spamfilter.modeling.pipeline import (
    assemble,
    build_classifier,
    build_featurizer,
    model_threshold,
    predict_labels,
    spam_probability,
)
from spamfilter.monitoring import decision, predlog, profile

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "sms_spam_collection.tsv"
WINDOW = 500
EVIDENTLY_PEER = Path(__file__).with_name("evidently_peer.py")
DEFAULT_STRENGTHS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)
# Seeds of the window draws: clean, moderate-strength and sweep windows never share a draw.
CLEAN_SEED, MODERATE_SEED, SWEEP_SEED = 0, 10_000, 100_000


def sms_params(path: Path) -> Params:
    """The SMS channel's params: `channels.sms` in params.yaml (the top level in the flat layout that
    preceded channels)."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return Params.model_validate(data["channels"]["sms"] if "channels" in data else data)


class Scorer:
    """Scores texts with the model, remembering what it has scored."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.cache: dict[str, float] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            self.cache.update(zip(todo, spam_probability(self.model, todo).tolist(), strict=True))
        return np.array([self.cache[t] for t in texts])


@dataclass
class Rotation:
    """One reference and the disjoint traffic pool its windows come from."""

    index: int
    traffic: list[corpus.Message]
    train: list[corpus.Message]
    held_out: list[corpus.Message]
    model: Any
    threshold: float
    built: dict[str, Any]  # the reference profile as JSON, as `evaluate` writes it
    reference: decision.Reference
    scorer: Scorer
    f1: float


@dataclass
class Drawn:
    """A window: which rotation's reference it is checked against, and its messages."""

    rotation: Rotation
    messages: list[corpus.Message]


@dataclass
class Outcome:
    alarms: int
    windows: int
    fired: Counter[str]
    seconds_per_window: float

    @property
    def rate(self) -> float:
        return self.alarms / self.windows

    def interval(self) -> tuple[float, float]:
        """Exact (Clopper–Pearson) 95% interval of the rate."""
        ci = binomtest(self.alarms, self.windows).proportion_ci(0.95)
        return float(ci.low), float(ci.high)


def build_rotation(index: int, traffic: list[corpus.Message], rest: list[corpus.Message], params: Params) -> Rotation:
    train, held_out = corpus.split(rest, params.ingest.test_size, params.ingest.seed)
    train_texts, train_labels = corpus.texts_and_labels(train)
    featurizer = build_featurizer(params.featurize)
    classifier = build_classifier(params.train).fit(featurizer.fit_transform(train_texts), train_labels)
    model = assemble(featurizer, classifier)
    threshold = model_threshold(model)
    held_out_texts, truth = corpus.texts_and_labels(held_out)
    scores = spam_probability(model, held_out_texts)
    predicted = predict_labels(scores, threshold)
    metrics = classification_metrics(truth, predicted, scores)
    built = json.loads(
        json.dumps(
            profile.build_profile(train_texts, train_labels, scores.tolist(), truth, predicted, metrics, threshold)
        )
    )
    scorer = Scorer(model)
    scorer.cache.update(zip(held_out_texts, scores.tolist(), strict=True))
    return Rotation(
        index,
        traffic,
        train,
        held_out,
        model,
        threshold,
        built,
        profile.reference_from_profile(built),
        scorer,
        metrics["f1"],
    )


def make_window(messages: list[corpus.Message], scorer: Scorer, threshold: float) -> decision.Window:
    texts = [m.text for m in messages]
    scores = scorer(texts)
    return decision.Window(
        lengths=np.array([len(t) for t in texts], dtype=float),
        scores=scores,
        predicted=predict_labels(scores, threshold),
        texts=texts,
        truth=[m.label for m in messages],
    )


def draw(rotations: Sequence[Rotation], count: int, mode: str, strength: float, first_seed: int) -> list[Drawn]:
    """`count` windows, dealt round-robin over the rotations, each from its rotation's traffic pool."""
    drawn = []
    for i in range(count):
        rotation = rotations[i % len(rotations)]
        drawn.append(Drawn(rotation, feed.make_batch(rotation.traffic, WINDOW, mode, strength, seed=first_seed + i)))
    return drawn


def run_windows(windows: Sequence[Drawn], params: MonitorParams) -> Outcome:
    alarms = 0
    fired: Counter[str] = Counter()
    started = time.perf_counter()
    for window in windows:
        rotation = window.rotation
        result = decision.run_checks(
            rotation.reference, make_window(window.messages, rotation.scorer, rotation.threshold), params
        )
        alarms += result.retrain_needed
        fired.update(c.name for c in result.checks if c.drifted)
    return Outcome(alarms, len(windows), fired, (time.perf_counter() - started) / len(windows))


def fired_summary(outcome: Outcome, top: int = 4) -> str:
    return ", ".join(f"{name} {count / outcome.windows:.0%}" for name, count in outcome.fired.most_common(top))


def end_to_end_seconds(
    profile_path: Path, messages: list[corpus.Message], scores: np.ndarray, threshold: float
) -> tuple[float, float]:
    """`spamfilter monitor` on a 10,000-row SQLite prediction log (texts logged): (wall-clock seconds,
    CPU seconds of the command, user + system)."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'log.db'}"
        engine = predlog.connect(url)
        start = datetime.now(UTC) - timedelta(days=1)
        predlog.insert_predictions(
            engine,
            [
                predlog.PredictionRecord(
                    str(uuid.uuid4()),
                    start + timedelta(seconds=i),
                    "1",
                    len(m.text),
                    predlog.text_sha256(m.text),
                    float(s),
                    "spam" if s >= threshold else "ham",
                    m.text,
                )
                for i, (m, s) in enumerate(zip(messages, scores, strict=True))
            ],
        )
        engine.dispose()
        command = [
            sys.executable, "-m", "spamfilter.cli", "monitor",
            "--profile", str(profile_path), "--params", str(REPO / "params.yaml"),
            "--log-url", url, "--last", str(len(messages)),
            "--json", str(Path(tmp) / "monitor.json"), "--html", str(Path(tmp) / "monitor.html"),
        ]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def evidently_row(text: str, score: float, threshold: float, label: str) -> dict[str, Any]:
    """One row as Evidently sees it: the columns our monitor checks (text, its length, score,
    predicted label, true label)."""
    return {
        "text": text,
        "length": len(text),
        "score": score,
        "predicted": "spam" if score >= threshold else "ham",
        "label": label,
    }


def evidently_reference(rotation: Rotation, params: Params, size: int) -> list[dict[str, Any]]:
    """Training rows of the rotation with out-of-fold scores (a score the model gives unseen text),
    `size` of them at random: Evidently compares one table against one table, and it is slow on more."""
    texts, labels = corpus.texts_and_labels(rotation.train)
    oof = cross_val_predict(
        assemble(build_featurizer(params.featurize), build_classifier(params.train)),
        texts,
        labels,
        cv=StratifiedKFold(5, shuffle=True, random_state=params.train.seed),
        method="predict_proba",
    )[:, list(rotation.model.classes_).index("spam")]
    keep = np.random.default_rng(rotation.index).choice(len(texts), min(size, len(texts)), replace=False)
    return [evidently_row(texts[i], float(oof[i]), rotation.threshold, labels[i]) for i in sorted(keep)]


def evidently_peer(venv: Path, request: dict[str, Any], progress: Path | None) -> dict[str, Any] | str:
    """Run Evidently's DataDriftPreset in its own venv on the windows; its alarm rates per case."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"no Python at {python}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "windows.json"
        path.write_text(json.dumps(request))
        command = [str(python), str(EVIDENTLY_PEER), str(path), *([str(progress)] if progress else [])]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit {result.returncode}"
            return f"the Evidently run failed: {last}"
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer


def run_evidently(
    venv: Path,
    rotations: Sequence[Rotation],
    cases: dict[str, list[Drawn]],
    ours: dict[str, Outcome],
    params: Params,
    reference_size: int,
    progress: Path | None,
) -> None:
    print(
        f"\nEvidently DataDriftPreset as a peer: the same windows, columns text, length, score, predicted, label; "
        f"reference per rotation: {reference_size} of its training rows with out-of-fold scores; "
        "alarm = any column drifted",
        flush=True,
    )
    started = time.perf_counter()
    groups = []
    for rotation in rotations:
        windows: dict[str, list[list[dict[str, Any]]]] = {}
        for case, drawn in cases.items():
            windows[case] = []
            for window in drawn:
                if window.rotation is not rotation:
                    continue
                texts = [m.text for m in window.messages]
                scores = rotation.scorer(texts)
                windows[case].append(
                    [
                        evidently_row(m.text, float(s), rotation.threshold, m.label)
                        for m, s in zip(window.messages, scores, strict=True)
                    ]
                )
        groups.append({"reference": evidently_reference(rotation, params, reference_size), "windows": windows})
    print(f"  (out-of-fold reference scores: {time.perf_counter() - started:.0f} s)", flush=True)
    started = time.perf_counter()
    peer = evidently_peer(venv, {"groups": groups}, progress)
    if isinstance(peer, str):
        print(f"  not run: {peer}")
        return
    total_windows = sum(len(drawn) for drawn in cases.values())
    print(
        f"  Evidently {peer.get('version', '?')}: {time.perf_counter() - started:.0f} s for {total_windows} windows "
        "(provisional: a shared machine)"
    )
    print(f"  {'case':<13} {'windows':>7} {'spamfilter':>10} {'evidently':>10}   evidently's drifted columns")
    for case, drawn in cases.items():
        result = peer["cases"][case]
        print(
            f"  {case:<13} {len(drawn):>7} {ours[case].rate if case in ours else float('nan'):>10.1%} "
            f"{result['alarm_rate']:>10.1%}   {result['columns']}"
        )
    print(
        "  ('none' is the false-alarm rate; the others the detection rate at the moderate strength"
        + ("; spamfilter's column: nan here, see a run without --evidently-only)" if not ours else ")")
    )


def print_speed(rotation: Rotation, params: MonitorParams) -> None:
    """Time for 10,000 messages: `run_checks`, and `spamfilter monitor` end to end. Wall-clock and CPU
    seconds: on a shared machine the CPU figure is the one that does not depend on the neighbours."""
    print("\nspeed, 10,000 distinct messages (a traffic pool resampled, each made unique by a number):")
    rng = np.random.default_rng(0)
    pool = rotation.traffic
    big = [
        corpus.Message(pool[i].label, f"{pool[i].text} {n}") for n, i in enumerate(rng.integers(0, len(pool), 10_000))
    ]
    big_window = make_window(big, rotation.scorer, rotation.threshold)
    walls, cpus = [], []
    for _ in range(3):
        wall, cpu = time.perf_counter(), time.process_time()
        decision.run_checks(rotation.reference, big_window, params)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    print(
        f"  run_checks: median {statistics.median(walls):.2f} s wall, {statistics.median(cpus):.2f} s CPU, "
        "of 3 runs (target <= 5 s)"
    )
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / "reference_profile.json"
        files.write_json(profile_path, rotation.built)
        wall, cpu = end_to_end_seconds(profile_path, big, rotation.scorer([m.text for m in big]), rotation.threshold)
    print(
        f"  `spamfilter monitor` end to end on a 10,000-row SQLite log: {wall:.2f} s wall, {cpu:.2f} s CPU "
        "(interpreter start-up, imports and HTML included; target <= 5 s)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200, help="clean windows for the false-alarm rate")
    parser.add_argument("--drift-windows", type=int, default=60, help="windows per drift mode, moderate strength")
    parser.add_argument("--sweep-windows", type=int, default=20, help="windows per (mode, strength) in the sweep")
    parser.add_argument("--strengths", type=float, nargs="*", default=list(DEFAULT_STRENGTHS))
    parser.add_argument("--rotations", type=int, default=5, help="disjoint traffic pools (and references)")
    parser.add_argument("--evidently", type=Path, help="a venv with Evidently installed, to run it as a peer")
    parser.add_argument(
        "--evidently-reference", type=int, default=1500, help="reference rows for Evidently (it is slow on more)"
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the 10,000-message timings")
    parser.add_argument("--speed-only", action="store_true", help="only the 10,000-message timings (one rotation)")
    parser.add_argument(
        "--evidently-progress", type=Path, help="a file the peer appends one JSON line per checked window to"
    )
    parser.add_argument(
        "--evidently-only",
        action="store_true",
        help="only the Evidently peer, on the same windows (our rates: from a run without this flag)",
    )
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 1

    params = sms_params(REPO / "params.yaml")
    monitor_params = params.monitor
    started = time.perf_counter()
    dataset = corpus.deduplicate([corpus.parse_corpus(CORPUS.read_bytes(), str(CORPUS))])
    messages = dataset.messages
    labels = [m.label for m in messages]
    parts = StratifiedKFold(args.rotations, shuffle=True, random_state=params.ingest.seed).split(messages, labels)
    rotations = []
    for index, (rest_idx, traffic_idx) in enumerate(parts):
        if args.speed_only and index > 0:
            break
        rotations.append(
            build_rotation(index, [messages[i] for i in traffic_idx], [messages[i] for i in rest_idx], params)
        )
    first = rotations[0]
    print(
        f"corpus {len(messages)} distinct messages, {args.rotations} rotations; each: traffic pool "
        f"{len(first.traffic)}, training split {len(first.train)}, reference held-out {len(first.held_out)} "
        f"(disjoint); model {params.train.model}, held-out F1 "
        f"{', '.join(f'{r.f1:.3f}' for r in rotations)}; set-up {time.perf_counter() - started:.0f} s"
    )
    print(
        f"monitor: alpha {monitor_params.alpha} with {monitor_params.correction} correction, "
        f"window {WINDOW} messages (labelled, with text)\n",
        flush=True,
    )

    if args.speed_only:
        print_speed(first, monitor_params)
        return 0

    # Every window is a seeded draw: a run with --evidently-only checks the very windows a full run checks.
    clean = draw(rotations, args.windows, "none", 0.0, CLEAN_SEED)
    cases: dict[str, list[Drawn]] = {"none": clean}
    for mode in feed.DRIFT_MODES[1:]:
        cases[mode] = draw(rotations, args.drift_windows, mode, feed.MODERATE_STRENGTH[mode], MODERATE_SEED)
    if args.evidently_only:
        if args.evidently:
            run_evidently(
                args.evidently, rotations, cases, {}, params, args.evidently_reference, args.evidently_progress
            )
        return 0

    ours: dict[str, Outcome] = {"none": run_windows(clean, monitor_params)}
    low, high = ours["none"].interval()
    verdict = "ok" if ours["none"].rate <= 0.05 else "MISSED"
    print(
        f"false alarms: {ours['none'].alarms} of {args.windows} clean windows, {ours['none'].rate:.1%} "
        f"(95% interval {low:.1%}–{high:.1%}; target <= 5%: {verdict}); "
        f"{ours['none'].seconds_per_window:.2f} s/window"
    )
    if ours["none"].fired:
        print(f"  checks that fired: {dict(ours['none'].fired.most_common())}")

    print(f"\ndetection at the moderate strength, {args.drift_windows} windows each (target >= 95%):", flush=True)
    for mode in feed.DRIFT_MODES[1:]:
        strength = feed.MODERATE_STRENGTH[mode]
        ours[mode] = outcome = run_windows(cases[mode], monitor_params)
        low, high = outcome.interval()
        print(
            f"  {mode:<13} strength {strength:<5} detected {outcome.rate:6.1%} ({low:.0%}–{high:.0%}) "
            f"({'ok' if outcome.rate >= 0.95 else 'MISSED'}); fired: {fired_summary(outcome)}",
            flush=True,
        )

    if args.strengths and args.sweep_windows:
        print(
            f"\ndetection against strength, {args.sweep_windows} windows per point "
            "(first strength detected in >= 95% of windows marked *):",
            flush=True,
        )
        print(f"  {'mode':<13} " + " ".join(f"{s:>7g}" for s in args.strengths))
        for mode in feed.DRIFT_MODES[1:]:
            rates = []
            # The same draws at every strength (common random numbers): only the strength changes along a row.
            for strength in args.strengths:
                drawn = draw(rotations, args.sweep_windows, mode, strength, SWEEP_SEED)
                rates.append(run_windows(drawn, monitor_params).rate)
            reached = next((i for i, rate in enumerate(rates) if rate >= 0.95), None)
            cells = [f"{rate:>6.0%}{'*' if i == reached else ' '}" for i, rate in enumerate(rates)]
            print(f"  {mode:<13} " + " ".join(cells), flush=True)

    if not args.no_speed:
        print_speed(first, monitor_params)

    if args.evidently:
        run_evidently(args.evidently, rotations, cases, ours, params, args.evidently_reference, args.evidently_progress)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
