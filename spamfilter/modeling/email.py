"""The e-mail model: one scikit-learn pipeline from raw RFC 822 messages to P(spam), and its parts.

    features    Pipeline: parse → fields
      parse     ParseMessages: raw bytes or str → `spamfilter.mail.MailRecord` (the one parser that
                training and serving share; only the header fields in `header_fields` are kept)
      fields    one TF-IDF block per field, side by side (FeatureUnion): subject words and characters,
                body words and characters (head and tail of the body, bounded for speed), sender tokens,
                link tokens, structure tokens (MIME, charsets, attachments, shape of subject and body,
                Date validity, sender-vs-link agreement), tokens of any extra header field asked for;
                then the numeric features (`NUMERIC_FEATURES`: body length, link and attachment counts,
                capitals, ...) as the last columns
    classifier  FixedThresholdClassifier(threshold, pos_label "spam") around StackedEmailClassifier: a
                LinearSVC and multinomial naive Bayes read as a linear model (`NaiveBayesLogOdds`) on the
                TF-IDF columns, and gradient-boosted trees that turn their out-of-fold scores and the
                numeric features into a calibrated P(spam). The threshold is set for few blocked ham.

Why stacked trees (bench/email_quality.py, SpamAssassin corpus, 5-fold CV): the ham that looks most like
spam is legitimate bulk mail (newsletters, shop offers, alerts) whose words are spam's; what tells them
apart is shape (a sender that is the domain it links to, quoted text, a valid Date, length) weighed
against the words, which one linear model cannot do. At the strict operating point (at most 0.12% of
ham blocked) the trees catch more spam than either linear model or their calibrated average.

What the features read (leakage): only what a sender controls and a receiving server sees. The From
display name, address and domain, the Reply-To domain (mismatch), the subject, To/Cc counts, the body
text and its HTML share, links and their domains, attachments (names, types, sizes), MIME structure,
charsets, parser defects and whether the Date header is valid. Never the raw message size (it counts
the headers a relay adds), nor Received, Delivered-To, Return-Path, List-*, X-*, Precedence,
Errors-To or Message-ID: in the SpamAssassin corpus they record how the corpus was collected (ham is
mostly mailing-list traffic), so a model reading them learns the collection, not spam. The parser
keeps only `EmailFeaturizeParams.header_fields`; fields beyond the default ones are read only by the
`headers` block, which exists only when such fields are asked for.

`email_lean_scorer` compiles a fitted pipeline into a function that runs the same steps without
scikit-learn's per-call validation, for `spamfilter.modeling.scoring` to call on e-mail models;
`compile_email_scorer` adds the load-time self-check and the fallback to `predict_proba`.

Every class here is picklable and lives at this import path: fitted pipelines (DVC outputs, MLflow
models) name them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import string
from collections.abc import Callable, Iterable, Sequence
from email.utils import parsedate_tz
from itertools import repeat
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from scipy.optimize import minimize
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import FixedThresholdClassifier, StratifiedKFold, cross_val_predict
from sklearn.naive_bayes import MultinomialNB
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.svm import LinearSVC
from sklearn.utils.extmath import safe_sparse_dot
from sklearn.utils.sparsefuncs_fast import inplace_csr_row_normalize_l2
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # scikit-learn's own dependency

from spamfilter.config import (
    ALL_BLOCKS,
    DEFAULT_FEATURE_HEADER_FIELDS,
    BlockName,
    EmailBoosterParams,
    EmailFeaturizeParams,
    EmailModelName,
    EmailNaiveBayesParams,
    EmailSvmParams,
    EmailTrainParams,
)
from spamfilter.errors import MailError, ModelInputError
from spamfilter.labels import HAM, SPAM
from spamfilter.mail import MailLimits, MailRecord, parse_message
from spamfilter.modeling.metrics import BehaviouralResult
from spamfilter.modeling.pipeline import assemble, checked_scorer
from spamfilter.modeling.text import WordAnalyzer, normalize

log = logging.getLogger(__name__)

MESSAGE_COLUMN = "message"
# The parameter classes live in spamfilter.config (params.yaml's schema); re-exported here for callers
# that build e-mail models directly.
__all__ = [
    "ALL_BLOCKS",
    "DEFAULT_FEATURE_HEADER_FIELDS",
    "BlockName",
    "EmailBoosterParams",
    "EmailFeaturizeParams",
    "EmailModelName",
    "EmailNaiveBayesParams",
    "EmailSvmParams",
    "EmailTrainParams",
]


# -- input ---------------------------------------------------------------------------------------------


def as_messages(data: Any) -> list[bytes | str]:
    """Coerce model input to a list of raw messages.

    Accepts one message (bytes or str), a sequence or 1-D array of them, a pandas Series, a 2-D array
    with one column, or a DataFrame with a `message` column (or a single column). Raises
    ModelInputError naming the column or row otherwise.
    """
    if isinstance(data, bytes | bytearray | str):
        return [bytes(data) if isinstance(data, bytearray) else data]
    columns = getattr(data, "columns", None)
    if columns is not None:
        names = list(columns)
        if MESSAGE_COLUMN in names:
            data = data[MESSAGE_COLUMN]
        elif len(names) == 1:
            data = data[names[0]]
        else:
            raise ModelInputError(f"expected a {MESSAGE_COLUMN!r} column of raw messages, got columns {names}")
    if isinstance(data, np.ndarray) and data.ndim == 2:
        if data.shape[1] != 1:
            raise ModelInputError(f"expected one column of raw messages, got shape {data.shape}")
        data = data[:, 0]
    rows = data.tolist() if hasattr(data, "tolist") else list(data)
    for index, row in enumerate(rows):
        if isinstance(row, bytearray):
            rows[index] = bytes(row)
        elif not isinstance(row, bytes | str):
            raise ModelInputError(f"input row {index}: expected a raw message (bytes or str), got {type(row).__name__}")
    return rows


# auto_wrap_output_keys=None: these transformers output records and token lists, which scikit-learn's
# set_output (pandas/polars containers) does not apply to; unwrapped, each call skips its checks.
class ParseMessages(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[misc,call-arg]  # untyped
    """First step of the e-mail pipeline: raw messages (any shape `as_messages` accepts) → MailRecords.

    A message the parser refuses (over a limit, not an e-mail) raises MailError naming its input row.
    """

    def __init__(
        self, header_fields: tuple[str, ...] = DEFAULT_FEATURE_HEADER_FIELDS, limits: MailLimits | None = None
    ):
        self.header_fields = header_fields
        self.limits = limits

    def fit(self, X: Any, y: Any = None) -> ParseMessages:  # noqa: N803 (scikit-learn's API)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless: a slice of the pipeline that ends here can transform unfitted

    def transform(self, X: Any) -> list[MailRecord]:  # noqa: N803
        limits = self.limits or MailLimits()
        records = []
        for index, raw in enumerate(as_messages(X)):
            try:
                records.append(parse_message(raw, limits, self.header_fields))
            except MailError as error:
                raise MailError(f"input row {index}: {error}") from None
        return records


# -- fields to text and tokens -------------------------------------------------------------------------


def head_and_tail(text: str, head: int, tail: int) -> str:
    """The first `head` and last `tail` characters of `text` (all of it when it is that short)."""
    if len(text) <= head + tail:
        return text
    return text[:head] + "\n" + text[len(text) - tail :] if tail else text[:head]


def bucket(value: float, edges: Sequence[float]) -> int:
    """The index of the first edge `value` is at most, or len(edges): a coarse, stable token for a number."""
    for index, edge in enumerate(edges):
        if value <= edge:
            return index
    return len(edges)


_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_DIGIT_RUN = re.compile(r"\d+")
_LONG_DIGIT_RUN = re.compile(r"\d{3,}")
_NAME_WORD = re.compile(r"[^\W\d_]+")
_PATH_WORD = re.compile(r"[a-z]{2,20}")
_PORT = re.compile(r":\d+$")
_REPLY_PREFIX = re.compile(r"(?:re|fwd?|aw)\s*:", re.I)
_SUBJECT_TAG = re.compile(r"\[[^\]]{1,40}\]")
_ATTACHMENT_EXTENSION = re.compile(r"\.([a-z0-9]{1,8})$")
_SIZE_EDGES = (1_000, 10_000, 100_000, 1_000_000)


def registrable_domain(domain: str) -> str:
    """The last two labels of a host name ("mail.example.com" → "example.com"); an IP address stays whole."""
    if not domain or _IPV4.fullmatch(domain):
        return domain
    return ".".join(domain.split(".")[-2:])


def domain_tokens(prefix: str, domain: str) -> list[str]:
    """A host name as tokens: itself, its registrable domain, its top-level label, an IP-address mark."""
    if not domain:
        return [f"{prefix}:none"]
    if _IPV4.fullmatch(domain) or ":" in domain:
        return [f"{prefix}:ip"]
    tokens = [
        f"{prefix}:{domain}",
        f"{prefix}.reg:{registrable_domain(domain)}",
        f"{prefix}.tld:{domain.rsplit('.', 1)[-1]}",
    ]
    if any(character.isdigit() for character in domain):
        tokens.append(f"{prefix}:digits")
    return tokens


def sender_tokens(record: MailRecord) -> list[str]:
    """From: domain, address shape and display-name words; Reply-To agreement."""
    tokens = domain_tokens("from", record.sender_domain)
    local = record.sender_address.partition("@")[0]
    if local:
        tokens.append("local:" + _DIGIT_RUN.sub("0", local)[:40])
        if _LONG_DIGIT_RUN.search(local):
            tokens.append("local:digits")
    else:
        tokens.append("local:none")
    name = record.sender_name.lower()
    tokens.extend("name:" + word for word in _NAME_WORD.findall(name)[:10])
    if not name:
        tokens.append("name:none")
    elif name.strip("'\" ") == record.sender_address:
        tokens.append("name:is-address")
    if record.reply_to_mismatch:
        tokens.append("reply-to:other-domain")
    elif record.reply_to_domain:
        tokens.append("reply-to:same-domain")
    return tokens


def link_tokens(record: MailRecord, max_links: int = 30) -> list[str]:
    """Links: how many, their hosts (as `domain_tokens`), words of their paths, and odd forms."""
    tokens = [f"links:{bucket(len(record.urls), (0, 1, 2, 4, 8, 16))}"]
    for domain in record.url_domains[:max_links]:
        tokens.extend(domain_tokens("link", domain))
    for url in record.urls[:max_links]:
        lowered = url.lower()
        rest = lowered.split("://", 1)[-1]
        authority, _, path = rest.partition("/")
        tokens.extend("path:" + word for word in _PATH_WORD.findall(path)[:10])
        if "@" in authority:
            tokens.append("link:userinfo")
        if _PORT.search(authority):
            tokens.append("link:port")
        if "%" in lowered:
            tokens.append("link:escaped")
        if lowered.startswith("https:"):
            tokens.append("link:https")
        if "?" in path:
            tokens.append("link:query")
    return tokens


def date_tokens(record: MailRecord) -> list[str]:
    """Whether the Date header is missing, unparseable, or has an impossible year or time-zone offset
    (spamware writes dates no mail client does); never the date itself."""
    value = next((value for name, value in record.headers if name == "date"), None)
    if value is None:
        return ["date:missing"]
    parsed = parsedate_tz(value)
    if parsed is None:
        return ["date:unparseable"]
    tokens = []
    if not 1990 <= parsed[0] <= 2100:
        tokens.append("date:bad-year")
    offset = parsed[9]
    if offset is None:
        tokens.append("date:no-zone")
    elif abs(offset) > 14 * 3600 or offset % 900:
        tokens.append("date:bad-zone")
    return tokens or ["date:valid"]


def caps_share(text: str) -> float | None:
    """The share of ASCII letters in `text` that are capitals (None without any): counted by str.count,
    26 scans in C, ten times faster than a Python loop over a body's characters."""
    upper = sum(map(text.count, string.ascii_uppercase))
    letters = upper + sum(map(text.count, string.ascii_lowercase))
    return upper / letters if letters else None


