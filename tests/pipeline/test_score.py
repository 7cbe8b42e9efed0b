"""`spamfilter score` end to end: real models trained here, registered in a tmp SQLite MLflow store, scored
through the command on inputs of every format generated here. The local engine's output is checked row by
row against the in-memory model; the Spark engine (local[2], one run per channel) against the local one; bad
input fails in one line, exit 1, with no output left behind."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import FixedThresholdClassifier
from sklearn.pipeline import Pipeline

from spamfilter import cli
from spamfilter.data import corpus
from spamfilter.labels import SPAM
from spamfilter.modeling.pipeline import model_threshold, predict_labels, spam_probability
from spamfilter.registry import tracking
from tests.conftest import REPO_ROOT, make_messages, write_tsv
from tests.generated_mail import make_corpus
from tests.model.registry_helpers import store_settings, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SMS_MODEL = "score-sms"
EMAIL_MODEL = "score-email"
COLUMNS = ["message_sha256", "source", "label", "spam_probability", "model_name", "model_version"]


class RawMailText(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Raw e-mails (bytes, or a one-column DataFrame of them, as MLflow's pyfunc passes) → their text: the
    stand-in e-mail featurizer's first step while spamfilter.modeling.email has not landed."""

    def fit(self, X: Any, y: Any = None) -> RawMailText:  # noqa: N803
        return self

    def transform(self, X: Any) -> list[str]:  # noqa: N803
        values = X.iloc[:, 0] if isinstance(X, pd.DataFrame) else X
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


def train_email_model(labelled: Sequence[tuple[str, bytes]]) -> Any:
    """The project's e-mail model (spamfilter.modeling.email) when it is there, else a stand-in of the same
    contract (raw bytes, or a DataFrame of them, in; a thresholded classifier out)."""
    raws = [raw for _, raw in labelled]
    labels = [label for label, _ in labelled]
    try:
        from spamfilter.modeling.email import EmailFeaturizeParams, EmailTrainParams, build_email_model
    except ImportError:
        # Pickled by value: the Spark workers unpickle the class without importing this test module.
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        classifier = FixedThresholdClassifier(
            LogisticRegression(max_iter=1000), threshold=0.5, pos_label=SPAM, response_method="predict_proba"
        )
        features = Pipeline([("text", RawMailText()), ("tfidf", TfidfVectorizer())])
        return Pipeline([("features", features), ("classifier", classifier)]).fit(raws, labels)
    return build_email_model(EmailFeaturizeParams(), EmailTrainParams(threshold=0.5)).fit(raws, labels)


