"""DVC stage `ingest`: raw corpus + labelled batches → validated, de-duplicated train/test split."""

from __future__ import annotations

import argparse
import hashlib
import logging
import sys
from pathlib import Path
from typing import Any

import yaml

from spamfilter import entry, files
from spamfilter.config import load_params
from spamfilter.data import corpus
from spamfilter.errors import DataError

log = logging.getLogger("stages.ingest")

MAX_SHOWN_BAD_ROWS = 50


def raw_dvc_md5(dvc_file: Path) -> str:
    """The md5 DVC recorded for the raw data (the data fingerprint), or '' if not tracked."""
    if not dvc_file.is_file():
        return ""
    content = yaml.safe_load(dvc_file.read_text(encoding="utf-8")) or {}
    outs = content.get("outs") or [{}]
    return str(outs[0].get("md5", ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--raw-dir", type=Path, default=Path("data/raw"))
    parser.add_argument("--new-dir", type=Path, default=Path("data/new"))
    parser.add_argument("--dvc-file", type=Path, default=Path("data.dvc"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out-dir", type=Path, default=Path("data/processed"))
    parser.add_argument("--stats", type=Path, default=Path("reports/data_stats.json"))
    parser.add_argument("--bad-rows", type=Path, default=Path("reports/bad_rows.tsv"))
    args = parser.parse_args(argv)
    params = load_params(args.params).ingest

    raw_paths = corpus.corpus_files(args.raw_dir, required=True, hint="run `make data` to obtain the corpus")
    new_paths = corpus.corpus_files(args.new_dir, required=False)
    parsed: list[corpus.ParsedFile] = []
    sources: list[dict[str, Any]] = []
    for path in [*raw_paths, *new_paths]:
        content = path.read_bytes()
        result = corpus.parse_corpus(content, str(path))
        parsed.append(result)
        sources.append(
            {
                "path": str(path),
                "format": result.format,
                "rows": len(result.messages),
                "bad_rows": len(result.bad_rows),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
        log.info("%s: %d rows (%s), %d bad", path, len(result.messages), result.format, len(result.bad_rows))
    dataset = corpus.deduplicate(parsed)

    if dataset.bad_rows:
        for bad in dataset.bad_rows[:MAX_SHOWN_BAD_ROWS]:
            print(f"bad row: {bad}", file=sys.stderr)
        if len(dataset.bad_rows) > MAX_SHOWN_BAD_ROWS:
            print(f"... and {len(dataset.bad_rows) - MAX_SHOWN_BAD_ROWS} more bad rows", file=sys.stderr)
        if params.on_bad_row == "fail":
            raise DataError(
                f"{len(dataset.bad_rows)} bad rows (first: {dataset.bad_rows[0]}); fix them, or set "
                "ingest.on_bad_row: drop to drop them with a report"
            )
        log.warning("dropped %d bad rows; see %s", len(dataset.bad_rows), args.bad_rows)

    train, test = corpus.split(dataset.messages, params.test_size, params.seed)
    new_rows = sum(s["rows"] for s in sources[len(raw_paths) :])
    stats = corpus.dataset_stats(dataset, train, test, new_rows)
    train_jsonl, test_jsonl = corpus.to_jsonl(train), corpus.to_jsonl(test)
    manifest = {
        "raw_dvc_md5": raw_dvc_md5(args.dvc_file),
        "dataset_sha256": hashlib.sha256((train_jsonl + test_jsonl).encode()).hexdigest(),
        "sources": sources,
        **stats,
    }

    files.write_text(args.out_dir / "train.jsonl", train_jsonl)
    files.write_text(args.out_dir / "test.jsonl", test_jsonl)
    files.write_json(args.out_dir / "manifest.json", manifest)
    files.write_text(
        args.bad_rows,
        "source\tline\treason\n" + "".join(f"{b.source}\t{b.line}\t{b.reason}\n" for b in dataset.bad_rows),
    )
    files.write_json(args.stats, stats)
    log.info(
        "%d rows (%d duplicates dropped, %d bad rows) → train %d, test %d, spam rate %.3f",
        stats["rows"],
        stats["duplicates_dropped"],
        stats["bad_rows"],
        len(train),
        len(test),
        stats["spam_rate"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(entry.run(main))