def structure_tokens(record: MailRecord) -> list[str]:
    """MIME structure, charsets, attachments, sizes of the body, recipients, defects, the shape of the
    subject and body, Date validity, and whether the sender's domain is the one the links point at."""
    tokens = ["mime:" + content_type for content_type in record.mime_types[:30]]
    tokens.append("top:" + (record.mime_types[0] if record.mime_types else "none"))
    tokens.extend("charset:" + charset for charset in record.charsets[:10])
    if not record.charsets:
        tokens.append("charset:none")
    for attachment in record.attachments[:20]:
        tokens.append("attachment:" + attachment.content_type)
        extension = _ATTACHMENT_EXTENSION.search(attachment.name.lower())
        tokens.append("attachment.ext:" + (extension.group(1) if extension else "none"))
        tokens.append(f"attachment.size:{bucket(attachment.size, _SIZE_EDGES)}")
    tokens.append(f"attachments:{bucket(len(record.attachments), (0, 1, 2, 4))}")
    tokens.append(f"depth:{min(record.mime_depth, 4)}")
    tokens.append(f"html:{bucket(record.html_share, (0.0, 0.25, 0.5, 0.75, 0.99))}")
    tokens.append(f"body.length:{bucket(len(record.body_text), (0, 100, 300, 1_000, 3_000, 10_000))}")
    tokens.append(f"to:{bucket(record.to_count, (0, 1, 2, 5, 10))}")
    tokens.append(f"cc:{bucket(record.cc_count, (0, 1, 2, 5))}")
    tokens.append(f"defects:{bucket(record.defects, (0, 1, 3))}")
    subject = record.subject
    caps = caps_share(subject)
    tokens.append("subject:no-letters" if caps is None else f"subject.caps:{bucket(caps, (0.2, 0.5, 0.8))}")
    if not subject:
        tokens.append("subject:empty")
    if "!" in subject:
        tokens.append("subject:bang")
    if _REPLY_PREFIX.match(subject):
        tokens.append("subject:reply")
    if _SUBJECT_TAG.search(subject):
        tokens.append("subject:tag")
    body = record.body_text[:5_000]
    caps = caps_share(body)
    if caps is not None:
        tokens.append(f"body.caps:{bucket(caps, (0.05, 0.1, 0.2, 0.4))}")
    tokens.append(f"body.quoted:{bucket(body.count(chr(10) + '>'), (0, 2, 10))}")
    tokens.extend(date_tokens(record))
    sender = registrable_domain(record.sender_domain)
    linked = [registrable_domain(domain) for domain in record.url_domains]
    if sender and sender in linked:
        tokens.append("sender:in-links")
        if all(domain == sender for domain in linked):
            tokens.append("sender:all-links")
    elif linked:
        tokens.append("sender:not-in-links")
    tokens.append(f"link.domains:{bucket(len(set(linked)), (0, 1, 2, 3, 5, 10))}")
    if record.reply_to_domain and registrable_domain(record.reply_to_domain) in linked:
        tokens.append("reply-to:in-links")
    return tokens


