"""Both channels end to end in an isolated copy of the repo, on generated corpora: `spamfilter data` for
each channel → one `dvc repro` of the `foreach` stages → gate → promote → export per channel. Then the
channels' independence (a rejected e-mail challenger leaves both champions where they were), the e-mail
pyfunc model on raw messages, and the e-mail ingest's bad input in the real stage: a message that is not
an e-mail and an archive member escaping its folder each named, the earlier outputs intact, and
`on_bad_row: drop` listing them in the channel's report."""

from __future__ import annotations

import contextlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from spamfilter import cli
from spamfilter.config import Settings
from spamfilter.files import md5_file
from spamfilter.registry import bundle, tracking
from tests.conftest import Project, make_messages, make_project, write_tsv
from tests.generated_mail import make_corpus, make_email, write_corpus

pytestmark = pytest.mark.slow


@dataclass
class Built:
    project: Project
    settings: Settings


def run_cli(project: Project, *argv: str) -> str:
    """A spamfilter command in-process (a process per command would be seconds of imports each), in the
    copy's directory and environment."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(project.root)
        for key, value in project.env.items():
            patch.setenv(key, value)
        with contextlib.redirect_stdout(out):
            code = cli.main(list(argv))
    assert code == 0, f"spamfilter {' '.join(argv)} exited {code}: {out.getvalue()}"
    return out.getvalue()


def edit_params(project: Project, channel: str, section: str, values: dict[str, object]) -> None:
    path = project.root / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params["channels"][channel][section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("channels")
    sms_corpus = write_tsv(root / "sms.tsv", make_messages(n_ham=240, n_spam=60))
    mail_corpus = write_corpus(root / "mail", make_corpus(240, 80, seed=11))
    project = make_project(
        root / "repo", {"SPAM_DATA": str(sms_corpus), "SPAM_EMAIL_DATA": str(mail_corpus)}, channels=("sms", "email")
    )
    for channel in ("sms", "email"):
        edit_params(project, channel, "gate", {"min_test_rows": 50})  # the generated corpora's splits are small
    project.run("git", "commit", "-q", "-m", "gate params for the generated corpora", "--", "params.yaml")
    for channel in ("sms", "email"):
        project.spamfilter("data", "--channel", channel)
    project.dvc("repro")
    for channel in ("sms", "email"):
        project.spamfilter("gate", "--channel", channel)
        run_cli(project, "promote", "--channel", channel, "--if-passed")
        run_cli(project, "export", "--channel", channel, "--out", f"bundle/{channel}")
    settings = Settings(
        MLFLOW_TRACKING_URI=project.env["MLFLOW_TRACKING_URI"],
        SPAM_MLFLOW_ARTIFACT_ROOT=project.env["SPAM_MLFLOW_ARTIFACT_ROOT"],
    )
    return Built(project, settings)


def test_one_repro_builds_every_stage_of_both_channels(built: Built) -> None:
    lock = yaml.safe_load((built.project.root / "dvc.lock").read_text())["stages"]
    stages = {
        f"{stage}@{channel}" for stage in ("ingest", "featurize", "train", "evaluate") for channel in ("sms", "email")
    }
    assert set(lock) == stages
    assert set(lock["train@email"]["params"]["params.yaml"]) == {"channels.email.train"}
    assert set(lock["featurize@email"]["params"]["params.yaml"]) == {
        "channels.email.ingest",
        "channels.email.featurize",
    }
    assert not any(key.startswith("channels.sms") for key in lock["train@email"]["params"]["params.yaml"])
    for channel in ("sms", "email"):
        metrics = built.project.json(f"reports/{channel}/metrics.json")
        assert metrics["test_rows"] == built.project.json(f"reports/{channel}/data_stats.json")["test_rows"]
        assert {"roc.json", "pr.json", "confusion.json"} <= {
            p.name for p in (built.project.root / f"reports/{channel}/plots").iterdir()
        }
    assert "up to date" in built.project.dvc("status").stdout  # nothing left to run for either channel


def test_each_channel_has_its_own_registered_model_champion_and_bundle(built: Built) -> None:
    for channel, name in (("sms", "spam-classifier"), ("email", "spam-classifier-email")):
        settings = built.settings.for_channel(channel)  # type: ignore[arg-type]
        assert settings.registered_model == name
        champion = tracking.get_version(settings, "champion")
        assert champion.version == "1"
        assert champion.tags["channel"] == channel
        meta = bundle.read_bundle_metadata(built.project.root / "bundle" / channel)
        assert (meta.name, meta.version, meta.channel) == (name, "1", channel)
        gate = built.project.json(f"reports/{channel}/gate.json")
        assert gate["decision"] == "promote"


def test_the_email_pyfunc_model_scores_raw_messages_as_bytes_or_text(built: Built) -> None:
    mlflow.set_tracking_uri(built.settings.mlflow_tracking_uri)
    model = mlflow.pyfunc.load_model("models:/spam-classifier-email@champion")
    spam = make_corpus(0, 3, seed=99)
    ham = make_corpus(3, 0, seed=98)
    raws = [raw for _, raw in spam + ham]
    as_bytes = model.predict(pd.DataFrame({"message": raws}))
    as_text = model.predict(pd.DataFrame({"message": [raw.decode("utf-8", "replace") for raw in raws]}))
    assert list(as_bytes) == list(as_text)
    assert list(as_bytes) == ["spam"] * 3 + ["ham"] * 3


def test_a_rejected_email_challenger_moves_neither_champion(built: Built) -> None:
    project = built.project
    edit_params(project, "email", "train", {"model": "naive_bayes"})  # another model: a new version to judge
    try:
        project.dvc("repro", "evaluate@email")
        sms_lock = yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]["train@sms"]
        edit_params(project, "email", "gate", {"min_improvement": 0.5})  # no challenger can win by that much
        gate = project.spamfilter("gate", "--channel", "email")
        verdict = project.json("reports/email/gate.json")
        assert verdict["decision"] == "reject", gate.stdout
        assert verdict["challenger"]["version"] == "2"
        run_cli(project, "promote", "--channel", "email", "--if-passed")
        assert tracking.get_version(built.settings.for_channel("email"), "champion").version == "1"
        assert tracking.get_version(built.settings.for_channel("sms"), "champion").version == "1"
        assert tracking.get_version(built.settings.for_channel("email"), "challenger").version == "2"
        # The SMS channel's stages were not rerun by the e-mail channel's params.
        assert yaml.safe_load((project.root / "dvc.lock").read_text())["stages"]["train@sms"] == sms_lock
        assert project.json("reports/sms/gate.json")["decision"] == "promote"
    finally:
        project.run("git", "checkout", "--", "params.yaml")


def escaping_archive(path: Path) -> Path:
    """A tar.gz of two labelled messages and one member whose name climbs out of the archive's folder."""
    with tarfile.open(path, "w:gz") as archive:
        for name, raw in (
            ("batch/ham/1.eml", make_email(sender="a@example.org", subject="lunch", body="see you at one")),
            ("batch/spam/2.eml", make_email(sender="b@deals.example.biz", subject="WIN", body="claim your prize")),
            ("../../escape.eml", make_email(sender="c@example.org", subject="out", body="outside the folder")),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path


def test_bad_mail_fails_ingest_naming_each_and_keeps_the_outputs(built: Built) -> None:
    project = built.project
    new_dir = project.root / "data/new/email"
    batch = new_dir / "batch-bad"
    (batch / "ham").mkdir(parents=True)
    (batch / "ham" / "not-mail.eml").write_bytes(b"just a line of text, no header block\n")
    (batch / "ham" / "good.eml").write_bytes(make_email(sender="d@example.org", subject="minutes", body="attached"))
    escaping_archive(new_dir / "batch-escape.tar.gz")
    train = project.root / "data/processed/email/train.jsonl"
    before = md5_file(train)
    try:
        # The stage itself refuses before writing anything: the earlier split stays as it was.
        failed = project.run("python", "stages/ingest.py", "--channel", "email", check=False)
        assert failed.returncode == 1
        assert "not-mail.eml" in failed.stderr
        assert "batch-escape.tar.gz:../../escape.eml: member path climbs out of the archive" in failed.stderr
        assert "channels.email.ingest.on_bad_row: drop" in failed.stderr
        assert md5_file(train) == before, "a failed ingest must leave the earlier split as it was"
        # Under DVC (which clears a stage's outputs before running it) the failure is the same, and the
        # outputs come back unchanged from the cache.
        repro = project.dvc("repro", "ingest@email", check=False)
        assert repro.returncode != 0 and "not-mail.eml" in repro.stdout + repro.stderr
        project.dvc("checkout", "--force", "ingest@email")
        assert md5_file(train) == before

        edit_params(project, "email", "ingest", {"on_bad_row": "drop"})
        project.dvc("repro", "ingest@email")
        report = (project.root / "reports/email/bad_rows.tsv").read_text()
        assert "not-mail.eml" in report and "../../escape.eml" in report
        stats = project.json("reports/email/data_stats.json")
        assert stats["bad_rows"] == 2
        assert stats["new_batch_rows"] == 3  # the folder's good message and the archive's two
        assert not (project.root.parent / "escape.eml").exists() and not (project.root / "escape.eml").exists()
    finally:
        project.run("git", "checkout", "--", "params.yaml")
        for path in sorted(new_dir.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()


def test_each_bundles_model_card_says_what_its_channel_scores(built: Built) -> None:
    sms = (built.project.root / "bundle/sms/model_card.md").read_text()
    email = (built.project.root / "bundle/email/model_card.md").read_text()
    assert "Classifies English SMS messages" in sms and "RFC 822" not in sms
    assert "Classifies raw RFC 822 e-mail messages" in email and "SMS Spam Collection" not in email
    assert "# Model card: spam-classifier-email version 1" in email
