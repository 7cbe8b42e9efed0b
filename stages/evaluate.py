"""DVC stage `evaluate@<channel>`: score the trained pipeline on the held-out split; metrics, plots and
behavioural checks for DVC, the reference profile for the monitor, and the same results added to the
MLflow training run, whose version becomes the `challenger`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spamfilter import entry, files
from spamfilter.config import CHANNELS, Channel, ChannelPaths, EmailParams, Settings, load_params
from spamfilter.data import mail_dataset
from spamfilter.data.splits import read_split
from spamfilter.mail import MailLimits
from spamfilter.modeling import channels, metrics
from spamfilter.modeling.evaluation import Evaluation, evaluate_model, evaluation_figures
from spamfilter.monitoring import profile
from spamfilter.registry import loading, release

log = logging.getLogger("stages.evaluate")


def write_evaluation(evaluation: Evaluation, metrics_path: Path, plots_dir: Path, behavioural_path: Path) -> list[Path]:
    """The DVC metrics, plots and behavioural report; returns the files to attach to the MLflow run."""
    attached = [metrics_path, behavioural_path]
    for name, figure in evaluation_figures(evaluation).items():
        with files.atomic_path(plots_dir / name) as tmp:
            figure.savefig(tmp, format="png")
        attached.append(plots_dir / name)
    files.write_json(plots_dir / "roc.json", evaluation.roc)
    files.write_json(plots_dir / "pr.json", evaluation.pr)
    files.write_json(plots_dir / "confusion.json", metrics.confusion_rows(evaluation.truth, evaluation.predicted))
    files.write_json(behavioural_path, {check.name: check.as_dict() for check in evaluation.behavioural})
    files.write_json(metrics_path, evaluation.metrics_record())
    return attached


def write_reference_profile(
    channel: Channel, evaluation: Evaluation, train_path: Path, model_md5: str, out: Path, limits: MailLimits | None
) -> None:
    """What `spamfilter monitor` compares production traffic against."""
    train_inputs, train_labels = read_split(channel, train_path)
    files.write_json(out, profile.channel_profile(channel, train_inputs, train_labels, evaluation, model_md5, limits))


def log_summary(evaluation: Evaluation) -> None:
    shown = ", ".join(f"{key} {evaluation.scores[key]:.4f}" for key in ("f1", "mcc", "roc_auc", "blocked_ham_rate"))
    log.info("held-out (%d messages): %s", len(evaluation.truth), shown)
    for check in evaluation.behavioural:
        if not check.passed:
            log.warning(
                "behavioural check %s failed on %d of %d: %s", check.name, check.failures, check.total, check.examples
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel", choices=CHANNELS, default="sms")
    parser.add_argument("--test", type=Path, help="default: data/processed/<channel>/test.jsonl")
    parser.add_argument("--train", type=Path, help="default: data/processed/<channel>/train.jsonl")
    parser.add_argument("--model", type=Path, help="default: models/<channel>/model.joblib")
    parser.add_argument("--metrics", type=Path, help="default: reports/<channel>/metrics.json")
    parser.add_argument("--plots-dir", type=Path, help="default: reports/<channel>/plots")
    parser.add_argument("--behavioural", type=Path, help="default: reports/<channel>/behavioural.json")
    parser.add_argument("--profile", type=Path, help="default: models/<channel>/reference_profile.json")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--dvc-lock", type=Path, default=Path("dvc.lock"))
    args = parser.parse_args(argv)
    channel: Channel = args.channel
    paths = ChannelPaths(channel)
    model_path = args.model or paths.model

    inputs, truth = read_split(channel, args.test or paths.test)
    model_md5 = files.md5_file(model_path)
    model = loading.load_pipeline(model_path)
    evaluation = evaluate_model(model, inputs, truth, channels.behavioural_checks(channel, model, inputs))
    attached = write_evaluation(
        evaluation,
        args.metrics or paths.metrics,
        args.plots_dir or paths.plots_dir,
        args.behavioural or paths.reports_dir / "behavioural.json",
    )
    params = load_params(args.params, channel)
    limits = mail_dataset.limits_of(params.ingest.limits) if isinstance(params, EmailParams) else None
    write_reference_profile(
        channel, evaluation, args.train or paths.train, model_md5, args.profile or paths.profile, limits
    )
    version = release.record_evaluation(
        Settings().for_channel(channel),
        model_md5,
        evaluation.scores,
        attached,
        evaluation.behavioural_passed,
        args.dvc_lock.read_text(encoding="utf-8") if args.dvc_lock.is_file() else "",
        params,
    )
    log.info("%s version %s is the challenger", version.name, version.version)
    log_summary(evaluation)
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))