def header_tokens(record: MailRecord, fields: Sequence[str]) -> list[str]:
    """Each asked-for header field present, and the words of its value: for fields beyond the default."""
    wanted = frozenset(fields)
    tokens = []
    for name, value in record.headers:
        if name in wanted:
            tokens.append(f"{name}:present")
            tokens.extend(f"{name}:{word}" for word in _NAME_WORD.findall(value.lower())[:20])
    return tokens or ["headers:none"]


def _numbers(record: MailRecord) -> tuple[float, ...]:
    body = record.body_text
    head = body[:5_000]
    length = len(body)
    subject_caps = caps_share(record.subject)
    body_caps = caps_share(head)
    sender = registrable_domain(record.sender_domain)
    linked = {registrable_domain(domain) for domain in record.url_domains}
    local = record.sender_address.partition("@")[0]
    non_ascii = len(head) - len(head.encode("ascii", "ignore"))
    return (
        math.log1p(length),
        record.html_share,
        math.log1p(len(record.urls)),
        float(len(linked)),
        float(len(record.attachments)),
        math.log1p(sum(attachment.size for attachment in record.attachments)),
        float(min(record.to_count, 50)),
        float(min(record.cc_count, 50)),
        float(min(record.defects, 50)),
        float(len(record.subject)),
        -1.0 if subject_caps is None else subject_caps,
        -1.0 if body_caps is None else body_caps,
        1_000 * head.count("!") / (len(head) + 1),
        1_000 * head.count("$") / (len(head) + 1),
        non_ascii / (len(head) + 1),
        math.log1p(body.count("\n>")),
        float(record.mime_depth),
        float(len(record.mime_types)),
        float(bool(sender) and sender in linked),
        float(record.reply_to_mismatch),
        float(not record.sender_name),
        float(bool(_LONG_DIGIT_RUN.search(local))),
        float(date_tokens(record) != ["date:valid"]),
    )


NUMERIC_FEATURES: tuple[str, ...] = (
    "log body length",
    "html share",
    "log link count",
    "linked domains",
    "attachments",
    "log attachment bytes",
    "to count",
    "cc count",
    "parser defects",
    "subject length",
    "subject capitals share",
    "body capitals share",
    "body ! per 1000 chars",
    "body $ per 1000 chars",
    "body non-ASCII share",
    "log quoted lines",
    "MIME depth",
    "MIME parts",
    "sender domain linked",
    "reply-to elsewhere",
    "no display name",
    "digits in sender address",
    "date invalid",
)


def numeric_features(records: Sequence[MailRecord]) -> np.ndarray:
    """One row of `NUMERIC_FEATURES` per record (float32, as the text blocks): sizes of the body (never of
    the raw message: a relay's headers would count), links, attachments, recipients, shapes. Read by the
    `stacked` model's trees only; the linear models never see them."""
    return np.array([_numbers(record) for record in records], dtype=np.float32).reshape(-1, len(NUMERIC_FEATURES))


FieldName = Literal["subject", "body", "sender", "links", "structure", "headers", "numbers"]


class RecordField(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):  # type: ignore[misc,call-arg]  # untyped
    """One field of each MailRecord: text (subject, body — cut to head and tail, normalised or not), a
    token list (sender, links, structure, headers) for a TfidfVectorizer with `analyzer=tokens_as_is`, or
    the numeric features (`numbers`: a float32 array, the featurizer's last columns)."""

    def __init__(
        self,
        field: FieldName = "body",
        head_chars: int | None = None,
        tail_chars: int = 0,
        normalized: bool = True,
        header_fields: tuple[str, ...] = (),
    ):
        self.field = field
        self.head_chars = head_chars
        self.tail_chars = tail_chars
        self.normalized = normalized
        self.header_fields = header_fields

    def fit(self, X: Any, y: Any = None) -> RecordField:  # noqa: N803
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return True  # stateless

    def transform(self, X: Iterable[MailRecord]) -> list[Any] | np.ndarray:  # noqa: N803
        field = self.field
        if field in ("subject", "body"):
            texts = [record.subject if field == "subject" else record.body_text for record in X]
            if self.head_chars is not None:
                texts = [head_and_tail(text, self.head_chars, self.tail_chars) for text in texts]
            return [normalize(text) for text in texts] if self.normalized else texts
        if field == "sender":
            return [sender_tokens(record) for record in X]
        if field == "links":
            return [link_tokens(record) for record in X]
        if field == "structure":
            return [structure_tokens(record) for record in X]
        if field == "headers":
            return [header_tokens(record, self.header_fields) for record in X]
        if field == "numbers":
            return numeric_features(list(X))
        raise ValueError(f"unknown record field {field!r}")


def tokens_as_is(tokens: list[str]) -> list[str]:
    """The analyzer of the token blocks: their fields are already tokens."""
    return tokens


