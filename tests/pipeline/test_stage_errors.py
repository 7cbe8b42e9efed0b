"""Stage entry points fail cleanly: one `error:` line naming what and where, exit 1, no outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Project

pytestmark = pytest.mark.slow


def test_ingest_without_raw_data_says_how_to_get_it(project: Project) -> None:
    result = project.python("stages/ingest.py", "--raw-dir", "data/nowhere", check=False)
    assert result.returncode == 1
    assert "error: data/nowhere: not found; run `make data` (spamfilter data --channel sms)" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (project.root / "data/processed/sms/train.jsonl").exists()


def test_ingest_with_a_latin1_tsv_names_the_line(project: Project) -> None:
    raw = project.root / "data/raw/sms"
    raw.mkdir(parents=True)
    (raw / "corpus.tsv").write_bytes(b"ham\thello\nspam\tWin \xa3100 now\n")
    result = project.python("stages/ingest.py", check=False)
    assert result.returncode == 1
    # Refused before the split: the one good row left could not be split, and saying so would hide the cause.
    assert "data/raw/sms/corpus.tsv:2: not valid UTF-8 (byte 0xa3 at column 10)" in result.stderr
    assert "channels.sms.ingest.on_bad_row: drop" in result.stderr
    assert not (project.root / "data/processed/sms").exists() or not any(
        (project.root / "data/processed/sms").glob("*.jsonl")
    )


def test_bad_params_name_the_key(project: Project, fixture_corpus: Path) -> None:
    params = project.root / "params.yaml"
    params.write_text(params.read_text().replace("model: linear_svm", "model: forest"))
    result = project.python("stages/featurize.py", check=False)
    assert result.returncode == 1
    assert "params.yaml: channels.sms.train.model: Input should be" in result.stderr


def test_featurize_without_ingest_output_names_the_file(project: Project) -> None:
    result = project.python("stages/featurize.py", check=False)
    assert result.returncode == 1
    assert "error: data/processed/sms/train.jsonl: file not found" in result.stderr
