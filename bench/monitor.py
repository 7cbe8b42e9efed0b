"""Monitor benchmark: false alarms on clean windows, detection of each injected drift, and speed.

Real corpus (../shared/data/sms_spam_collection.tsv beside the checkout), split and model as the
pipeline makes them with the default params, trained here in-process on the training split; the
reference profile is built as the `evaluate` stage builds it. Windows are drawn from the held-out
split (without replacement within a window) and labelled, so every check runs.

Prints:
  * the false-alarm rate (retrain_needed on a clean window) over 200 windows of 500   (target <= 5%)
  * the detection rate of each drift mode at its documented moderate strength        (target >= 95%)
  * the time `run_checks` takes on a 10,000-message window, and `spamfilter monitor`
    end to end on a 10,000-row prediction log                                         (target <= 5 s)
  * with --evidently VENV (a separate venv with Evidently installed), Evidently's DataDriftPreset
    on the same windows, as a peer.

Usage: python bench/monitor.py [--windows 200] [--drift-windows 60] [--evidently /tmp/evidently-venv]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
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


class Scorer:
    """Scores texts with the model, remembering what it has scored."""

    def __init__(self, model: object) -> None:
        self.model = model
        self.cache: dict[str, float] = {}

    def __call__(self, texts: list[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self.cache))
        if todo:
            self.cache.update(zip(todo, spam_probability(self.model, todo).tolist(), strict=True))
        return np.array([self.cache[t] for t in texts])


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


def run_windows(
    reference: decision.Reference,
    windows: list[list[corpus.Message]],
    scorer: Scorer,
    params: MonitorParams,
) -> tuple[float, Counter[str], float]:
    alarms = 0
    fired: Counter[str] = Counter()
    started = time.perf_counter()
    for messages in windows:
        result = decision.run_checks(reference, make_window(messages, scorer, reference.threshold), params)
        alarms += result.retrain_needed
        fired.update(c.name for c in result.checks if c.drifted)
    return alarms / len(windows), fired, (time.perf_counter() - started) / len(windows)


def end_to_end_seconds(
    profile_path: Path, messages: list[corpus.Message], scores: np.ndarray, threshold: float
) -> float:
    """`spamfilter monitor` on a 10,000-row SQLite prediction log (texts logged), wall-clock."""
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
            sys.executable,
            "-m",
            "spamfilter.cli",
            "monitor",
            "--profile",
            str(profile_path),
            "--params",
            str(REPO / "params.yaml"),
            "--log-url",
            url,
            "--last",
            str(len(messages)),
            "--json",
            str(Path(tmp) / "monitor.json"),
            "--html",
            str(Path(tmp) / "monitor.html"),
        ]
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, text=True, cwd=tmp)
        return time.perf_counter() - started


def evidently_peer(
    venv: Path,
    reference_rows: list[dict],
    windows: dict[str, list[list[dict]]],
) -> dict[str, dict] | str:
    """Run Evidently's DataDriftPreset on the same windows in its own venv; its alarm rates per mode."""
    python = venv / "bin" / "python"
    if not python.exists():
        return f"no Python at {python}"
    with tempfile.TemporaryDirectory() as tmp:
        request = Path(tmp) / "windows.json"
        request.write_text(json.dumps({"reference": reference_rows, "windows": windows}))
        result = subprocess.run(
            [str(python), str(EVIDENTLY_PEER), str(request)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            return f"the Evidently run failed: {result.stderr.strip().splitlines()[-1] if result.stderr else result.returncode}"
        return json.loads(result.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=200, help="clean windows for the false-alarm rate")
    parser.add_argument("--drift-windows", type=int, default=60, help="windows per drift mode")
    parser.add_argument("--evidently", type=Path, help="a venv with Evidently installed, to run it as a peer")
    parser.add_argument("--evidently-windows", type=int, default=10, help="windows per case for the Evidently peer")
    parser.add_argument(
        "--evidently-reference", type=int, default=1500, help="reference rows for Evidently (it is slow on more)"
    )
    args = parser.parse_args()
    if not CORPUS.is_file():
        print(f"corpus not found: {CORPUS}", file=sys.stderr)
        return 1

    params = Params()
    monitor_params = params.monitor
    started = time.perf_counter()
    dataset = corpus.deduplicate([corpus.parse_corpus(CORPUS.read_bytes(), str(CORPUS))])
    train, test = corpus.split(dataset.messages, params.ingest.test_size, params.ingest.seed)
    train_texts, train_labels = corpus.texts_and_labels(train)
    featurizer = build_featurizer(params.featurize)
    classifier = build_classifier(params.train).fit(featurizer.fit_transform(train_texts), train_labels)
    model = assemble(featurizer, classifier)
    threshold = model_threshold(model)
    test_texts, truth = corpus.texts_and_labels(test)
    test_scores = spam_probability(model, test_texts)
    predicted = predict_labels(test_scores, threshold)
    metrics = classification_metrics(truth, predicted, test_scores)
    built = json.loads(
        json.dumps(profile.build_profile(train_texts, train_labels, test_scores, truth, predicted, metrics, threshold))
    )
    reference = profile.reference_from_profile(built)
    scorer = Scorer(model)
    scorer.cache.update(zip(test_texts, test_scores.tolist(), strict=True))
    print(
        f"corpus {len(dataset.messages)} messages: train {len(train)}, held-out {len(test)}; "
        f"model {params.train.model} (F1 {metrics['f1']:.4f}), set-up {time.perf_counter() - started:.1f} s"
    )
    print(
        f"monitor: alpha {monitor_params.alpha} with {monitor_params.correction} correction, "
        f"window {WINDOW} messages (labelled, with text)\n"
    )

    clean = [feed.make_batch(test, WINDOW, "none", 0.0, seed=i) for i in range(args.windows)]
    rate, fired, per_window = run_windows(reference, clean, scorer, monitor_params)
    verdict = "ok" if rate <= 0.05 else "MISSED"
    print(
        f"false alarms: {rate:.1%} of {args.windows} clean windows (target <= 5%: {verdict}); {per_window:.2f} s/window"
    )
    if fired:
        print(f"  checks that fired: {dict(fired.most_common())}")

    drifted: dict[str, list[list[corpus.Message]]] = {}
    print(f"\ndetection at the moderate strength, {args.drift_windows} windows each (target >= 95%):")
    for mode in feed.DRIFT_MODES[1:]:
        strength = feed.MODERATE_STRENGTH[mode]
        windows = [feed.make_batch(test, WINDOW, mode, strength, seed=10_000 + i) for i in range(args.drift_windows)]
        drifted[mode] = windows
        rate, fired, _ = run_windows(reference, windows, scorer, monitor_params)
        top = ", ".join(f"{name} {count / len(windows):.0%}" for name, count in fired.most_common(4))
        print(
            f"  {mode:<13} strength {strength:<5} detected {rate:6.1%}  ({'ok' if rate >= 0.95 else 'MISSED'}); fired: {top}"
        )

    print("\nspeed, 10,000 distinct messages (held-out messages resampled, each made unique by a number):")
    rng = np.random.default_rng(0)
    big = [
        corpus.Message(test[i].label, f"{test[i].text} {n}") for n, i in enumerate(rng.integers(0, len(test), 10_000))
    ]
    big_window = make_window(big, scorer, threshold)
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        decision.run_checks(reference, big_window, monitor_params)
        timings.append(time.perf_counter() - t0)
    print(f"  run_checks: median {statistics.median(timings):.2f} s of 3 runs (target <= 5 s)")
    with tempfile.TemporaryDirectory() as tmp:
        profile_path = Path(tmp) / "reference_profile.json"
        files.write_json(profile_path, built)
        seconds = end_to_end_seconds(profile_path, big, scorer([m.text for m in big]), threshold)
    print(
        f"  `spamfilter monitor` end to end on a 10,000-row SQLite log: {seconds:.2f} s (interpreter start-up included)"
    )

    if args.evidently:
        print(
            "\nEvidently DataDriftPreset as a peer (columns text, score, predicted label; reference: "
            f"{args.evidently_reference} training rows with out-of-fold scores; alarm = any column drifted):"
        )
        oof = cross_val_predict(
            assemble(build_featurizer(params.featurize), build_classifier(params.train)),
            train_texts,
            train_labels,
            cv=StratifiedKFold(5, shuffle=True, random_state=0),
            method="predict_proba",
        )[:, 1]
        reference_rows = [
            {"text": t, "score": float(s), "predicted": "spam" if s >= threshold else "ham"}
            for t, s in zip(train_texts, oof, strict=True)
        ]
        keep = np.random.default_rng(1).choice(len(reference_rows), args.evidently_reference, replace=False)
        reference_rows = [reference_rows[i] for i in sorted(keep)]
        n = args.evidently_windows
        cases = {"none": clean[:n], **{mode: windows[:n] for mode, windows in drifted.items()}}
        payload = {}
        for case, windows in cases.items():
            payload[case] = []
            for messages in windows:
                texts = [m.text for m in messages]
                scores = scorer(texts)
                payload[case].append(
                    [
                        {"text": t, "score": float(s), "predicted": "spam" if s >= threshold else "ham"}
                        for t, s in zip(texts, scores, strict=True)
                    ]
                )
        ours = {}
        for case, windows in cases.items():
            ours[case], _, _ = run_windows(reference, windows, scorer, monitor_params)
        peer = evidently_peer(args.evidently, reference_rows, payload)
        if isinstance(peer, str):
            print(f"  not run: {peer}")
        else:
            print(f"  {'case':<13} {'spamfilter':>10} {'evidently':>10}   evidently's drifted columns")
            for case in cases:
                result = peer[case]
                print(f"  {case:<13} {ours[case]:>10.1%} {result['alarm_rate']:>10.1%}   {result['columns']}")
            print(f"  ({n} windows per case; 'none' is the false-alarm rate; Evidently {peer.get('version', '?')})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