class CharNgrams:
    """Character n-grams inside word boundaries, each word padded with one space on either side: the
    same n-grams, with the same counts, as scikit-learn's `analyzer="char_wb"`, in about half its time
    (slices by list comprehension instead of an append loop). A word no longer than n yields itself once,
    and no longer n-grams, as there."""

    def __init__(self, ngram_range: tuple[int, int] = (3, 5), lowercase: bool = False):
        self.ngram_range = ngram_range
        self.lowercase = lowercase

    def __call__(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        low, high = self.ngram_range
        grams: list[str] = []
        extend = grams.extend
        for word in text.split():
            padded = f" {word} "
            length = len(padded)
            for n in range(low, high + 1):
                if length <= n:
                    grams.append(padded)
                    break
                extend([padded[start : start + n] for start in range(length - n + 1)])
        return grams


# -- featurizer and classifier -------------------------------------------------------------------------


def build_email_fields(params: EmailFeaturizeParams) -> FeatureUnion:
    """MailRecords → one TF-IDF block per field named in `params.blocks` (plus `headers` when header
    fields beyond the default ones are asked for), each L2-normalised on its own, then the numeric
    features (`numbers`, always the last columns)."""
    common: dict[str, Any] = {"sublinear_tf": params.sublinear_tf, "dtype": np.float32, "lowercase": False}

    def block(extract: RecordField, **vectorizer: Any) -> Pipeline:
        return Pipeline([("field", extract), ("tfidf", TfidfVectorizer(**{**common, **vectorizer}))])

    words = WordAnalyzer(params.stemmer, False, params.word_ngram_range)
    make: dict[str, Callable[[], Pipeline]] = {
        "subject": lambda: block(RecordField("subject"), analyzer=words),
        # Subject characters read the subject as written, lower-cased (its case is in `structure`).
        "subject_chars": lambda: block(
            RecordField("subject", normalized=False),
            analyzer=CharNgrams(params.subject_char_ngram_range, lowercase=True),
            min_df=params.min_df,
        ),
        "body": lambda: block(
            RecordField("body", params.body_head_chars, params.body_tail_chars), analyzer=words, min_df=params.min_df
        ),
        "body_chars": lambda: block(
            RecordField("body", params.body_chars_head, params.body_chars_tail),
            analyzer=CharNgrams(params.body_char_ngram_range),
            min_df=params.min_df,
        ),
        "sender": lambda: block(RecordField("sender"), analyzer=tokens_as_is),
        "links": lambda: block(RecordField("links"), analyzer=tokens_as_is),
        "structure": lambda: block(RecordField("structure"), analyzer=tokens_as_is),
    }
    branches: list[tuple[str, Pipeline]] = [(name, make[name]()) for name in params.blocks]
    extra = params.extra_header_fields
    if extra:
        branches.append(("headers", block(RecordField("headers", header_fields=extra), analyzer=tokens_as_is)))
    # Always last: the classifier takes its last len(NUMERIC_FEATURES) columns as the numeric features.
    branches.append(("numbers", RecordField("numbers")))
    return FeatureUnion(branches)


class NaiveBayesLogOdds(MultinomialNB):  # type: ignore[misc]  # scikit-learn is untyped
    """Multinomial naive Bayes read as the linear model it is: `decision_function(x) = x · coef_ +
    intercept_`, the log-odds of spam up to the evidence term, with `coef_ = log θ_spam − log θ_ham` and
    `intercept_` the log prior ratio.

    A sigmoid calibrated on these log-odds (CalibratedClassifierCV uses `decision_function`) gives
    usable probabilities; MultinomialNB's own `predict_proba` saturates at exactly 0 and 1 on e-mail-
    length inputs, which leaves a calibrator nothing to order.
    """

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> NaiveBayesLogOdds:  # noqa: N803
        super().fit(X, y, sample_weight=sample_weight)
        if len(self.classes_) != 2:
            raise ValueError(f"NaiveBayesLogOdds is binary, got classes {list(self.classes_)}")
        log_prob = self.feature_log_prob_
        self.coef_ = (log_prob[1] - log_prob[0]).reshape(1, -1)
        self.intercept_ = np.array([self.class_log_prior_[1] - self.class_log_prior_[0]])
        return self

    def decision_function(self, X: Any) -> np.ndarray:  # noqa: N803
        """Log-odds of the second class (`classes_[1]`) for each row of X."""
        check_is_fitted(self, "coef_")
        features = self._check_X(X)
        scores = safe_sparse_dot(features, self.coef_.T, dense_output=True) + self.intercept_
        return np.asarray(scores).reshape(-1)


MemberName = Literal["linear_svm", "naive_bayes"]


def platt_sigmoid(scores: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (slope, intercept) of P(positive | score) = expit(slope · score + intercept), fitted by
    log-loss to Platt's smoothed targets ((N₊ + 1)/(N₊ + 2) for positives, 1/(N₋ + 2) for negatives), which
    keep the slope finite when the scores separate the classes (as scikit-learn's sigmoid calibration)."""
    positives = float(positive.sum())
    negatives = float(len(positive) - positives)
    targets = np.where(positive, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))
    values = np.asarray(scores, dtype=float)

    def loss_and_gradient(parameters: np.ndarray) -> tuple[float, np.ndarray]:
        logits = parameters[0] * values + parameters[1]
        # log-loss against soft targets, in the stable form: log(1 + e^z) − t·z
        loss = float(np.sum(np.logaddexp(0.0, logits) - targets * logits))
        residual = expit(logits) - targets
        return loss, np.array([np.dot(residual, values), residual.sum()])

    start = np.array([0.0, math.log((positives + 1.0) / (negatives + 1.0))])
    fitted = minimize(loss_and_gradient, start, jac=True, method="L-BFGS-B")
    return float(fitted.x[0]), float(fitted.x[1])


@dataclasses.dataclass(frozen=True)
class BoostedTrees:
    """A fitted binary HistGradientBoostingClassifier's trees as flat arrays, evaluated with numpy for all
    trees at once: the same P(positive) as its `predict_proba` (the same comparisons, leaf values summed
    tree by tree from the baseline, the same expit), without its per-tree calls into an OpenMP loop,
    which cost milliseconds for one message (200 trees) and far more on a busy machine."""

    roots: np.ndarray  # index of each tree's root in the flat arrays
    feature: np.ndarray
    threshold: np.ndarray
    missing_left: np.ndarray
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray
    baseline: float
    depth: int

    @classmethod
    def of(cls, booster: HistGradientBoostingClassifier) -> BoostedTrees:
        """Raises ValueError for what this form does not cover (categorical splits, more than two classes)."""
        predictors = booster._predictors  # one list per iteration, one predictor per class (here one)
        if any(len(iteration) != 1 for iteration in predictors) or booster._baseline_prediction.shape != (1, 1):
            raise ValueError("not a binary booster")
        nodes = [iteration[0].nodes for iteration in predictors]
        if any(tree["is_categorical"].any() for tree in nodes):
            raise ValueError("categorical splits")
        sizes = np.array([len(tree) for tree in nodes])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate(nodes)
        owner = np.repeat(offsets, sizes)  # each node's tree offset: child indices are per tree
        return cls(
            roots=offsets.astype(np.intp),
            feature=flat["feature_idx"].astype(np.intp),
            threshold=flat["num_threshold"].astype(np.float64),
            missing_left=flat["missing_go_to_left"].astype(bool),
            left=(flat["left"] + owner).astype(np.intp),
            right=(flat["right"] + owner).astype(np.intp),
            is_leaf=flat["is_leaf"].astype(bool),
            value=flat["value"].astype(np.float64),
            baseline=float(booster._baseline_prediction[0, 0]),
            depth=int(flat["depth"].max()),
        )

    def probability(self, inputs: np.ndarray) -> np.ndarray:
        """P(positive) for each row of `inputs` (n, features)."""
        values = np.asarray(inputs, dtype=np.float64)
        rows = np.arange(len(values))[:, None]
        node = np.broadcast_to(self.roots, (len(values), len(self.roots))).copy()
        for _ in range(self.depth):
            inner = ~self.is_leaf[node]
            if not inner.any():
                break
            value = values[rows, self.feature[node]]
            go_left = np.where(np.isnan(value), self.missing_left[node], value <= self.threshold[node])
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        # raw = baseline + tree 1 + tree 2 + ..., in that order, as the booster adds them.
        leaves = np.concatenate([np.full((len(values), 1), self.baseline), self.value[node]], axis=1)
        return np.asarray(expit(np.cumsum(leaves, axis=1)[:, -1]))


class StackedEmailClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # scikit-learn is untyped
    """Linear members on the text blocks, combined into P(spam) from their out-of-fold scores.

    X is the e-mail featurizer's output: TF-IDF blocks, then `numeric_columns` numeric features (the last
    columns). Each member (`linear_svm`: LinearSVC; `naive_bayes`: NaiveBayesLogOdds) is fitted on the
    text columns only; `folds`-fold cross-validation gives its out-of-fold scores on the training data.

    - `combine="boosted"`: gradient-boosted trees (HistGradientBoostingClassifier, log-loss) learn P(spam)
      from the members' out-of-fold scores and the numeric features: the trees combine the two views
      non-linearly (a newsletter's shape against its words) and their log-loss probabilities are fitted
      on scores the members gave messages they had not seen, so they are calibrated.
    - `combine="average"`: each member's score is calibrated by a sigmoid fitted on its out-of-fold
      scores (`platt_sigmoid`), and the calibrated probabilities are averaged; numeric features unused.

    At prediction the members fitted on all the training data give the scores. `predict_proba` runs
    without scikit-learn's per-call validation beyond the members' own: it is what the lean scorer calls.
    """

    def __init__(
        self,
        members: tuple[MemberName, ...] = ("linear_svm", "naive_bayes"),
        combine: Literal["boosted", "average"] = "boosted",
        numeric_columns: int = 0,
        svm_C: float = 1.0,  # noqa: N803 (LinearSVC's name)
        svm_class_weight: Literal["balanced"] | None = None,
        nb_alpha: float = 0.003,
        folds: int = 5,
        booster_max_iter: int = 200,
        booster_learning_rate: float = 0.05,
        booster_max_leaf_nodes: int = 8,
        booster_min_samples_leaf: int = 20,
        booster_l2_regularization: float = 1.0,
        random_state: int = 42,
    ):
        self.members = members
        self.combine = combine
        self.numeric_columns = numeric_columns
        self.svm_C = svm_C
        self.svm_class_weight = svm_class_weight
        self.nb_alpha = nb_alpha
        self.folds = folds
        self.booster_max_iter = booster_max_iter
        self.booster_learning_rate = booster_learning_rate
        self.booster_max_leaf_nodes = booster_max_leaf_nodes
        self.booster_min_samples_leaf = booster_min_samples_leaf
        self.booster_l2_regularization = booster_l2_regularization
        self.random_state = random_state

    def _member(self, name: MemberName) -> Any:
        if name == "linear_svm":
            return LinearSVC(C=self.svm_C, class_weight=self.svm_class_weight, random_state=self.random_state)
        if name == "naive_bayes":
            return NaiveBayesLogOdds(alpha=self.nb_alpha)
        raise ValueError(f"unknown member {name!r}: expected linear_svm or naive_bayes")

    def _split(self, X: Any) -> tuple[Any, np.ndarray]:  # noqa: N803
        """The text columns (sparse, as given) and the numeric columns (dense float32)."""
        width = X.shape[1] - self.numeric_columns
        if not self.numeric_columns:
            return X, np.zeros((X.shape[0], 0), dtype=np.float32)
        numbers = X[:, width:]
        return X[:, :width], numbers.toarray() if sp.issparse(numbers) else np.asarray(numbers)

    def _numbers(self, X: Any) -> np.ndarray:  # noqa: N803
        """The numeric columns, dense: for CSR input read straight from its arrays (no slicing copy)."""
        count, width = X.shape[0], X.shape[1] - self.numeric_columns
        if not sp.issparse(X) or X.format != "csr":
            return self._split(X)[1]
        numbers = np.zeros((count, self.numeric_columns), dtype=X.dtype)
        numeric = X.indices >= width
        rows = np.repeat(np.arange(count), np.diff(X.indptr))[numeric]
        numbers[rows, X.indices[numeric] - width] = X.data[numeric]
        return numbers

    def fit(self, X: Any, y: Any) -> StackedEmailClassifier:  # noqa: N803
        if not self.members or len(set(self.members)) != len(self.members):
            raise ValueError(f"members must name each member at most once, and at least one: {self.members}")
        if self.combine not in ("boosted", "average"):
            raise ValueError(f"combine must be boosted or average, got {self.combine!r}")
        labels = np.asarray(y)
        self.classes_ = np.unique(labels)
        if len(self.classes_) != 2:
            raise ValueError(f"expected two classes, got {list(self.classes_)}")
        text, numbers = self._split(X)
        folds = StratifiedKFold(self.folds, shuffle=True, random_state=self.random_state)
        out_of_fold = np.column_stack(
            [
                cross_val_predict(self._member(name), text, labels, cv=folds, method="decision_function")
                for name in self.members
            ]
        )
        self.members_ = [self._member(name).fit(text, labels) for name in self.members]
        # The members' linear forms over all columns, zero on the numeric ones: one product scores them all.
        self.weights_ = np.zeros((X.shape[1], len(self.members_)))
        self.weights_[: text.shape[1]] = np.column_stack([member.coef_[0] for member in self.members_])
        self.intercepts_ = np.array([member.intercept_[0] for member in self.members_])
        positive = labels == self.classes_[1]
        if self.combine == "boosted":
            stacked = np.hstack([out_of_fold, numbers])  # the booster's inputs: built once, fitted and compiled on
            self.booster_ = HistGradientBoostingClassifier(
                max_iter=self.booster_max_iter,
                learning_rate=self.booster_learning_rate,
                max_leaf_nodes=self.booster_max_leaf_nodes,
                min_samples_leaf=self.booster_min_samples_leaf,
                l2_regularization=self.booster_l2_regularization,
                random_state=self.random_state,
            ).fit(stacked, positive)
            self.trees_ = self._compiled_trees(stacked)
        else:
            self.sigmoids_ = np.array(
                [platt_sigmoid(out_of_fold[:, index], positive) for index in range(len(self.members))]
            )
        return self

    def _compiled_trees(self, inputs: np.ndarray) -> BoostedTrees | None:
        # The numpy form, if it gives the booster's own probabilities on the training inputs exactly.
        try:
            trees = BoostedTrees.of(self.booster_)
        except (ValueError, AttributeError, KeyError) as why:
            log.warning("boosted trees evaluated by scikit-learn: %s", why)
            return None
        with threadpool_limits(1):
            expected = self.booster_.predict_proba(inputs)[:, 1]
        if not np.array_equal(trees.probability(inputs), expected):
            log.warning("boosted trees evaluated by scikit-learn: the numpy form differs")
            return None
        return trees

    def member_scores(self, X: Any) -> np.ndarray:  # noqa: N803
        """Each member's decision score for `classes_[1]`, one column per member: X · weights + intercept,
        the members' own `decision_function` on the text columns (the zero weights of the numeric columns
        add exact zeros to each row's sum)."""
        scores: np.ndarray = np.asarray(X @ self.weights_) + self.intercepts_
        return scores

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        check_is_fitted(self, "members_")
        scores = self.member_scores(X)
        numbers = self._numbers(X)
        if self.combine == "boosted":
            inputs = np.hstack([scores, numbers])
            if self.trees_ is not None:
                positive = self.trees_.probability(inputs)
            else:
                with threadpool_limits(1):  # one message at a time: OpenMP threads only add overhead
                    positive = self.booster_.predict_proba(inputs)[:, 1]
        else:
            positive = np.mean(expit(scores * self.sigmoids_[:, 0] + self.sigmoids_[:, 1]), axis=1)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])


