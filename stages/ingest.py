"""DVC stage `ingest@<channel>`: the channel's raw corpus + labelled batches → a validated,
de-duplicated, stratified train/test split, its stats and manifest, and the bad rows."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spamfilter import entry, files
from spamfilter.config import CHANNELS, Channel, ChannelPaths, load_params_file
from spamfilter.data import corpus, ingest

log = logging.getLogger("stages.ingest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channel", choices=CHANNELS, default="sms")
    parser.add_argument("--raw-dir", type=Path, help="default: data/raw/<channel>")
    parser.add_argument("--new-dir", type=Path, help="default: data/new/<channel>")
    parser.add_argument("--dvc-file", type=Path, help="default: data/raw/<channel>.dvc")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out-dir", type=Path, help="default: data/processed/<channel>")
    parser.add_argument("--stats", type=Path, help="default: reports/<channel>/data_stats.json")
    parser.add_argument("--bad-rows", type=Path, help="default: reports/<channel>/bad_rows.tsv")
    args = parser.parse_args(argv)
    channel: Channel = args.channel
    paths = ChannelPaths(channel)
    raw_dir = args.raw_dir or paths.raw_dir
    new_dir = args.new_dir or paths.new_dir
    out_dir = args.out_dir or paths.processed_dir
    stats_path = args.stats or paths.reports_dir / "data_stats.json"
    bad_rows_path = args.bad_rows or paths.reports_dir / "bad_rows.tsv"
    raw_md5 = ingest.raw_dvc_md5(args.dvc_file or paths.dvc_file)
    params_file = load_params_file(args.params)

    hint = f"run `make data` (spamfilter data --channel {channel}) to obtain the corpus"
    if channel == "email":
        email = params_file.email(str(args.params)).ingest
        on_bad_row = email.on_bad_row
        result = ingest.ingest_email(
            ingest.mail_sources(raw_dir, required=True, hint=hint),
            ingest.mail_sources(new_dir, required=False),
            email,
            raw_md5,
        )
    else:
        sms = params_file.sms(str(args.params)).ingest
        on_bad_row = sms.on_bad_row
        result = ingest.ingest_sms(
            corpus.corpus_files(raw_dir, required=True, hint=hint),
            corpus.corpus_files(new_dir, required=False),
            sms,
            raw_md5,
        )
    for note in result.notes:
        log.info("%s", note)
    for bad in result.bad_rows[: ingest.MAX_SHOWN_BAD_ROWS]:
        print(f"bad row: {bad}", file=sys.stderr)
    if len(result.bad_rows) > ingest.MAX_SHOWN_BAD_ROWS:
        print(f"... and {len(result.bad_rows) - ingest.MAX_SHOWN_BAD_ROWS} more bad rows", file=sys.stderr)
    ingest.refuse_bad_rows(result.bad_rows, on_bad_row)
    if result.bad_rows:
        log.warning("dropped %d bad rows; see %s", len(result.bad_rows), bad_rows_path)

    files.write_text(out_dir / "train.jsonl", result.train_jsonl)
    files.write_text(out_dir / "test.jsonl", result.test_jsonl)
    files.write_json(out_dir / "manifest.json", result.manifest)
    files.write_text(
        bad_rows_path,
        "source\tline\treason\n" + "".join(f"{b.source}\t{b.line}\t{b.reason}\n" for b in result.bad_rows),
    )
    files.write_json(stats_path, result.stats)
    stats = result.stats
    log.info(
        "%s: %d rows (%d duplicates dropped, %d bad rows) → train %d, test %d, spam rate %.3f",
        channel,
        stats["rows"],
        stats["duplicates_dropped"],
        stats["bad_rows"],
        stats["train_rows"],
        stats["test_rows"],
        stats["spam_rate"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))
