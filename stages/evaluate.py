"""DVC stage `evaluate`: score the trained pipeline on the held-out split; metrics, plots and
behavioural checks for DVC, and the same added to the MLflow training run."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spamfilter import entry, files
from spamfilter.config import Settings, load_params
from spamfilter.data import corpus
from spamfilter.modeling import metrics, plots
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.monitoring import profile
from spamfilter.registry import release

log = logging.getLogger("stages.evaluate")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    parser.add_argument("--model", type=Path, default=Path("models/model.joblib"))
    parser.add_argument("--run-info", type=Path, default=Path("models/training_run.json"))
    parser.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    parser.add_argument("--plots-dir", type=Path, default=Path("reports/plots"))
    parser.add_argument("--behavioural", type=Path, default=Path("reports/behavioural.json"))
    parser.add_argument("--train", type=Path, default=Path("data/processed/train.jsonl"))
    parser.add_argument("--profile", type=Path, default=Path("models/reference_profile.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dvc-lock", type=Path, default=Path("dvc.lock"))
    args = parser.parse_args(argv)

    messages = corpus.from_jsonl(args.test.read_text(encoding="utf-8"), str(args.test))
    texts, truth = corpus.texts_and_labels(messages)
    model = files.load_joblib(args.model)
    probabilities = spam_probability(model, texts)
    predicted = [str(label) for label in model.predict(texts)]

    scores = metrics.classification_metrics(truth, predicted, probabilities)
    counts = metrics.confusion_counts(truth, predicted)
    roc = metrics.roc_points(truth, probabilities)
    pr = metrics.pr_points(truth, probabilities)
    checks = metrics.behavioural_checks(texts, lambda batch: [str(x) for x in model.predict(batch)])
    behavioural = {check.name: check.as_dict() for check in checks}

    plot_files = {
        "roc.png": plots.roc_figure(roc, scores["roc_auc"]),
        "pr.png": plots.pr_figure(pr, scores["pr_auc"]),
        "confusion.png": plots.confusion_figure(counts),
    }
    for name, figure in plot_files.items():
        with files.atomic_path(args.plots_dir / name) as tmp:
            figure.savefig(tmp, format="png")
    files.write_json(args.plots_dir / "roc.json", roc)
    files.write_json(args.plots_dir / "pr.json", pr)
    files.write_json(args.plots_dir / "confusion.json", metrics.confusion_rows(truth, predicted))
    files.write_json(args.behavioural, behavioural)
    files.write_json(args.metrics, {**scores, "test_rows": len(texts), "confusion": counts})
    # What `spamfilter monitor` compares production traffic against.
    train_texts, train_labels = corpus.texts_and_labels(
        corpus.from_jsonl(args.train.read_text(encoding="utf-8"), str(args.train))
    )
    reference_profile = profile.build_profile(
        train_texts,
        train_labels,
        probabilities,
        truth,
        predicted,
        scores,
        model_threshold(model),
        model=files.read_json(args.run_info),
    )
    files.write_json(args.profile, reference_profile)

    run_info = files.read_json(args.run_info)
    from spamfilter.registry import tracking

    settings = Settings()
    tracking.log_evaluation(
        settings,
        run_info["run_id"],
        scores,
        artifacts=[args.metrics, args.behavioural, *(args.plots_dir / name for name in plot_files)],
        tags={"behavioural_checks": "pass" if all(c.passed for c in checks) else "fail"},
    )
    # The new version becomes the `challenger` the gate judges; `champion` is the gate's to move.
    dvc_lock = args.dvc_lock.read_text(encoding="utf-8") if args.dvc_lock.is_file() else ""
    tracking.mark_challenger(
        settings.model_copy(update={"registered_model": run_info["registered_model"]}),
        run_info["model_version"],
        run_info["run_id"],
        release.version_tags(dvc_lock, load_params(args.params), scores),
    )
    summary = ", ".join(f"{key} {scores[key]:.4f}" for key in ("f1", "mcc", "roc_auc", "blocked_ham_rate"))
    log.info("held-out (%d messages): %s", len(texts), summary)
    for check in checks:
        if not check.passed:
            log.warning(
                "behavioural check %s failed on %d of %d: %s", check.name, check.failures, check.total, check.examples
            )
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))