def build_email_classifier(
    params: EmailTrainParams, numeric_columns: int = len(NUMERIC_FEATURES)
) -> FixedThresholdClassifier:
    """The classifier named by `params.model` (see EmailTrainParams), wrapped to apply `params.threshold`
    to P(spam). `numeric_columns`: how many of the featurizer's last columns are numeric features."""
    alone: dict[str, tuple[MemberName, ...]] = {"linear_svm": ("linear_svm",), "naive_bayes": ("naive_bayes",)}
    members = alone.get(params.model, ("linear_svm", "naive_bayes"))
    booster = params.booster
    estimator = StackedEmailClassifier(
        members=members,
        combine="boosted" if params.model == "stacked" else "average",
        numeric_columns=numeric_columns,
        svm_C=params.linear_svm.C,
        svm_class_weight=params.linear_svm.class_weight,
        nb_alpha=params.naive_bayes.alpha,
        folds=params.folds,
        booster_max_iter=booster.max_iter,
        booster_learning_rate=booster.learning_rate,
        booster_max_leaf_nodes=booster.max_leaf_nodes,
        booster_min_samples_leaf=booster.min_samples_leaf,
        booster_l2_regularization=booster.l2_regularization,
        random_state=params.seed,
    )
    return FixedThresholdClassifier(
        estimator, threshold=params.threshold, pos_label=SPAM, response_method="predict_proba"
    )


