"""The `spamfilter` command: project tasks that are not DVC stages.

Handlers parse arguments, call the library and print. Each imports the library modules it needs
inside itself: `spamfilter --help` and the light commands then start in a fraction of a second,
while the registry commands pay for mlflow and the monitor for scikit-learn only when they run.

Every command that concerns one channel takes `--channel sms|email` (default: the first channel in
`params.yaml`); its paths default to that channel's (`spamfilter.config.ChannelPaths`).
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
from spamfilter.config import CHANNELS, Channel, ChannelPaths, Settings, load_params, load_params_file
from spamfilter.errors import ConfigError, DataError

if TYPE_CHECKING:  # argparse names no public type for it, and the class is not subscriptable at run time
    Subcommands = argparse._SubParsersAction[argparse.ArgumentParser]

PARAMS = Path("params.yaml")


def _github_output() -> Path | None:
    """The step-output file GitHub Actions names in `GITHUB_OUTPUT` (None outside Actions)."""
    value = os.environ.get("GITHUB_OUTPUT")
    return Path(value) if value else None


def _channel(args: argparse.Namespace) -> Channel:
    """The channel a command acts on: `--channel`, else the first channel `params.yaml` configures."""
    if args.channel:
        chosen: Channel = args.channel
        return chosen
    params = getattr(args, "params", None) or PARAMS
    return load_params_file(params).channels.configured()[0] if Path(params).is_file() else "sms"


def _add_channel(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--channel", choices=CHANNELS, help="the channel to act on (default: the first channel in params.yaml)"
    )


def _channels(args: argparse.Namespace) -> int:
    print(" ".join(load_params_file(args.params).channels.configured()))
    return 0


def _data(args: argparse.Namespace) -> int:
    channel = _channel(args)
    paths = ChannelPaths(channel)
    raw_dir = args.raw_dir or paths.raw_dir
    dvc_file = args.dvc_file or paths.dvc_file
    settings = Settings()
    if channel == "email":
        from spamfilter.data import mail_acquire

        print(
            mail_acquire.obtain_mail_corpus(
                raw_dir,
                dvc_file,
                settings.spam_email_data,
                settings.spam_email_data_url,
                mail_acquire.CORPUS_INTEGRITY,
                mail_acquire.shared_tarball(Path.cwd()),
                force=args.force,
            )
        )
    else:
        from spamfilter.data.acquire import obtain

        print(obtain(raw_dir, dvc_file, settings.spam_data, settings.spam_data_url, force=args.force))
    return 0


def _gate(args: argparse.Namespace) -> int:
    from spamfilter.registry import gate, release

    channel = _channel(args)
    paths = ChannelPaths(channel)
    report_path = args.report or paths.gate_report
    settings = Settings().for_channel(channel)
    report = release.run_gate(
        settings,
        load_params(args.params, channel).gate,
        args.test or paths.test,
        args.challenger,
        args.treat_missing_champion_as_absent,
        channel=channel,
    )
    release.write_gate_outputs(report, report_path, _github_output())
    release.record_verdict(settings, report)
    print(gate.render_report(report))
    print(f"report: {report_path}")
    return 0


def _promote(args: argparse.Namespace) -> int:
    from spamfilter.registry import audit, release

    channel = _channel(args)
    report_path = args.report or ChannelPaths(channel).gate_report
    settings = Settings().for_channel(channel)
    record = release.promote_from_report(
        settings, report_path, audit.actor_from_env(os.environ), args.reason, if_passed=args.if_passed
    )
    if record is None:
        print(f"not promoting: the gate rejected the challenger ({report_path}); champion unchanged")
    else:
        previous = f"v{record.previous}" if record.previous else "none"
        print(
            f"{settings.registered_model}@champion: {previous} → v{record.version} (audit #{record.seq}, {record.actor})"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from spamfilter.registry import audit, tracking

    settings = Settings().for_channel(_channel(args))
    record = tracking.rollback(settings, audit.actor_from_env(os.environ), args.reason, to_version=args.to)
    print(
        f"{settings.registered_model}@champion: v{record.previous} → v{record.version} (audit #{record.seq}, rollback)"
    )
    return 0


def _history(args: argparse.Namespace) -> int:
    from spamfilter.registry import audit, tracking

    settings = Settings().for_channel(_channel(args))
    records = tracking.promotion_history(settings)
    records = records[-args.last :] if args.last else records
    if args.json:
        print(json.dumps([record.model_dump() for record in records], indent=2))
    else:
        print(audit.render_history(records, settings.registered_model))
    return 0


def _export(args: argparse.Namespace) -> int:
    from spamfilter.registry import release

    channel = _channel(args)
    out = args.out or ChannelPaths(channel).bundle
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one line of output, not a bar
    meta = release.export_bundle(Settings().for_channel(channel), args.version or args.alias, out, channel)
    shown = ", ".join(
        f"{key} {meta.metrics[key]:.4f}" for key in ("f1", "mcc", "blocked_ham_rate") if key in meta.metrics
    )
    print(f"{out}: {meta.name} v{meta.version} ({meta.alias or 'by version'}), {shown}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from spamfilter.registry import release

    channel = _channel(args)
    paths = ChannelPaths(channel)
    print(f"[{channel}]")
    print(release.summary(args.metrics or paths.metrics, args.report or paths.gate_report, args.bundle or paths.bundle))
    return 0


def _add_release_commands(commands: Subcommands) -> None:
    gate = commands.add_parser(
        "gate",
        help="score challenger and champion on the held-out split; write the verdict to reports/<channel>/gate.json",
    )
    _add_channel(gate)
    gate.add_argument("--test", type=Path, help="default: data/processed/<channel>/test.jsonl")
    gate.add_argument("--params", type=Path, default=PARAMS)
    gate.add_argument("--report", type=Path, help="default: reports/<channel>/gate.json")
    gate.add_argument("--challenger", default="challenger", help="alias or version number to judge")
    gate.add_argument(
        "--treat-missing-champion-as-absent",
        action="store_true",
        help="if the champion cannot be loaded, judge the challenger by the floors instead of refusing",
    )
    gate.set_defaults(handler=_gate)

    promote = commands.add_parser("promote", help="move `champion` to the version a passed gate report judged")
    _add_channel(promote)
    promote.add_argument("--report", type=Path, help="default: reports/<channel>/gate.json")
    promote.add_argument("--reason", help="why (default: the gate's reason)")
    promote.add_argument("--if-passed", action="store_true", help="do nothing (exit 0) when the gate rejected")
    promote.set_defaults(handler=_promote)

    rollback = commands.add_parser("rollback", help="move `champion` back to the previous champion")
    _add_channel(rollback)
    rollback.add_argument("--to", help="a version number to roll back to (default: the previous champion)")
    rollback.add_argument("--reason", default="manual rollback")
    rollback.set_defaults(handler=_rollback)

    history = commands.add_parser("history", help="list the promotions and rollbacks of `champion`")
    _add_channel(history)
    history.add_argument("--last", type=int, default=0, help="only the last N records")
    history.add_argument("--json", action="store_true")
    history.set_defaults(handler=_history)

    export = commands.add_parser("export", help="write a model version as a serving bundle (default: the champion)")
    _add_channel(export)
    which = export.add_mutually_exclusive_group()
    which.add_argument("--alias", default="champion")
    which.add_argument("--version")
    export.add_argument("--out", type=Path, help="default: bundle/<channel>")
    export.set_defaults(handler=_export)

    summary = commands.add_parser("summary", help="print the held-out metrics, the gate verdict and the bundle")
    _add_channel(summary)
    summary.add_argument("--metrics", type=Path, help="default: reports/<channel>/metrics.json")
    summary.add_argument("--report", type=Path, help="default: reports/<channel>/gate.json")
    summary.add_argument("--bundle", type=Path, help="default: bundle/<channel>")
    summary.set_defaults(handler=_summary)


def _feed(args: argparse.Namespace) -> int:
    from spamfilter.data import corpus, feed

    channel = _channel(args)
    if channel != "sms":
        raise ConfigError(f"spamfilter feed samples SMS batches; for {channel}, see `make drill-email`")
    paths = ChannelPaths(channel)
    source = args.source or paths.raw_dir
    files = corpus.corpus_files(source, hint="no corpus to sample from; run `make data` first")
    pool = corpus.deduplicate(corpus.parse_corpus(p.read_bytes(), str(p)) for p in files).messages
    strength = feed.MODERATE_STRENGTH[args.drift] if args.strength is None else args.strength
    try:
        batch = feed.make_batch(pool, args.n, args.drift, strength, args.seed)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    path = feed.write_batch(batch, args.out_dir or paths.new_dir, args.drift)
    spam = sum(m.is_spam for m in batch)
    print(f"{path}: {len(batch)} messages ({spam} spam), drift {args.drift} at strength {strength}")
    return 0


def _monitor(args: argparse.Namespace) -> int:
    from spamfilter.monitoring import monitor, rendering

    channel = _channel(args)
    paths = ChannelPaths(channel)
    params = load_params(args.params, channel).monitor
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise ConfigError(f"--since {args.since!r}: not an ISO-8601 time (e.g. 2025-01-31T12:00)") from None
        since = since if since.tzinfo else since.replace(tzinfo=UTC)
    last = args.last if args.last is not None else (None if since else params.window)
    json_path, html_path = args.json or paths.monitor_json, args.html or paths.monitor_html
    request = monitor.MonitorRequest(
        profile=args.profile or paths.profile,
        params=params,
        use_log=args.log or not args.batch,
        log_url=args.log_url or os.environ.get("PREDICTION_LOG_URL") or monitor.DEFAULT_LOG_URL,
        last=last,
        since=since,
        batches=list(args.batch or []),
        model=args.model or paths.model,
        json_path=json_path,
        html_path=html_path,
        github_output=_github_output(),
        channel=channel,
    )
    if args.retrain_if_no_profile and not request.profile.is_file():
        report = monitor.no_reference(request)
    else:
        report = monitor.run(request)
    print(rendering.summary_table(report), end="")
    print(f"reports: {json_path}, {html_path}")
    return 0


def _add_monitor_commands(commands: Subcommands) -> None:
    from spamfilter.data.feed import DRIFT_MODES

    feed = commands.add_parser(
        "feed", help="sample a labelled SMS batch (optionally with injected drift) into data/new/sms/ for `dvc repro`"
    )
    _add_channel(feed)
    feed.add_argument("--n", type=int, default=100, help="messages in the batch (default 100)")
    feed.add_argument("--drift", choices=DRIFT_MODES, default="none")
    feed.add_argument("--strength", type=float, help="drift strength in [0, 1] (default: the mode's moderate strength)")
    feed.add_argument("--source", type=Path, help="corpus file or directory to sample (default: data/raw/<channel>)")
    feed.add_argument("--out-dir", type=Path, help="default: data/new/<channel>")
    feed.add_argument("--seed", type=int, default=None, help="random seed (default: a fresh one)")
    feed.set_defaults(handler=_feed)

    monitor = commands.add_parser(
        "monitor", help="check the prediction log and/or labelled batches for drift; decide retrain_needed"
    )
    _add_channel(monitor)
    monitor.add_argument("--profile", type=Path, help="default: models/<channel>/reference_profile.json")
    monitor.add_argument("--params", type=Path, default=PARAMS)
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
        "--batch", type=Path, action="append", help="a labelled batch file or directory (e.g. data/new/sms); repeatable"
    )
    monitor.add_argument(
        "--model",
        type=Path,
        help="scores batches: a model.joblib, an MLflow model directory or a bundle (default: models/<channel>/model.joblib)",
    )
    monitor.add_argument(
        "--retrain-if-no-profile",
        action="store_true",
        help="no reference profile yet (a first run): decide retrain_needed=true instead of failing",
    )
    monitor.add_argument("--json", type=Path, help="default: reports/<channel>/monitor.json")
    monitor.add_argument("--html", type=Path, help="default: reports/<channel>/monitor.html")
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
    from spamfilter.registry import release

    channels = [args.channel] if args.channel else load_params_file(args.params).channels.configured()
    sections = [
        release.ChannelReportInputs(
            channel=channel,
            champion=(args.champion_dir / channel) if args.champion_dir else None,
            model=ChannelPaths(channel).model,
            test=ChannelPaths(channel).test,
            plots_dir=ChannelPaths(channel).plots_dir,
            gate=load_params(args.params, channel).gate,
        )
        for channel in channels
    ]
    changed = release.write_pr_report(args.out, args.base, args.head, sections)
    print(f"{args.out}: metrics changed against {args.base}: {', '.join(changed) or 'none'}")
    return 0


def _add_report_commands(commands: Subcommands) -> None:
    report = commands.add_parser(
        "report", help="write the pull-request report (metrics and params diff, plots, gate verdicts) as Markdown"
    )
    report.add_argument("--channel", choices=CHANNELS, help="only this channel (default: every channel)")
    report.add_argument("--base", default="origin/main", help="git revision to compare with (default origin/main)")
    report.add_argument("--head", default="", help="a label for this branch in the title (e.g. the commit)")
    report.add_argument("--out", type=Path, default=Path("report.md"))
    report.add_argument(
        "--champion-dir",
        type=Path,
        help="the base's champions as serving bundles, one per channel (`<dir>/<channel>/`): judged by the gate",
    )
    report.add_argument("--params", type=Path, default=PARAMS)
    report.set_defaults(handler=_report)


def _score(args: argparse.Namespace) -> int:
    from spamfilter.batch import inputs, job

    channel = _channel(args)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # our bar, not the download's
    mail_max_bytes = inputs.DEFAULT_MAIL_MAX_BYTES
    if channel == "email" and args.params.is_file():
        mail_max_bytes = load_params_file(args.params).email(str(args.params)).ingest.limits.max_bytes
    request = job.ScoreRequest(
        channel=channel,
        input=args.input,
        out=args.out,
        engine=args.engine,
        model_ref=args.version or args.alias,
        master=args.master,
        on_bad_row=args.on_bad_row,
        chunk_rows=args.chunk_rows,
        mail_max_bytes=mail_max_bytes,
        progress=not args.quiet,
    )
    print(job.score_corpus(request, Settings()).render())
    return 0


def _add_score_command(commands: Subcommands) -> None:
    score = commands.add_parser(
        "score",
        help="batch-score a corpus (SMS TSV/CSV, e-mail trees/mbox/Maildir/tar, Parquet, JSONL) into Parquet "
        "with a registered model version (default: the channel's champion)",
    )
    _add_channel(score)
    score.add_argument("--input", type=Path, required=True, help="a corpus file or folder")
    score.add_argument("--out", type=Path, required=True, help="the Parquet file to write (replaced only on success)")
    score.add_argument(
        "--engine",
        choices=("local", "spark"),
        default="local",
        help="local: in this process, in chunks (default); spark: mlflow's spark_udf (pip install 'spamfilter[spark]')",
    )
    which = score.add_mutually_exclusive_group()
    which.add_argument(
        "--alias", default="champion", help="the registered model's alias to score with (default champion)"
    )
    which.add_argument("--version", help="a version number of the channel's registered model")
    score.add_argument(
        "--master", help="Spark master for --engine spark (default local[*]; SPARK_REMOTE selects Spark Connect)"
    )
    score.add_argument(
        "--on-bad-row",
        choices=("fail", "skip"),
        default="fail",
        help="fail: stop at the first row that cannot be scored, naming it (default); skip: count and go on",
    )
    score.add_argument("--chunk-rows", type=int, help="messages per chunk (default: 10,000 local, 100,000 spark)")
    score.add_argument("--params", type=Path, default=PARAMS, help="e-mail size limit from here when present")
    score.add_argument("--quiet", action="store_true", help="no progress bar")
    score.set_defaults(handler=_score)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spamfilter", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    channels = commands.add_parser("channels", help="print the channels params.yaml configures")
    channels.add_argument("--params", type=Path, default=PARAMS)
    channels.set_defaults(handler=_channels)
    data = commands.add_parser(
        "data",
        help="obtain a channel's raw corpus: its named file, else the shared copy, else `dvc pull`, else the "
        "checksum-verified download",
    )
    _add_channel(data)
    data.add_argument("--raw-dir", type=Path, help="default: data/raw/<channel>")
    data.add_argument("--dvc-file", type=Path, help="default: data/raw/<channel>.dvc")
    data.add_argument(
        "--force", action="store_true", help="obtain again even if the raw directory already has a corpus"
    )
    data.set_defaults(handler=_data)
    _add_release_commands(commands)
    _add_monitor_commands(commands)
    _add_storage_commands(commands)
    _add_report_commands(commands)
    _add_score_command(commands)
    return parser


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


def main(argv: list[str] | None = None) -> int:
    return entry.run(_main, argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
