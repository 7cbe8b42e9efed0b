"""params.yaml is parsed strictly: every bad key is named."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spamfilter.config import (
    ChannelPaths,
    EmailParams,
    Params,
    Settings,
    flatten,
    load_params,
    load_params_file,
    parse_params,
)
from spamfilter.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_repository_params_are_valid_and_explicit() -> None:
    params_file = load_params_file(REPO_ROOT / "params.yaml")
    assert params_file.channels.configured()[0] == "sms"
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for channel in params_file.channels.configured():
        params = params_file.channel(channel)
        # Explicit: every knob the channel's schema knows is written out in params.yaml (dict-valued
        # knobs such as label_folders count as one), so `dvc params diff` and `dvc exp run -S` see them all.
        written = set(flatten(raw["channels"][channel]))
        known = set(flatten(params.model_dump(mode="json")))
        assert known - written == set(), f"{channel}: params not written in params.yaml"
        assert 0 < params.ingest.test_size < 1


def test_defaults_when_sections_are_missing() -> None:
    assert parse_params({"channels": {"sms": {}}}) == Params()
    assert parse_params({"channels": {"email": {}}}) == EmailParams()


def sms(section: dict[str, object]) -> dict[str, object]:
    return {"channels": {"sms": section}}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (sms({"train": {"model": "xgboost"}}), "params.yaml: channels.sms.train.model: Input should be 'mnb'"),
        (sms({"train": {"modle": "mnb"}}), "params.yaml: channels.sms.train.modle: Extra inputs are not permitted"),
        (
            sms({"ingest": {"test_size": 1.5}}),
            "params.yaml: channels.sms.ingest.test_size: Input should be less than 1",
        ),
        (sms({"featurize": {"word_ngram_range": [3, 1]}}), "word_ngram_range must be [low, high]"),
        (sms({"train": {"mnb": {"alpha": -1}}}), "channels.sms.train.mnb.alpha: Input should be greater than 0"),
        ({"channels": {"fax": {}}}, "params.yaml: channels.fax: Extra inputs are not permitted"),
        ({"channels": {}}, "name at least one channel (sms, email)"),
        ({"train": {"model": "mnb"}}, "params.yaml: channels: Field required"),
        ([1, 2], "expected a mapping at the top level"),
    ],
)
def test_bad_params_name_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_params(data)
    assert message in str(excinfo.value)


def test_a_channel_left_out_is_an_error_naming_what_is_configured() -> None:
    with pytest.raises(ConfigError, match=r"no channel 'sms' under channels \(configured: email\)"):
        parse_params({"channels": {"email": {}}}, channel="sms")
    assert parse_params({"channels": {"email": {}}}) == EmailParams()  # the first configured is the default


def test_each_channel_has_its_own_registered_model_and_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPAM_EMAIL_REGISTERED_MODEL", "mail-spam")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.for_channel("sms").registered_model == "spam-classifier"
    assert settings.for_channel("email").registered_model == "mail-spam"
    assert ChannelPaths("email").test == Path("data/processed/email/test.jsonl")
    assert ChannelPaths("sms").bundle == Path("bundle/sms")


def test_load_params_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_flatten_gives_dotted_keys() -> None:
    assert flatten({"a": {"b": 1, "c": {"d": None}}, "e": [1, 2]}) == {"a.b": 1, "a.c.d": None, "e": [1, 2]}


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("SPAM_REGISTERED_MODEL", "sms-spam")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mlflow_tracking_uri == "http://mlflow.internal:5000"
    assert settings.registered_model == "sms-spam"