def build_email_model(featurize: EmailFeaturizeParams, train: EmailTrainParams, limits: Any = None) -> Pipeline:
    """The unfitted pipeline from raw messages to label and P(spam), of the SMS model's shape:
    ("features": parse → fields, "classifier")."""
    return assemble(build_email_featurizer(featurize, limits), build_email_classifier(train))


def mail_limits(limits: Any = None) -> MailLimits | None:
    """MailLimits from MailLimits, from params with the same fields (config's MailLimitsParams), or None
    (the parser's defaults)."""
    if limits is None or isinstance(limits, MailLimits):
        return limits
    return MailLimits(**{field.name: getattr(limits, field.name) for field in dataclasses.fields(MailLimits)})


def build_email_featurizer(params: EmailFeaturizeParams, limits: Any = None) -> Pipeline:
    """Raw messages → MailRecords (`parse`, within `limits`) → the feature blocks (`fields`).

    `featurizer[1:]` reads MailRecords: benches parse a corpus once and fit that slice, which fits the
    very steps of the featurizer (the parse step holds no state).
    """
    return Pipeline(
        [
            ("parse", ParseMessages(tuple(params.header_fields), mail_limits(limits))),
            ("fields", build_email_fields(params)),
        ]
    )


# -- lean scoring ----------------------------------------------------------------------------------------

Scorer = Callable[[Sequence[bytes | str]], np.ndarray]
RecordFeaturize = Callable[[list[MailRecord]], Any]

# Probe messages for the load-time equality check: plain and HTML, multipart with an attachment,
# non-ASCII, links, an empty body, a Reply-To elsewhere, an invalid Date.
PROBE_MESSAGES: tuple[bytes, ...] = (
    b"From: Alice Example <alice@example.org>\r\nTo: bob@example.net\r\nSubject: Re: lunch on Friday?\r\n"
    b"Date: Tue, 3 Sep 2002 12:00:00 +0100\r\n\r\nSounds good. See you at the station at 1.\r\n\r\n> Are we still on?\r\n",
    b'From: "Best Deals" <deals4u123@bulk.example.biz>\r\nReply-To: claims@offers.example.ru\r\n'
    b"Subject: =?utf-8?b?V0lOTkVSIQ==?= Claim your FREE prize now!!!\r\nDate: Sun, 28 Jul 0102 12:29:29 -1600\r\n"
    b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=iso-8859-1\r\n\r\n<html><body><p>CLICK "
    b'<a href="http://192.0.2.7/claim?id=42">HERE</a> to claim $1,000,000!</p><p>To be removed '
    b'<a href="http://www.offers.example.ru/remove">click here</a></p></body></html>\r\n',
    b"From: sales@example.com\r\nTo: a@example.net, b@example.net\r\nCc: c@example.net\r\nSubject: Invoice\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n--b1\r\n'
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    b"Pi\xc3\xa8ce jointe: la facture \xe2\x82\xac 120. www.example.com/invoice\r\n--b1\r\n"
    b'Content-Type: application/pdf; name="invoice.pdf"\r\nContent-Disposition: attachment; filename="invoice.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b1--\r\n",
    b"From: nobody@example.org\r\nSubject: \r\n\r\n",
)


class _NotLeanError(Exception):
    """The pipeline has a step the lean path has no equivalent for."""


@dataclasses.dataclass(frozen=True)
class _LeanBlock:
    """One fitted (RecordField, TfidfVectorizer) branch, as plain parts."""

    extract: Callable[[list[MailRecord]], Any]
    analyze: Callable[[Any], list[str]]
    vocabulary: dict[str, int]
    sublinear: bool
    idf: np.ndarray | None
    offset: int  # first column of this block in the union's output


def _lean_block(extract: Any, vectorizer: Any, offset: int) -> _LeanBlock:
    if not isinstance(extract, RecordField) or not isinstance(vectorizer, TfidfVectorizer):
        raise _NotLeanError("a feature branch is not (RecordField, TfidfVectorizer)")
    if not callable(vectorizer.analyzer) or not hasattr(vectorizer, "vocabulary_"):
        raise _NotLeanError("a vectorizer without a callable analyzer, or unfitted")
    if vectorizer.binary or vectorizer.norm != "l2" or vectorizer.input != "content":
        raise _NotLeanError("a vectorizer that is binary, not L2-normalised, or reads files")
    tfidf = vectorizer._tfidf
    return _LeanBlock(
        extract=extract.transform,
        analyze=vectorizer.analyzer,
        vocabulary=vectorizer.vocabulary_,
        sublinear=tfidf.sublinear_tf,
        idf=tfidf.idf_ if tfidf.use_idf else None,
        offset=offset,
    )


def _lean_union(union: Any) -> RecordFeaturize:
    """FeatureUnion.transform over (RecordField, TfidfVectorizer) branches, computed in one pass.

    Per branch and document it counts the analyzer's tokens in the vocabulary (CountVectorizer's counts,
    columns in ascending order as it sorts them), then applies TfidfTransformer's steps to the counts with the same numpy operations
    (log and + 1, idf product, in place on float32); each (document, branch) segment is L2-normalised by
    scikit-learn's own `inplace_csr_row_normalize_l2` on a matrix with one row per segment, whose data,
    laid out document by document and branch by branch, is then exactly the stacked union's: one sparse
    matrix built instead of two per branch and a stack.
    """
    if not isinstance(union, FeatureUnion) or union.transformer_weights:
        raise _NotLeanError("features are not an unweighted FeatureUnion")
    branches = [branch for _, branch in union.transformer_list]
    numbers: Callable[[list[MailRecord]], Any] | None = None
    if branches and isinstance(branches[-1], RecordField) and branches[-1].field == "numbers":
        numbers = branches.pop().transform
    blocks: list[_LeanBlock] = []
    offset = 0
    for branch in branches:
        if branch in ("drop", None) or not isinstance(branch, Pipeline) or len(branch.steps) != 2:
            raise _NotLeanError("a feature branch is not (RecordField, TfidfVectorizer)")
        (_, extract), (_, vectorizer) = branch.steps
        block = _lean_block(extract, vectorizer, offset)
        blocks.append(block)
        offset += len(block.vocabulary)
    if not blocks:
        raise _NotLeanError("no TF-IDF block")
    width = offset

    def featurize(records: list[MailRecord]) -> Any:
        count = len(records)
        # segments[document][block] = (column indices, float32 tf-idf weights before normalisation)
        segments: list[list[tuple[np.ndarray, np.ndarray]]] = [[] for _ in range(count)]
        for block in blocks:
            vocabulary = block.vocabulary
            columns: list[np.ndarray] = []
            weights: list[np.ndarray] = []
            for document in block.extract(records):
                tokens = block.analyze(document)
                # Each token's column (-1 if not in the vocabulary), looked up in C by map, then the
                # distinct columns in ascending order (as CountVectorizer sorts a row) with their counts.
                found = np.fromiter(map(vocabulary.get, tokens, repeat(-1)), dtype=np.int64, count=len(tokens))
                distinct, counts = np.unique(found[found >= 0], return_counts=True)
                columns.append(distinct.astype(np.int32))
                weights.append(counts.astype(np.intc))
            local = np.concatenate(columns) if columns else np.zeros(0, dtype=np.int32)
            data = np.concatenate(weights).astype(np.float32) if weights else np.zeros(0, dtype=np.float32)
            if block.sublinear:
                np.log(data, data)
                data += 1.0
            if block.idf is not None:
                data *= block.idf[local]
            start = 0
            for document, document_columns in enumerate(columns):
                stop = start + len(document_columns)
                segments[document].append((local[start:stop] + block.offset, data[start:stop]))
                start = stop
        flat = [segment for document in segments for segment in document]
        indices = np.concatenate([columns for columns, _ in flat]).astype(np.int32)
        data = np.concatenate([weights for _, weights in flat])
        segment_ends = np.cumsum([len(columns) for columns, _ in flat])
        segment_indptr = np.concatenate([[0], segment_ends]).astype(np.int32)
        by_segment = sp.csr_array((data, indices, segment_indptr), shape=(len(flat), width))
        inplace_csr_row_normalize_l2(by_segment)
        document_indptr = segment_indptr[:: len(blocks)]
        if numbers is None:
            return sp.csr_array((by_segment.data, by_segment.indices, document_indptr), shape=(count, width))
        return _append_numbers(by_segment.data, by_segment.indices, document_indptr, numbers(records), width)

    return featurize


