"""The release flow at the edges: gate → promote → export, and rollback.

* `run_gate` scores the challenger and the champion on the current held-out split with the same
  functions as the evaluate stage, and applies the pure rules of `spamfilter.gate`.
* `write_gate_outputs` records the verdict (`reports/gate.json`, and `deploy_needed` for GitHub Actions).
* `promote_from_report` acts on a recorded verdict: only a passed one, and only if the champion is
  still the version the gate judged against (compare-and-set in `spamfilter.registry`).
* `export_bundle` writes a version as a serving bundle (`spamfilter.bundle`).

The command-line handlers in `spamfilter.cli` are thin wrappers around these.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from spamfilter import files
from spamfilter.config import Channel, ChannelParams, GateParams, Settings, result_params
from spamfilter.data import storage
from spamfilter.data.splits import ModelInputs, read_split
from spamfilter.errors import DataError, ModelUnavailableError, RegistryError, TrackingError
from spamfilter.modeling import metrics
from spamfilter.modeling.pipeline import model_threshold, spam_probability
from spamfilter.registry import audit, bundle, gate, loading, pr_report, versions

log = logging.getLogger(__name__)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def score(model: Any, inputs: Sequence[Any], truth: list[str]) -> dict[str, float]:
    """The evaluate stage's held-out metrics of `model` on these inputs (texts or raw messages)."""
    probabilities = spam_probability(model, list(inputs))
    predicted = [str(label) for label in model.predict(list(inputs))]
    return metrics.classification_metrics(truth, predicted, probabilities)


