"""The `spamfilter` command: project tasks that are not DVC stages.

Handlers parse arguments, call the library and print. Each imports the library modules it needs
inside itself: `spamfilter --help` and the light commands then start in a fraction of a second,
while the registry commands pay for mlflow and the monitor for scikit-learn only when they run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from spamfilter import entry
from spamfilter.config import Settings
from spamfilter.errors import ConfigError, DataError

if TYPE_CHECKING:  # argparse names no public type for it, and the class is not subscriptable at run time
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]


def _github_output() -> Path | None:
    """The step-output file GitHub Actions names in `GITHUB_OUTPUT` (None outside Actions)."""

    value = os.environ.get("GITHUB_OUTPUT")
    return Path(value) if value else None


def _data(args: argparse.Namespace) -> int:
    from spamfilter.data.acquire import obtain

    settings = Settings()
    print(obtain(args.raw_dir, args.dvc_file, settings.spam_data, settings.spam_data_url, force=args.force))
    return 0


def _gate(args: argparse.Namespace) -> int:

    from spamfilter.config import load_params
    from spamfilter.registry import gate, release

    settings = Settings()
    report = release.run_gate(
        settings, load_params(args.params).gate, args.test, args.challenger, args.treat_missing_champion_as_absent
    )
    release.write_gate_outputs(report, args.report, _github_output())
    release.record_verdict(settings, report)
    print(gate.render_report(report))
    print(f"report: {args.report}")
    return 0


def _promote(args: argparse.Namespace) -> int:

    from spamfilter.registry import audit, release

    settings = Settings()
    record = release.promote_from_report(
        settings, args.report, audit.actor_from_env(os.environ), args.reason, if_passed=args.if_passed
    )
    if record is None:
        print(f"not promoting: the gate rejected the challenger ({args.report}); champion unchanged")
    else:
        previous = f"v{record.previous}" if record.previous else "none"
        print(
            f"{settings.registered_model}@champion: {previous} → v{record.version} (audit #{record.seq}, {record.actor})"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:

    from spamfilter.registry import audit, tracking

    settings = Settings()
    record = tracking.rollback(settings, audit.actor_from_env(os.environ), args.reason, to_version=args.to)
    print(
        f"{settings.registered_model}@champion: v{record.previous} → v{record.version} (audit #{record.seq}, rollback)"
    )
    return 0


def _history(args: argparse.Namespace) -> int:

    from spamfilter.registry import audit, tracking

    settings = Settings()
    records = tracking.promotion_history(settings)[-args.last :] if args.last else tracking.promotion_history(settings)
    if args.json:
        print(json.dumps([record.model_dump() for record in records], indent=2))
    else:
        print(audit.render_history(records, settings.registered_model))
    return 0


def _export(args: argparse.Namespace) -> int:

    from spamfilter.registry import release

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line of output, not a bar
    meta = release.export_bundle(Settings(), args.version or args.alias, args.out)
    shown = ", ".join(
        f"{key} {meta.metrics[key]:.4f}" for key in ("f1", "mcc", "blocked_ham_rate") if key in meta.metrics
    )
    print(f"{args.out}: {meta.name} v{meta.version} ({meta.alias or 'by version'}), {shown}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from spamfilter.registry import release

    print(release.summary(args.metrics, args.report, args.bundle))
    return 0


def _add_release_commands(commands: Subcommands) -> None:
    gate = commands.add_parser(
        "gate", help="score challenger and champion on the held-out split; write the verdict to reports/gate.json"
    )
    gate.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    gate.add_argument("--params", type=Path, default=Path("params.yaml"))
    gate.add_argument("--report", type=Path, default=Path("reports/gate.json"))
    gate.add_argument("--challenger", default="challenger", help="alias or version number to judge")
    gate.add_argument(
        "--treat-missing-champion-as-absent",
        action="store_true",
        help="if the champion cannot be loaded, judge the challenger by the floors instead of refusing",
    )
    gate.set_defaults(handler=_gate)

    promote = commands.add_parser("promote", help="move `champion` to the version a passed gate report judged")
    promote.add_argument("--report", type=Path, default=Path("reports/gate.json"))
    promote.add_argument("--reason", help="why (default: the gate's reason)")
    promote.add_argument("--if-passed", action="store_true", help="do nothing (exit 0) when the gate rejected")
    promote.set_defaults(handler=_promote)

    rollback = commands.add_parser("rollback", help="move `champion` back to the previous champion")
    rollback.add_argument("--to", help="a version number to roll back to (default: the previous champion)")
    rollback.add_argument("--reason", default="manual rollback")
    rollback.set_defaults(handler=_rollback)

    history = commands.add_parser("history", help="list the promotions and rollbacks of `champion`")
    history.add_argument("--last", type=int, default=0, help="only the last N records")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=_history)

    export = commands.add_parser("export", help="write a model version as a serving bundle (default: the champion)")
    which = export.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion")
    which.add_argument("--version")
    export.add_argument("--out", type=Path, default=Path("bundle"))
    export.set_defaults(handler=_export)

    summary = commands.add_parser("summary", help="print the held-out metrics, the gate verdict and the bundle")
    summary.add_argument("--metrics", type=Path, default=Path("reports/metrics.json"))
    summary.add_argument("--report", type=Path, default=Path("reports/gate.json"))
    summary.add_argument("--bundle", type=Path, default=Path("bundle"))
    summary.set_defaults(handler=_summary)


def _feed(args: argparse.Namespace) -> int:
    from spamfilter.data import corpus, feed

    paths = corpus.corpus_files(args.source, hint="no corpus to sample from; run `make data` first")
    pool = corpus.deduplicate(corpus.parse_corpus(p.read_bytes(), str(p)) for p in paths).messages
    strength = feed.MODERATE_STRENGTH[args.drift] if args.strength is None else args.strength
    try:
        batch = feed.make_batch(pool, args.n, args.drift, strength, args.seed)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    path = feed.write_batch(batch, args.out_dir, args.drift)
    spam = sum(m.is_spam for m in batch)
    print(f"{path}: {len(batch)} messages ({spam} spam), drift {args.drift} at strength {strength}")
    return 0


def _monitor(args: argparse.Namespace) -> int:

    from spamfilter.config import load_params
    from spamfilter.monitoring import monitor, rendering

    params = load_params(args.params).monitor
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--since {args.since!r}: not an ISO-8601 time (e.g. 2025-01-31T12:00)") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    last = args.last if args.last is not None else (None if since else params.window)
    request = monitor.MonitorRequest(
        profile=args.profile,
        params=params,
        use_log=args.log or not args.batch,
        log_url=args.log_url or os.environ.get("PREDICTION_LOG_URL") or monitor.DEFAULT_LOG_URL,
        last=last,
        since=since,
        batches=list(args.batch or []),
        model=args.model,
        json_path=args.json,
        html_path=args.html,
        github_output=_github_output(),
    )
    report = monitor.run(request)
    print(rendering.summary_table(report), end="")
    print(f"reports: {args.json}, {args.html}")
    return 0


def _add_monitor_commands(commands: Subcommands) -> None:
    from spamfilter.data.feed import DRIFT_MODES

    feed = commands.add_parser(
        "feed", help="sample a labelled batch (optionally with injected drift) into data/new/ for the next `dvc repro`"
    )
    feed.add_argument("--n", type=int, default=100, help="messages in the batch (default 100)")
    feed.add_argument("--drift", choices=DRIFT_MODES, default="none")
    feed.add_argument("--strength", type=float, help="drift strength in [0, 1] (default: the mode's moderate strength)")
    feed.add_argument("--source", type=Path, default=Path("data/raw"), help="corpus file or directory to sample")
    feed.add_argument("--out-dir", type=Path, default=Path("data/new"))
    feed.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    feed.set_defaults(handler=_feed)

    monitor = commands.add_parser(
        "monitor", help="check the prediction log and/or labelled batches for drift; decide retrain_needed"
    )
    monitor.add_argument("--profile", type=Path, default=Path("models/reference_profile.json"))
    monitor.add_argument("--params", type=Path, default=Path("params.yaml"))
    monitor.add_argument(
        "--log", action="store_true", help="read the prediction log (the default unless --batch is given)"
    )
    monitor.add_argument(
        "--log-url", help="prediction log URL (default: $PREDICTION_LOG_URL or sqlite:///predictions.db)"
    )
    monitor.add_argument(
        "--last", type=int, help="the newest N predictions (default: monitor.window, or all with --since)"
    )
    monitor.add_argument("--since", help="predictions at or after this ISO-8601 time (UTC unless stated)")
    monitor.add_argument(
        "--batch", type=Path, action="append", help="a labelled batch file or directory (e.g. data/new); repeatable"
    )
    monitor.add_argument(
        "--model",
        type=Path,
        default=Path("models/model.joblib"),
        help="scores batches: a model.joblib, an MLflow model directory or a bundle (e.g. bundle/)",
    )
    monitor.add_argument("--json", type=Path, default=Path("reports/monitor.json"))
    monitor.add_argument("--html", type=Path, default=Path("reports/monitor.html"))
    monitor.set_defaults(handler=_monitor)


def _transfer(args: argparse.Namespace) -> int:
    from spamfilter.data.storage import transfer

    print(transfer(Path.cwd(), args.command, args.remote, args.targets))
    return 0


def _add_storage_commands(commands: Subcommands) -> None:
    for direction, text in (("push", "upload"), ("pull", "download")):
        sub = commands.add_parser(
            direction, help=f"`dvc {direction}`: {text} data and models, explaining an S3 remote's failure"
        )
        sub.add_argument("--remote", "-r", default=None, help="DVC remote name (default: the default remote)")
        sub.add_argument("targets", nargs="*", help="DVC targets (default: everything)")
        sub.set_defaults(handler=_transfer)


def _report(args: argparse.Namespace) -> int:
    from spamfilter.config import load_params
    from spamfilter.registry import release

    changed = release.write_pr_report(
        args.out,
        args.base,
        args.head,
        args.plots_dir,
        args.champion,
        args.model,
        args.test,
        load_params(args.params).gate,
    )
    print(f"{args.out}: metrics changed against {args.base}: {', '.join(changed) or 'none'}")
    return 0


def _add_report_commands(commands: Subcommands) -> None:
    report = commands.add_parser(
        "report", help="write the pull-request report (metrics and params diff, plots, gate verdict) as Markdown"
    )
    report.add_argument("--base", default="origin/main", help="git revision to compare with (default origin/main)")
    report.add_argument("--head", default="", help="a label for this branch in the title (e.g. the commit)")
    report.add_argument("--out", type=Path, default=Path("report.md"))
    report.add_argument("--plots-dir", type=Path, default=Path("reports/plots"))
    report.add_argument(
        "--champion",
        type=Path,
        help="the base's champion as a serving bundle (`spamfilter export`): judged by the gate",
    )
    report.add_argument("--model", type=Path, default=Path("models/model.joblib"), help="this branch's model")
    report.add_argument("--test", type=Path, default=Path("data/processed/test.jsonl"))
    report.add_argument("--params", type=Path, default=Path("params.yaml"))
    report.set_defaults(handler=_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spamfilter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    data = commands.add_parser(
        "data", help="obtain the raw corpus: SPAM_DATA file, else `dvc pull`, else the UCI download (sha256-checked)"
    )
    data.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    data.add_argument("--dvc-file", type=Path, default=Path("data.dvc"))
    data.add_argument(
        "--force", action="store_true", help="download again from SPAM_DATA_URL even if data/raw has a corpus"
    )
    data.set_defaults(handler=_data)
    _add_release_commands(commands)
    _add_monitor_commands(commands)
    _add_storage_commands(commands)
    _add_report_commands(commands)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: list[str] | None = None) -> int:
    return entry.run(_main, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