def _append_numbers(
    data: np.ndarray, indices: np.ndarray, indptr: np.ndarray, numbers: np.ndarray, width: int
) -> sp.csr_array:
    """The rows of a CSR matrix with each row's non-zero numeric features appended after its own entries,
    in columns `width`…: what scipy's hstack of the TF-IDF blocks and the dense numbers block stores."""
    count, numeric_width = numbers.shape
    rows, columns = np.nonzero(numbers)  # row by row, columns ascending
    text_counts = np.diff(indptr)
    number_counts = np.bincount(rows, minlength=count)
    new_indptr = np.concatenate([[0], np.cumsum(text_counts + number_counts)]).astype(np.int32)
    out_data = np.empty(new_indptr[-1], dtype=np.float32)
    out_indices = np.empty(new_indptr[-1], dtype=np.int32)
    text_rows = np.repeat(np.arange(count), text_counts)
    text_positions = new_indptr[text_rows] + np.arange(len(data)) - indptr[text_rows]
    out_data[text_positions] = data
    out_indices[text_positions] = indices
    number_starts = np.concatenate([[0], np.cumsum(number_counts)])[:-1]
    number_positions = new_indptr[rows] + text_counts[rows] + np.arange(len(rows)) - number_starts[rows]
    out_data[number_positions] = numbers[rows, columns]
    out_indices[number_positions] = width + columns
    return sp.csr_array((out_data, out_indices, new_indptr), shape=(count, width + numeric_width))


def _lean_classifier(classifier: Any) -> Callable[[Any], np.ndarray]:
    # FixedThresholdClassifier.predict_proba is its estimator's: StackedEmailClassifier.predict_proba,
    # called directly (it validates nothing per call beyond its members' own).
    if not isinstance(classifier, FixedThresholdClassifier) or not isinstance(
        classifier.estimator_, StackedEmailClassifier
    ):
        raise _NotLeanError("the classifier is not a FixedThresholdClassifier around StackedEmailClassifier")
    inner = classifier.estimator_
    if list(inner.classes_) != ["ham", SPAM]:
        raise _NotLeanError(f"classes {list(inner.classes_)}")
    return lambda features: np.asarray(inner.predict_proba(features)[:, 1], dtype=float)


def _featurizer_steps(model: Any) -> tuple[ParseMessages, FeatureUnion]:
    if not is_email_model(model):
        raise ValueError("not an e-mail pipeline (features: parse → fields, classifier)")
    featurizer = model.steps[0][1]
    if len(featurizer.steps) != 2:
        raise ValueError("the e-mail featurizer is not (parse, fields)")
    return featurizer.steps[0][1], featurizer.steps[1][1]


def email_lean_featurizer(model: Any) -> Callable[[Sequence[bytes | str]], Any]:
    """Raw messages → the fitted featurizer's output (the same sparse matrix, entry for entry), through
    its own parse step, field extractors, analyzers, vocabularies and idf weights without scikit-learn's
    validation. Raises ValueError for a featurizer of another shape than `build_email_featurizer`'s."""
    parse, fields = _featurizer_steps(model)
    try:
        featurize = _lean_union(fields)
    except _NotLeanError as why:
        raise ValueError(str(why)) from None
    return lambda messages: featurize(parse.transform(messages))


def email_lean_scorer(model: Any) -> Scorer:
    """Raw messages → P(spam) through the fitted pipeline's own steps (`email_lean_featurizer`, then the
    StackedEmailClassifier's predict_proba) without the pipeline's and wrapper's per-call validation.
    Raises ValueError for a pipeline of another shape than `build_email_model`'s."""
    featurize = email_lean_featurizer(model)
    try:
        classify = _lean_classifier(model.steps[1][1])
    except _NotLeanError as why:
        raise ValueError(str(why)) from None

    def score(messages: Sequence[bytes | str]) -> np.ndarray:
        return classify(featurize(messages))

    return score


def compile_email_scorer(model: Any, probes: Sequence[bytes] = PROBE_MESSAGES) -> tuple[Scorer, str]:
    """The fastest scorer that reproduces the e-mail model's probabilities exactly, and its name:
    ("lean" when `email_lean_scorer` equals `predict_proba` bit for bit on the probe messages, one at a
    time and all together; otherwise "pipeline", the model's own call)."""
    return checked_scorer(model, lambda: email_lean_scorer(model), probes)


def is_email_model(model: Any) -> bool:
    """Whether `model` is a (features, classifier) pipeline whose featurizer starts by parsing raw e-mail:
    what `build_email_model` makes, and what `spamfilter.modeling.scoring` should hand to
    `compile_email_scorer`."""
    if not isinstance(model, Pipeline) or len(model.steps) != 2 or not isinstance(model.steps[0][1], Pipeline):
        return False
    return isinstance(model.steps[0][1].steps[0][1], ParseMessages)


# -- collection headers, examples, behavioural checks, monitored text -------------------------------------

# Header fields that record how a message travelled and how the SpamAssassin corpus was collected: the
# default model never reads them (tests/model/test_email_leakage.py proves its scores do not move).
COLLECTION_HEADER = re.compile(
    rb"(?:received|delivered-to|return-path|list-[!-9;-~]*|x-[!-9;-~]*|precedence|errors-to)$", re.I
)
_HEADER_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_COLLECTION_HEADERS_ADDED = (
    b"Received: from relay.example.net (relay.example.net [192.0.2.25])\n\tby mx.example.org (Postfix) with ESMTP id 4F2A1\n"
    b"\tfor <someone@example.org>; Mon, 2 Sep 2002 10:00:00 +0100 (IST)\n"
    b"Delivered-To: someone@example.org\n"
    b"Return-Path: <bounces@lists.example.org>\n"
    b"List-Id: Example users <users.lists.example.org>\n"
    b"List-Unsubscribe: <mailto:users-request@lists.example.org?subject=unsubscribe>\n"
    b"X-Beenthere: users@lists.example.org\n"
    b"X-Mailer: Example Mail 1.0\n"
    b"Precedence: bulk\n"
    b"Errors-To: users-admin@lists.example.org\n"
)