def read_held_out(path: Path, channel: Channel = "sms") -> tuple[ModelInputs, list[str], str]:
    """Inputs, labels and sha256 of a channel's held-out split written by the ingest stage."""
    try:
        digest = files.sha256_file(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no held-out split; run `dvc repro` first") from None
    inputs, truth = read_split(channel, path)
    if not inputs:
        raise DataError(f"{path}: the held-out split is empty")
    return inputs, truth, digest


def run_gate(
    settings: Settings,
    params: GateParams,
    test_path: Path,
    challenger_ref: str = "challenger",
    treat_missing_champion_as_absent: bool = False,
    channel: Channel = "sms",
) -> gate.GateReport:
    """Judge the challenger against the champion on `test_path`. Touches no alias: errors (no
    challenger, store unreachable, challenger unloadable) raise; a verdict either way returns."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when needed

    texts, truth, sha256 = read_held_out(test_path, channel)
    challenger = tracking.get_version(settings, challenger_ref)
    champion = tracking.find_alias(settings, tracking.CHAMPION)
    challenger_metrics = score(tracking.load_version(settings, challenger), texts, truth)

    champion_metrics: dict[str, float] | None = None
    status: gate.ChampionStatus = "absent"
    problem: str | None = None
    if champion is not None:
        try:
            if champion.version == challenger.version:
                champion_metrics = challenger_metrics
            else:
                champion_metrics = score(tracking.load_version(settings, champion), texts, truth)
            status = "present"
        except ModelUnavailableError as exc:
            problem = str(exc)
            status = "treated_as_absent" if treat_missing_champion_as_absent else "unloadable"
            log.warning("champion %s", problem)

    same = champion is not None and champion.version == challenger.version
    verdict = gate.judge(
        challenger_metrics,
        champion_metrics,
        len(texts),
        params,
        champion_problem=problem if status == "unloadable" else None,
    )
    return gate.GateReport(
        registered_model=settings.registered_model,
        decision=verdict.decision,
        deploy_needed=verdict.promote,
        reason=f"v{challenger.version} is already the champion; {verdict.reason}" if same else verdict.reason,
        challenger=gate.JudgedVersion(
            version=challenger.version,
            run_id=challenger.run_id,
            alias=challenger_ref if not challenger_ref.removeprefix("v").isdigit() else None,
            metrics=challenger_metrics,
        ),
        champion=None
        if champion is None
        else gate.JudgedVersion(
            version=champion.version, run_id=champion.run_id, alias=tracking.CHAMPION, metrics=champion_metrics or {}
        ),
        champion_status=status,
        champion_problem=problem,
        test_set=gate.HeldOutSet(path=str(test_path), rows=len(texts), sha256=sha256),
        primary_metric=verdict.primary_metric,
        rules=verdict.rules,
        params=params,
        evaluated_at=now_iso(),
    )


def github_output_lines(report: gate.GateReport) -> str:
    champion = report.champion.version if report.champion else ""
    return (
        f"deploy_needed={'true' if report.deploy_needed else 'false'}\n"
        f"challenger_version={report.challenger.version}\n"
        f"champion_version={champion}\n"
    )


def write_gate_outputs(report: gate.GateReport, report_path: Path, github_output: Path | None) -> None:
    """`reports/gate.json` (atomically) and, in GitHub Actions, the step outputs."""
    files.write_json(report_path, json.loads(report.model_dump_json()))
    if github_output is not None:
        files.append_text(github_output, github_output_lines(report))


def record_verdict(settings: Settings, report: gate.GateReport) -> None:
    """Tag the judged version with the verdict, so the registry shows rejected challengers too
    (not when it is already the champion: its tags keep the verdict that promoted it)."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when needed

    if report.champion is not None and report.champion.version == report.challenger.version:
        return
    tracking.set_version_tags(
        settings,
        report.challenger.version,
        {
            "gate.decision": report.decision,
            "gate.evaluated_at": report.evaluated_at,
            "gate.champion": report.champion.version if report.champion else "",
            "gate.test_sha256": report.test_set.sha256,
        },
    )
    tracking.describe_version(settings, report.challenger.version)


def read_gate_report(path: Path) -> gate.GateReport:

    try:
        return gate.GateReport.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RegistryError(f"{path}: no gate report; run `spamfilter gate` first") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
        raise RegistryError(f"{path}: not a gate report ({problems})") from None


def promote_from_report(
    settings: Settings, report_path: Path, actor: str, reason: str | None = None, if_passed: bool = False
) -> audit.PromotionRecord | None:
    """Promote the version a gate report judged, if the gate passed it. None when the gate rejected
    and `if_passed`; a rejected verdict is otherwise an error. `champion` is untouched unless promoted."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when needed

    report = read_gate_report(report_path)
    if report.registered_model != settings.registered_model:
        raise RegistryError(
            f"{report_path} judged {report.registered_model!r}, but SPAM_REGISTERED_MODEL is {settings.registered_model!r}"
        )
    if report.decision != "promote":
        if if_passed:
            return None
        raise RegistryError(
            f"{report_path}: the gate rejected v{report.challenger.version} ({report.reason}); champion unchanged"
        )
    return tracking.promote(
        settings,
        report.challenger.version,
        expected_champion=report.champion.version if report.champion else None,
        actor=actor,
        reason=reason or f"gate: {report.reason}",
        gate=audit.gate_summary(json.loads(report.model_dump_json())),
    )


def export_bundle(settings: Settings, ref: str, destination: Path, channel: Channel = "sms") -> bundle.BundleMetadata:
    """Write the version named by `ref` (alias or number) as a serving bundle at `destination`."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when needed

    version = tracking.registered_version(tracking.get_version(settings, ref).uri, settings)
    alias = None if ref.removeprefix("v").isdigit() else ref
    with tempfile.TemporaryDirectory(
        prefix=".export-", dir=destination.parent if destination.parent.exists() else None
    ) as tmp:
        model_dir = tracking.download_version(settings, version, Path(tmp) / "download")
        threshold = model_threshold(loading.load_pipeline(model_dir))
        description = versions.describe(version, alias, threshold, channel)
        meta = bundle.BundleMetadata(**description.model_dump(), exported_at=now_iso())
        bundle.write_bundle(destination, model_dir, meta)
    return meta


@dataclass(frozen=True)
class ChannelReportInputs:
    """What the pull-request report shows of one channel: its plots and its gate against the base's champion."""

    channel: Channel
    champion: Path | None  # the base's champion exported as a serving bundle, or None
    model: Path
    test: Path
    plots_dir: Path
    gate: GateParams


def gate_against_bundle(
    champion: Path | None, model: Path, test_path: Path, params: GateParams, channel: Channel = "sms"
) -> pr_report.GateSection | None:
    """The gate's verdict of the model at `model` against the champion exported to the bundle
    `champion`, both scored on `test_path` (for the pull-request report; touches no registry)."""
    if champion is None:
        return None
    if not (champion / bundle.METADATA_FILE).is_file():
        return pr_report.GateSection(champion=str(champion), unavailable=f"no serving bundle at {champion}")
    meta = bundle.read_bundle_metadata(champion)
    label = f"{meta.name} v{meta.version} ({meta.alias or 'by version'})"
    inputs, truth, _ = read_held_out(test_path, channel)
    challenger = score(loading.load_pipeline(model), inputs, truth)
    try:
        held = score(loading.load_pipeline(champion), inputs, truth)
    except TrackingError as exc:
        return pr_report.GateSection(champion=label, unavailable=str(exc))
    return pr_report.GateSection(champion=label, verdict=gate.judge(challenger, held, len(inputs), params))


def write_pr_report(out: Path, base: str, head: str, channels: Sequence[ChannelReportInputs]) -> list[str]:
    """Write the pull-request report (`spamfilter report`) to `out`: DVC's metrics and params diff
    against `base` (every channel), and per channel its plots and the gate's verdict against the
    base's champion. Returns the changed metrics."""
    metrics_diff = storage.dvc_json(Path.cwd(), "metrics", "diff", base, "--all")
    params_diff = storage.dvc_json(Path.cwd(), "params", "diff", base)
    out_dir = out.resolve().parent
    sections = [
        pr_report.ChannelSection(
            channel=inputs.channel,
            plots=[
                str(Path(os.path.relpath(path.resolve(), out_dir)).as_posix())
                for path in sorted(inputs.plots_dir.glob("*.png"))
            ],
            gate=gate_against_bundle(inputs.champion, inputs.model, inputs.test, inputs.gate, inputs.channel),
        )
        for inputs in channels
    ]
    files.write_text(out, pr_report.build_report(metrics_diff, params_diff, sections, base, head))
    return pr_report.changed_metrics(metrics_diff)


def summary(metrics_path: Path, report_path: Path, bundle_path: Path) -> str:
    """What `make run` prints at the end: the held-out metrics, the gate's verdict, the bundle."""
    lines = []
    if metrics_path.is_file():
        scores: Mapping[str, Any] = files.read_json(metrics_path)
        shown = ", ".join(
            f"{key} {scores[key]:.4f}" for key in ("f1", "mcc", "roc_auc", "blocked_ham_rate") if key in scores
        )
        lines.append(f"metrics ({scores.get('test_rows', '?')} held-out messages): {shown}")
    if report_path.is_file():
        report = read_gate_report(report_path)
        lines.append(f"gate: {report.decision.upper()} v{report.challenger.version} — {report.reason}")
    if (bundle_path / bundle.METADATA_FILE).is_file():
        meta = bundle.read_bundle_metadata(bundle_path)
        lines.append(f"bundle: {bundle_path} = {meta.name} v{meta.version} ({meta.alias or 'by version'})")
    else:
        lines.append(f"bundle: none at {bundle_path}")
    return "\n".join(lines)


def record_evaluation(
    settings: Settings,
    model_md5: str,
    scores: Mapping[str, float],
    artifacts: Sequence[Path],
    behavioural_passed: bool,
    dvc_lock: str,
    params: ChannelParams,
) -> versions.ModelVersion:
    """The `evaluate` stage's registry side: find the version `train` registered for this model (by its
    md5), add the held-out metrics and reports to its run, tag it with its lineage and make it the
    `challenger` the gate judges. `champion` is the gate's to move."""
    from spamfilter.registry import tracking  # imports mlflow, which takes seconds: only when needed

    version = tracking.find_trained_version(settings, model_md5)
    tracking.log_evaluation(
        settings,
        version.run_id,
        scores,
        artifacts=artifacts,
        tags={"behavioural_checks": "pass" if behavioural_passed else "fail"},
    )
    tracking.mark_challenger(
        settings, version.version, version.run_id, version_tags(dvc_lock, params, scores, model_md5)
    )
    return version


def version_tags(dvc_lock: str, params: ChannelParams, scores: Mapping[str, float], model_md5: str) -> dict[str, str]:
    """Registry tags for a freshly evaluated version: the pipeline state it came from (md5 of
    `dvc.lock` as the evaluate stage sees it, the md5 of the trained model as DVC records it, a hash
    of the params that change results) and its held-out metrics."""
    hashed_params = result_params(params)
    return {
        "dvc_lock_md5": hashlib.md5(dvc_lock.encode("utf-8")).hexdigest() if dvc_lock else "",
        "dvc_model_md5": model_md5,
        "params_sha256": hashlib.sha256(json.dumps(hashed_params, sort_keys=True).encode("utf-8")).hexdigest(),
        "evaluated_at": now_iso(),
        **{f"metric.{key}": f"{value:.6f}" for key, value in scores.items()},
    }