@dataclass
class Registry:
    root: Path
    env: dict[str, str]
    sms: dict[str, Any] = field(default_factory=dict)  # version → fitted model
    email: dict[str, Any] = field(default_factory=dict)


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """Two SMS versions (v1 the champion) and one e-mail version (the champion), in a tmp SQLite store."""
    root = tmp_path_factory.mktemp("score-registry")
    messages = [corpus.Message(label, text) for label, text in make_messages(n_ham=200, n_spam=60, seed=11)]
    found = Registry(root, {})
    sms = store_settings(root, SMS_MODEL)
    for model in (train(messages), train(messages[: len(messages) // 2])):
        version = tracking.log_training_run(sms, model, {}, {"channel": "sms"}, ["WIN a prize now", "see you at 5"])
        found.sms[version.version] = model
    tracking.set_alias(sms, "champion", "1")
    email = store_settings(root, EMAIL_MODEL)
    labelled = make_corpus(n_ham=40, n_spam=20, seed=3)
    model = train_email_model(labelled)
    example = [next(raw for label, raw in labelled if label == lab) for lab in ("spam", "ham")]
    version = tracking.log_training_run(email, model, {}, {"channel": "email"}, example, input_column="message")
    found.email[version.version] = model
    tracking.set_alias(email, "champion", version.version)
    found.env = {
        "MLFLOW_TRACKING_URI": sms.mlflow_tracking_uri,
        "SPAM_MLFLOW_ARTIFACT_ROOT": sms.mlflow_artifact_root,
        "SPAM_EXPERIMENT": sms.experiment_name,
        "SPAM_REGISTERED_MODEL": SMS_MODEL,
        "SPAM_EMAIL_REGISTERED_MODEL": EMAIL_MODEL,
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    return found


@pytest.fixture
def env(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> Registry:
    for key, value in registry.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(registry.root)  # no params.yaml or .env of the checkout
    return registry


def score(*args: str) -> int:
    return cli.main(["score", "--quiet", *args])


def expected(model: Any, inputs: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """What the model itself says of each input: P(spam) and the label (its predict)."""
    return spam_probability(model, list(inputs)), [str(label) for label in model.predict(list(inputs))]


def check_output(
    out: Path, model: Any, inputs: Sequence[Any], sources: Sequence[str], version: str, name: str
) -> pd.DataFrame:
    frame = pd.read_parquet(out)
    probabilities, labels = expected(model, inputs)
    assert len(frame) == len(inputs)
    assert list(frame["source"]) == list(sources)
    np.testing.assert_allclose(frame["spam_probability"].to_numpy(), probabilities, rtol=0, atol=1e-12)
    assert list(frame["label"]) == labels
    assert list(frame["label"]) == predict_labels(probabilities, model_threshold(model))
    raws = [value.encode("utf-8") if isinstance(value, str) else value for value in inputs]
    assert list(frame["message_sha256"]) == [hashlib.sha256(raw).hexdigest() for raw in raws]
    assert set(frame["model_name"]) == {name} and set(frame["model_version"]) == {version}
    return frame


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# --- Inputs -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sms_rows() -> list[tuple[str, str]]:
    return make_messages(n_ham=60, n_spam=25, seed=23)


@pytest.fixture(scope="module")
def mails() -> list[bytes]:
    return [raw for _, raw in make_corpus(n_ham=8, n_spam=6, seed=17)]


def write_mail_tree(root: Path, mails: Sequence[bytes]) -> tuple[list[bytes], list[str]]:
    """An unlabelled tree holding every e-mail format: .eml files, a Maildir (an empty tmp/: a delivery in
    progress there would be a bad row), a tar.gz archive and an mbox; the messages and sources the reader
    yields, in its (sorted) order. An mbox message keeps its `From ` line."""
    (root / "inbox").mkdir(parents=True)
    for sub in ("cur", "new", "tmp"):
        (root / "maildir" / sub).mkdir(parents=True)
    placed: list[tuple[str, bytes]] = []
    for number, raw in enumerate(mails[:3]):
        path = root / "inbox" / f"{number}.eml"
        path.write_bytes(raw)
        placed.append((str(path), raw))
    for sub, name, raw in (("cur", "a", mails[3]), ("new", "b", mails[4])):
        (root / "maildir" / sub / name).write_bytes(raw)
        placed.append((str(root / "maildir" / sub / name), raw))
    with tarfile.open(root / "old.tar.gz", "w:gz") as archive:
        for number, raw in enumerate(mails[5:9]):
            info = tarfile.TarInfo(f"saved/{number}.eml")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
            placed.append((f"{root / 'old.tar.gz'}:saved/{number}.eml", raw))
    mbox = root / "z.mbox"
    content = b""
    for raw in mails[9:]:
        assert raw.endswith(b"\n") and b"\nFrom " not in raw
        message = b"From sender@example.org  Sat Oct  5 17:23:18 2002\n" + raw
        line = content.count(b"\n") + 1
        placed.append((f"{mbox}:{line}", message))
        content += message + b"\n"
    mbox.write_bytes(content)
    return [raw for _, raw in placed], [source for source, _ in placed]


# --- The local engine: SMS --------------------------------------------------------------------------------------


def test_sms_tsv_csv_and_a_folder_of_them(env: Registry, tmp_path: Path, sms_rows: list[tuple[str, str]]) -> None:
    folder = tmp_path / "corpus"
    folder.mkdir()
    tsv = write_tsv(folder / "a.tsv", sms_rows[:40])
    csv_path = folder / "b.csv"
    csv_lines = ["v1,v2,,,"] + [f'{label},"{text.replace(chr(34), chr(34) * 2)}",,,' for label, text in sms_rows[40:]]
    csv_path.write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    out = tmp_path / "out" / "scored.parquet"
    assert score("--channel", "sms", "--input", str(folder), "--out", str(out), "--chunk-rows", "16") == 0
    texts = [text for _, text in sms_rows]
    sources = [f"{tsv}:{line}" for line in range(2, 42)] + [
        f"{csv_path}:{line}" for line in range(2, 2 + len(sms_rows) - 40)
    ]
    frame = check_output(out, env.sms["1"], texts, sources, "1", SMS_MODEL)
    assert list(frame.columns) == COLUMNS  # no id column: the input has none
    assert leftovers(out.parent) == []


def test_sms_parquet_keeps_the_inputs_ids_and_a_version_is_chosen(
    env: Registry, tmp_path: Path, sms_rows: list[tuple[str, str]]
) -> None:
    texts = [text for _, text in sms_rows]
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": [1000 + i for i in range(len(texts))], "text": texts}), path)
    out = tmp_path / "scored.parquet"
    assert score("--channel", "sms", "--input", str(path), "--out", str(out), "--version", "2") == 0
    frame = check_output(
        out, env.sms["2"], texts, [f"{path}:{row}" for row in range(1, len(texts) + 1)], "2", SMS_MODEL
    )
    assert list(frame.columns) == ["id", *COLUMNS]
    assert list(frame["id"]) == [str(1000 + i) for i in range(len(texts))]
    assert pq.read_schema(out).field("spam_probability").type == pa.float64()
    champion = pd.read_parquet(out).spam_probability.to_numpy()
    assert not np.array_equal(champion, spam_probability(env.sms["1"], texts))  # v2 is not the champion


def test_sms_jsonl_with_a_bad_row_skipped(
    env: Registry, tmp_path: Path, sms_rows: list[tuple[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": f"m{i}", "text": text}) for i, (_, text) in enumerate(sms_rows[:10])]
    lines.insert(4, json.dumps({"id": "broken", "body": "no text field"}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "scored.parquet"
    assert score("--channel", "sms", "--input", str(path), "--out", str(out), "--on-bad-row", "skip") == 0
    sources = [f"{path}:{n}" for n in (1, 2, 3, 4, 6, 7, 8, 9, 10, 11)]
    frame = check_output(out, env.sms["1"], [text for _, text in sms_rows[:10]], sources, "1", SMS_MODEL)
    assert list(frame["id"]) == [f"m{i}" for i in range(10)]
    assert f"skipped 1 bad rows; the first: {path}:5: no field 'text'" in capsys.readouterr().out


# --- The local engine: e-mail -----------------------------------------------------------------------------------


def test_email_tree_of_every_format(env: Registry, tmp_path: Path, mails: list[bytes]) -> None:
    raws, sources = write_mail_tree(tmp_path / "mail", mails)
    out = tmp_path / "scored.parquet"
    assert score("--channel", "email", "--input", str(tmp_path / "mail"), "--out", str(out), "--chunk-rows", "4") == 0
    check_output(out, env.email["1"], raws, sources, "1", EMAIL_MODEL)


def test_email_parquet_and_jsonl(env: Registry, tmp_path: Path, mails: list[bytes]) -> None:
    parquet = tmp_path / "mail.parquet"
    pq.write_table(
        pa.table({"id": [f"<{i}@x>" for i in range(len(mails))], "message": pa.array(mails, pa.binary())}), parquet
    )
    out = tmp_path / "p.parquet"
    assert score("--channel", "email", "--input", str(parquet), "--out", str(out)) == 0
    frame = check_output(
        out, env.email["1"], mails, [f"{parquet}:{i}" for i in range(1, len(mails) + 1)], "1", EMAIL_MODEL
    )
    assert list(frame["id"]) == [f"<{i}@x>" for i in range(len(mails))]

    jsonl = tmp_path / "mail.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"raw_b64": base64.b64encode(raw).decode()}) + "\n" for raw in mails), encoding="utf-8"
    )
    out = tmp_path / "j.parquet"
    assert score("--channel", "email", "--input", str(jsonl), "--out", str(out)) == 0
    check_output(out, env.email["1"], mails, [f"{jsonl}:{i}" for i in range(1, len(mails) + 1)], "1", EMAIL_MODEL)


def many_parts(count: int) -> bytes:
    message = EmailMessage()
    message["From"] = "bulk@example.org"
    message["Subject"] = "attachments"
    message.set_content("see attached")
    for number in range(count):
        message.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"{number}.bin")
    return message.as_bytes()


def test_an_email_the_model_refuses_is_a_bad_row_named_by_its_source(
    env: Registry, tmp_path: Path, mails: list[bytes], capsys: pytest.CaptureFixture[str]
) -> None:
    """The e-mail model's parser refuses a message over its MIME-part limit for the whole batch: the run
    names that message, or skips it and scores the rest of its chunk."""
    path = tmp_path / "mail.jsonl"
    records = [*mails[:3], many_parts(150), *mails[3:6]]
    path.write_text(
        "".join(json.dumps({"raw_b64": base64.b64encode(r).decode()}) + "\n" for r in records), encoding="utf-8"
    )
    out = tmp_path / "scored.parquet"
    assert score("--channel", "email", "--input", str(path), "--out", str(out)) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        f"error: {path}:4: message has more than 100 MIME parts, over the limit of 100 "
        "(channels.email.ingest.limits.max_parts) (or skip bad rows: --on-bad-row skip)"
    ]
    assert not out.exists()
    assert score("--channel", "email", "--input", str(path), "--out", str(out), "--on-bad-row", "skip") == 0
    sources = [f"{path}:{line}" for line in (1, 2, 3, 5, 6, 7)]
    check_output(out, env.email["1"], [*mails[:3], *mails[3:6]], sources, "1", EMAIL_MODEL)
    assert f"skipped 1 bad rows; the first: {path}:4: message has more than 100 MIME parts" in capsys.readouterr().out


# --- Bad input: one line naming what and where, exit 1, no output -----------------------------------------------


def run_failing(capsys: pytest.CaptureFixture[str], out: Path, *args: str) -> str:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(b"an older output")
    assert score(*args, "--out", str(out)) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: "), error
    assert out.read_bytes() == b"an older output"
    assert leftovers(out.parent) == []
    return error[0]


def test_bad_inputs(env: Registry, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out" / "scored.parquet"
    missing = tmp_path / "nowhere.tsv"
    assert f"{missing}: not found" in run_failing(capsys, out, "--channel", "sms", "--input", str(missing))

    corrupt = tmp_path / "corrupt.parquet"
    corrupt.write_bytes(b"PAR1 truncated")
    assert f"{corrupt}: not a readable Parquet file" in run_failing(
        capsys, out, "--channel", "sms", "--input", str(corrupt)
    )

    no_column = tmp_path / "nocol.parquet"
    pq.write_table(pa.table({"id": [1], "body": ["hello"]}), no_column)
    line = run_failing(capsys, out, "--channel", "sms", "--input", str(no_column))
    assert f"{no_column}: no column 'text'" in line and "columns: id, body" in line

    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"text": "fine"}\n{"body": "no text"}\n', encoding="utf-8")
    assert f"{no_field}:2: no field 'text'" in run_failing(capsys, out, "--channel", "sms", "--input", str(no_field))

    good = write_tsv(tmp_path / "good.tsv", make_messages(n_ham=5, n_spam=2, seed=1))
    line = run_failing(capsys, out, "--channel", "sms", "--input", str(good), "--alias", "nonesuch")
    assert f"no version of {SMS_MODEL} has the alias 'nonesuch'" in line

    bad_row = tmp_path / "bad.tsv"
    bad_row.write_text("ham\tfine\nspam\tfine too\nweird\tlabel\n", encoding="utf-8")
    assert f"{bad_row}:3: unknown label 'weird'" in run_failing(
        capsys, out, "--channel", "sms", "--input", str(bad_row)
    )

    # A bad row in a later chunk: earlier chunks were written to the temporary file, which is removed.
    late = write_tsv(tmp_path / "late.tsv", [*make_messages(n_ham=30, n_spam=10, seed=2), ("nope", "x")], header=False)
    line = run_failing(capsys, out, "--channel", "sms", "--input", str(late), "--chunk-rows", "8")
    assert f"{late}:41: unknown label 'nope'" in line

    line = run_failing(capsys, out, "--channel", "email", "--input", str(good))
    assert "no usable e-mail messages" in line


def run_cli_process(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spamfilter.cli", "score", "--quiet", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_spark_without_java_or_pyspark_fails_before_anything_runs(registry: Registry, tmp_path: Path) -> None:
    good = write_tsv(tmp_path / "good.tsv", make_messages(n_ham=5, n_spam=2, seed=1))
    out = tmp_path / "scored.parquet"
    base = {key: value for key, value in os.environ.items() if key not in {"JAVA_HOME", "SPARK_REMOTE", "PYTHONPATH"}}
    base.update(registry.env)
    args = ["--channel", "sms", "--input", str(good), "--out", str(out), "--engine", "spark"]

    no_java = run_cli_process(args, {**base, "PATH": str(tmp_path / "empty-bin")})
    assert no_java.returncode == 1
    assert no_java.stderr.strip().splitlines() == [
        "error: --engine spark needs Java 17 or newer: no `java` on PATH and JAVA_HOME is not set "
        "(Debian: apt-get install openjdk-17-jre-headless, or `make score ENGINE=spark` installs it)"
    ]
    old_java = tmp_path / "jdk8" / "bin" / "java"
    old_java.parent.mkdir(parents=True)
    old_java.write_text("#!/bin/sh\necho 'openjdk version \"1.8.0_392\"' >&2\n")
    old_java.chmod(0o755)
    too_old = run_cli_process(args, {**base, "JAVA_HOME": str(tmp_path / "jdk8")})
    assert too_old.returncode == 1 and f"{old_java} is Java 8" in too_old.stderr

    # pyspark absent: a package of that name that fails to import, first on the path, stands in for none.
    shadow = tmp_path / "shadow" / "pyspark"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named pyspark')\n")
    no_pyspark = run_cli_process(args, {**base, "PYTHONPATH": str(shadow.parent)})
    assert no_pyspark.returncode == 1
    assert no_pyspark.stderr.strip().splitlines() == [
        "error: --engine spark needs pyspark, which is not installed: pip install 'spamfilter[spark]' "
        "(or use --engine local)"
    ]
    assert not out.exists() and leftovers(tmp_path) == []


# --- Local and Spark agree --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EnginePair:
    local: pd.DataFrame
    spark: pd.DataFrame
    summary: str


@pytest.fixture(scope="module")
def engine_pairs(
    registry: Registry, tmp_path_factory: pytest.TempPathFactory, sms_rows: list[tuple[str, str]], mails: list[bytes]
) -> Iterator[dict[str, EnginePair]]:
    """Each channel's input scored by both engines (Spark on local[2]): the only Spark runs of the suite."""
    root = tmp_path_factory.mktemp("engines")
    sms_input = root / "sms.parquet"
    texts = [text for _, text in sms_rows] * 3  # several Spark tasks' worth, duplicates included
    pq.write_table(pa.table({"id": [f"s{i}" for i in range(len(texts))], "text": texts}), sms_input)
    mail_input = root / "mail"
    write_mail_tree(mail_input, mails)
    pairs: dict[str, EnginePair] = {}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in registry.env.items():
            patch.setenv(key, value)
        patch.setenv("PYSPARK_PYTHON", sys.executable)
        patch.delenv("SPARK_REMOTE", raising=False)
        patch.chdir(root)
        for channel, source in (("sms", sms_input), ("email", mail_input)):
            outputs = {}
            for engine in ("local", "spark"):
                out = root / f"{channel}-{engine}.parquet"
                extra = ["--master", "local[2]", "--chunk-rows", "100"] if engine == "spark" else []
                args = ["score", "--quiet", "--channel", channel, "--input", str(source), "--out", str(out)]
                buffer = io.StringIO()
                with contextlib.redirect_stdout(buffer):
                    code = cli.main([*args, "--engine", engine, *extra])
                assert code == 0, buffer.getvalue()
                outputs[engine] = (pd.read_parquet(out), buffer.getvalue())
            pairs[channel] = EnginePair(outputs["local"][0], outputs["spark"][0], outputs["spark"][1])
    yield pairs


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_local_and_spark_give_the_same_output(engine_pairs: dict[str, EnginePair], channel: str) -> None:
    pair = engine_pairs[channel]
    assert "spark engine, spark_udf scorer" in pair.summary
    assert len(pair.spark) == len(pair.local) > 10
    assert list(pair.spark.columns) == list(pair.local.columns)
    for column in pair.local.columns:
        if column != "spam_probability":
            assert list(pair.spark[column]) == list(pair.local[column]), column
    difference = np.abs(pair.spark["spam_probability"].to_numpy() - pair.local["spam_probability"].to_numpy())
    assert difference.max() <= 1e-9
    assert pair.local["label"].nunique() == 2  # both labels occur, so agreeing on them means something