def _as_bytes(raw: bytes | str) -> bytes:
    return raw.encode("utf-8") if isinstance(raw, str) else raw


def _header_block_start(raw: bytes) -> int:
    # After an mbox "From " line, where a relay adds its fields.
    if raw.startswith(b"From "):
        newline = raw.find(b"\n")
        return len(raw) if newline == -1 else newline + 1
    return 0


def without_collection_headers(raw: bytes | str) -> bytes:
    """The message with every Received, Delivered-To, Return-Path, List-*, X-*, Precedence and Errors-To
    header field removed (continuation lines included); the rest byte for byte."""
    data = _as_bytes(raw)
    start = _header_block_start(data)
    lines = data[start:].split(b"\n")
    kept: list[bytes] = []
    dropping = False
    for index, line in enumerate(lines):
        if line in (b"", b"\r"):  # end of the header block: the rest is the body
            kept.extend(lines[index:])
            break
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        name = _HEADER_NAME.match(line)
        dropping = bool(name and COLLECTION_HEADER.match(name.group(1)))
        if not dropping:
            kept.append(line)
    return data[:start] + b"\n".join(kept)


def with_collection_headers(raw: bytes | str) -> bytes:
    """The message with a relay's and a mailing list's header fields added at the top of its header block
    (Received, Delivered-To, Return-Path, List-Id, List-Unsubscribe, X-Beenthere, X-Mailer, Precedence,
    Errors-To), in the message's own line ending."""
    data = _as_bytes(raw)
    start = _header_block_start(data)
    added = _COLLECTION_HEADERS_ADDED.replace(b"\n", b"\r\n") if b"\r\n" in data[:2048] else _COLLECTION_HEADERS_ADDED
    return data[:start] + added + data[start:]


def _example(sender: str, subject: str, body: str, html: bool = False, extra: str = "") -> str:
    content_type = "text/html; charset=utf-8" if html else "text/plain; charset=utf-8"
    return (
        f"From: {sender}\nTo: you@example.org\nSubject: {subject}\nDate: Mon, 2 Sep 2002 10:00:00 +0100\n"
        f"{extra}MIME-Version: 1.0\nContent-Type: {content_type}\n\n{body}\n"
    )


OBVIOUS_SPAM_EMAILS: tuple[str, ...] = (
    _example(
        '"Claims Dept" <winner8812@prizes-online.biz>',
        "CONGRATULATIONS!!! You have WON $1,000,000 - claim NOW",
        "<html><body><p><b>YOU ARE A WINNER!</b> Your e-mail address won our international lottery.</p>"
        '<p>To claim your $1,000,000 cash prize <a href="http://203.0.113.9/claim.php?id=8812">CLICK HERE</a> '
        "and send your bank details today. This offer expires in 24 hours!</p>"
        '<p>To be removed from our mailing list <a href="http://203.0.113.9/remove.php">click here</a>.</p></body></html>',
        html=True,
        extra="Reply-To: claims@lottery-payouts.ru\n",
    ),
    _example(
        "Online Pharmacy <deals@cheap-meds-4u.info>",
        "Cheap V1agra, no prescription needed!!! 80% OFF",
        "Best prices on Viagra, Cialis and Xanax. No prescription required, discreet shipping worldwide.\n"
        "ORDER NOW: http://www.cheap-meds-4u.info/order?ref=spam\n\n"
        "You received this because you opted in. To unsubscribe reply with REMOVE in the subject.",
    ),
    _example(
        "Dr. James Okoro <jokoro2002@yahoo.com>",
        "URGENT BUSINESS PROPOSAL - STRICTLY CONFIDENTIAL",
        "Dear Sir,\n\nI am a senior official of the Central Bank. I seek your assistance to transfer the sum "
        "of US$25,500,000.00 (TWENTY FIVE MILLION FIVE HUNDRED THOUSAND DOLLARS) into your bank account. "
        "You will receive 30% of the total sum for your assistance. Kindly send your full name, bank account "
        "details and private telephone number. Please treat this as strictly confidential.\n\nRegards,\nDr. James Okoro",
    ),
)
OBVIOUS_HAM_EMAILS: tuple[str, ...] = (
    _example(
        "Alice Martin <alice@work.example.com>",
        "Re: review of the parser patch",
        "Hi Bob,\n\nThanks for the patch. I had a look this morning: the change to the header unfolding looks "
        "right, but the test for folded subjects still fails on my machine with Python 3.11. Could you run it "
        "again before we merge?\n\nCheers,\nAlice\n\n> I pushed the fix to the branch yesterday evening.\n"
        "> Let me know what you think.",
    ),
    _example(
        "Tom Byrne <tom@example.ie>",
        "Dinner on Saturday",
        "Hey,\n\nAre you and Sarah still coming over on Saturday? We were thinking of eating around 7. "
        "I can pick you up from the station if the trains are off again.\n\nTom",
    ),
    _example(
        "Kevin O'Neill <kevin@uni.example.edu>",
        "Meeting notes from Tuesday",
        "Hi all,\n\nAttached below are the notes from Tuesday's meeting. Action items: Mary to update the "
        "backup scripts, John to look at the disk quota on the build server, and I will send the draft of "
        "the report by Friday. Next meeting is the same time next week.\n\nKevin",
    ),
)
# Spam then ham: the input example logged with the MLflow model (its signature: a column of strings).
EXAMPLE_MESSAGES: tuple[str, ...] = (OBVIOUS_SPAM_EMAILS[0], OBVIOUS_HAM_EMAILS[0])


def behavioural_checks(
    sample: Sequence[bytes | str], predict: Callable[[list[Any]], list[str]]
) -> list[BehaviouralResult]:
    """Invariance to collection headers on `sample` (adding a relay's and a mailing list's header fields
    changes no label: the model must not read them), obvious spam and ham e-mail predicted as such."""
    messages = list(sample)
    original = predict(messages)
    changed = predict([with_collection_headers(raw) for raw in messages])
    flipped = [raw for raw, before, after in zip(messages, original, changed, strict=True) if before != after]
    results = [
        BehaviouralResult(
            "collection_header_invariance",
            not flipped,
            len(flipped),
            len(messages),
            [_as_bytes(raw)[:80].decode("utf-8", "replace") for raw in flipped[:5]],
        )
    ]
    for name, messages_expected, expected in (
        ("obvious_spam", OBVIOUS_SPAM_EMAILS, SPAM),
        ("obvious_ham", OBVIOUS_HAM_EMAILS, HAM),
    ):
        labels = predict(list(messages_expected))
        wrong = [raw for raw, label in zip(messages_expected, labels, strict=True) if label != expected]
        results.append(
            BehaviouralResult(name, not wrong, len(wrong), len(messages_expected), [raw[:80] for raw in wrong[:5]])
        )
    return results


def monitored_texts(messages: Sequence[bytes | str], limits: Any = None) -> list[str]:
    """Each message's subject and body text (a line apart), as the parser reads them: what the monitor's
    text checks describe. A message the parser refuses counts as empty text."""
    parse_limits = mail_limits(limits) or MailLimits()
    texts = []
    for raw in messages:
        try:
            record = parse_message(raw, parse_limits, DEFAULT_FEATURE_HEADER_FIELDS)
        except MailError:
            texts.append("")
            continue
        texts.append(f"{record.subject}\n{record.body_text}")
    return texts
