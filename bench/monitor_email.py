"""E-mail monitor benchmark on a real drift: the SpamAssassin public corpus's time split.

`easy-ham-2` and `spam-2` were collected after `easy-ham-1`, `hard-ham-1` and `spam-1` (see
../shared/data/SPAMASSASSIN.md). The first generation, de-duplicated on (subject, body) as the ingest
does, is cut into `--rotations` stratified parts; in rotation k, part k is the *traffic pool* and the
other parts are split as the pipeline splits its data (ingest.test_size, ingest.seed) into a training
split (the model, the reference's texts and e-mail descriptors) and a reference held-out split (the
reference's scores, rates and metrics), the profile built as the `evaluate` stage builds it. Windows
are dealt round-robin over the rotations and checked against their rotation's reference with
`decision.run_checks` (every check: the windows are labelled and carry the whole messages):

  * clean: 500 messages drawn from the rotation's traffic pool, first-generation mail neither its
    model nor its reference saw                                                    (target: <= 5% alarms)
  * later: 500 messages drawn from the later generation (de-duplicated against the first), as they
    come: about half spam against the first generation's 15%                        (target: >= 95% detected)
  * later at the first generation's spam share: the same, drawn to the reference's spam share, so
    the spam-rate checks have nothing to see: what the content and e-mail checks catch alone

For each: the alarm rate with its exact 95% interval, how often each check fired, and how often the
e-mail checks alone (size, HTML share, links, attachments, subject length, unseen sender and link
domains, charset mix) fired.

Usage: python bench/monitor_email.py [--windows 100] [--later-windows 100] [--same-share-windows 50]
                                     [--rotations 4] [--corpus PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import binomtest
from sklearn.model_selection import StratifiedKFold

from spamfilter.config import EmailParams
from spamfilter.data import corpus, mail_corpus, mail_dataset
from spamfilter.data.mail_dataset import MailMessage
from spamfilter.modeling import channels
from spamfilter.modeling.metrics import classification_metrics
from spamfilter.modeling.pipeline import assemble, model_threshold, predict_labels, spam_probability
from spamfilter.monitoring import decision, profile
from spamfilter.monitoring.mail_descriptors import MailFeatures, features_of_messages

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "data" / "datasets-spam-assassin-0.2.3.tgz"
FIRST = ("easy-ham-1", "hard-ham-1", "spam-1")
LATER = ("easy-ham-2", "spam-2")
WINDOW = 500
# Seeds of the window draws: the three cases never share a draw.
CLEAN_SEED, LATER_SEED, SAME_SHARE_SEED = 0, 10_000, 20_000
MAIL_CHECKS = frozenset(decision.MAIL_CHECK_NAMES)


def email_params(path: Path) -> EmailParams:
    """The e-mail channel's params from params.yaml (`channels.email`), else the defaults."""
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    section = ((data or {}).get("channels") or {}).get("email")
    return EmailParams.model_validate(section) if section else EmailParams()


@dataclass
class Pool:
    """Messages with what the checks read of them: monitored text and e-mail features."""

    messages: list[MailMessage]
    texts: list[str]
    features: list[MailFeatures]

    @property
    def labels(self) -> list[str]:
        return [m.label for m in self.messages]


def pool_of(messages: list[MailMessage], params: EmailParams) -> Pool:
    raws = [m.raw for m in messages]
    return Pool(
        messages,
        channels.monitored_texts("email", raws),
        features_of_messages(raws, mail_dataset.limits_of(params.ingest.limits)),
    )


@dataclass
class Rotation:
    index: int
    traffic: list[int]  # indices into the first generation's pool
    reference: decision.Reference
    model: Any
    threshold: float
    f1: float
    train_rows: int
    held_out_rows: int
    scores: dict[str, np.ndarray]  # "first" / "later" → the model's score of every message of that pool


def build_rotation(
    index: int, traffic: list[int], rest: list[int], first: Pool, later: Pool, params: EmailParams
) -> Rotation:
    train_idx, held_idx = corpus.split(
        [_Indexed(i, first.messages[i].label) for i in rest], params.ingest.test_size, params.ingest.seed
    )
    train = [t.index for t in train_idx]
    held = [h.index for h in held_idx]
    raws = [first.messages[i].raw for i in train]
    labels = [first.messages[i].label for i in train]
    featurizer = channels.build_featurizer(params)
    model = assemble(featurizer, channels.build_classifier(params).fit(featurizer.fit_transform(raws), labels))
    threshold = model_threshold(model)
    scores = {
        "first": spam_probability(model, [m.raw for m in first.messages]),
        "later": spam_probability(model, [m.raw for m in later.messages]),
    }
    held_scores = scores["first"][held]
    truth = [first.messages[i].label for i in held]
    predicted = predict_labels(held_scores, threshold)
    metrics = classification_metrics(truth, predicted, held_scores)
    built = profile.build_profile(
        [first.texts[i] for i in train],
        labels,
        held_scores.tolist(),
        truth,
        predicted,
        metrics,
        threshold,
        channel="email",
        mail=[first.features[i] for i in train],
    )
    reference = profile.reference_from_profile(json.loads(json.dumps(built)), f"rotation {index}", "email")
    return Rotation(index, traffic, reference, model, threshold, metrics["f1"], len(train), len(held), scores)


@dataclass(frozen=True)
class _Indexed:
    """A message by its index, with its label: what `corpus.split` stratifies on."""

    index: int
    label: str


@dataclass
class Outcome:
    alarms: int
    mail_alarms: int  # windows where at least one e-mail check fired
    windows: int
    fired: Counter[str]
    seconds_per_window: float

    @property
    def rate(self) -> float:
        return self.alarms / self.windows

    def interval(self, alarms: int | None = None) -> tuple[float, float]:
        """Exact (Clopper–Pearson) 95% interval of a rate over these windows."""
        ci = binomtest(self.alarms if alarms is None else alarms, self.windows).proportion_ci(0.95)
        return float(ci.low), float(ci.high)


def window_of(pool: Pool, indices: Sequence[int], scores: np.ndarray, threshold: float) -> decision.Window:
    window_scores = scores[list(indices)]
    return decision.Window(
        lengths=np.array([len(pool.texts[i]) for i in indices], dtype=float),
        scores=window_scores,
        predicted=predict_labels(window_scores, threshold),
        texts=[pool.texts[i] for i in indices],
        truth=[pool.messages[i].label for i in indices],
        mail=[pool.features[i] for i in indices],
    )


def run_case(
    rotations: Sequence[Rotation],
    pool: Pool,
    which: str,
    count: int,
    first_seed: int,
    params: EmailParams,
    spam_share: float | None = None,
) -> Outcome:
    """`count` windows of WINDOW messages, dealt round-robin over the rotations: from each rotation's
    traffic pool (`which` = "first") or from the later generation ("later"), at `spam_share` if given."""
    alarms = mail_alarms = 0
    fired: Counter[str] = Counter()
    started = time.perf_counter()
    labels = np.array(pool.labels)
    for i in range(count):
        rotation = rotations[i % len(rotations)]
        rng = np.random.default_rng(first_seed + i)
        candidates = np.array(rotation.traffic if which == "first" else range(len(pool.messages)))
        if spam_share is None:
            indices = rng.choice(candidates, WINDOW, replace=False)
        else:
            n_spam = round(WINDOW * spam_share)
            spam = candidates[labels[candidates] == "spam"]
            ham = candidates[labels[candidates] == "ham"]
            indices = np.concatenate(
                [rng.choice(spam, n_spam, replace=False), rng.choice(ham, WINDOW - n_spam, replace=False)]
            )
        result = decision.run_checks(
            rotation.reference,
            window_of(pool, indices.tolist(), rotation.scores[which], rotation.threshold),
            params.monitor,
        )
        names = {c.name for c in result.checks if c.drifted}
        alarms += result.retrain_needed
        mail_alarms += bool(names & MAIL_CHECKS)
        fired.update(names)
        print(".", end="", flush=True)
    print()
    return Outcome(alarms, mail_alarms, count, fired, (time.perf_counter() - started) / count)


def report(name: str, outcome: Outcome, target: str) -> None:
    low, high = outcome.interval()
    mail_low, mail_high = outcome.interval(outcome.mail_alarms)
    print(
        f"{name}: retrain_needed on {outcome.alarms} of {outcome.windows} windows, {outcome.rate:.1%} "
        f"(95% interval {low:.1%}–{high:.1%}){target}; {outcome.seconds_per_window:.1f} s/window"
    )
    print(
        f"  e-mail checks alone fired on {outcome.mail_alarms / outcome.windows:.1%} ({mail_low:.1%}–{mail_high:.1%})"
    )
    if outcome.fired:
        shown = ", ".join(f"{check} {count / outcome.windows:.0%}" for check, count in outcome.fired.most_common())
        print(f"  checks that fired: {shown}")


def load(path: Path, params: EmailParams) -> tuple[Pool, Pool]:
    """The first and the later generation, de-duplicated on (subject, body) as the ingest does (a later
    message that repeats an earlier one is dropped from the later generation)."""
    limits = mail_dataset.limits_of(params.ingest.limits)
    read = mail_corpus.read_mail_corpus(path, params.ingest.label_folders, limits.max_bytes)
    generations = [
        mail_corpus.MailCorpus([m for m in read.messages if m.group in groups], [], [], read.format)
        for groups in (FIRST, LATER)
    ]
    dataset = mail_dataset.deduplicate_mail(generations, limits)
    first = [m for m in dataset.messages if m.group in FIRST]
    later = [m for m in dataset.messages if m.group in LATER]
    return pool_of(first, params), pool_of(later, params)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--windows", type=int, default=100, help="clean first-generation windows")
    parser.add_argument("--later-windows", type=int, default=100, help="later-generation windows")
    parser.add_argument(
        "--same-share-windows", type=int, default=50, help="later-generation windows at the first's spam share"
    )
    parser.add_argument("--rotations", type=int, default=4)
    args = parser.parse_args()
    if not args.corpus.exists():
        print(f"corpus not found: {args.corpus}", file=sys.stderr)
        return 1
    params = email_params(REPO / "params.yaml")

    started = time.perf_counter()
    first, later = load(args.corpus, params)
    print(
        f"corpus: first generation {len(first.messages)} distinct messages ({first.labels.count('spam')} spam), "
        f"later {len(later.messages)} ({later.labels.count('spam')} spam); read and parsed in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    started = time.perf_counter()
    parts = StratifiedKFold(args.rotations, shuffle=True, random_state=params.ingest.seed).split(
        first.messages, first.labels
    )
    rotations = [
        build_rotation(index, traffic.tolist(), rest.tolist(), first, later, params)
        for index, (rest, traffic) in enumerate(parts)
    ]
    one = rotations[0]
    print(
        f"{args.rotations} rotations; each: traffic pool {len(one.traffic)}, training split {one.train_rows}, "
        f"reference held-out {one.held_out_rows} (disjoint); model {params.train.model}, held-out F1 "
        f"{', '.join(f'{r.f1:.3f}' for r in rotations)}; set-up {time.perf_counter() - started:.0f} s",
    )
    monitor = params.monitor
    print(
        f"monitor: alpha {monitor.alpha} with {monitor.correction} correction, windows of {WINDOW} labelled "
        "messages with their text and e-mail fields\n",
        flush=True,
    )
    clean = run_case(rotations, first, "first", args.windows, CLEAN_SEED, params)
    report("clean (first generation)", clean, f"; target <= 5%: {'ok' if clean.rate <= 0.05 else 'MISSED'}")
    drifted = run_case(rotations, later, "later", args.later_windows, LATER_SEED, params)
    report("later generation", drifted, f"; target >= 95%: {'ok' if drifted.rate >= 0.95 else 'MISSED'}")
    share = first.labels.count("spam") / len(first.messages)
    if args.same_share_windows:
        same = run_case(rotations, later, "later", args.same_share_windows, SAME_SHARE_SEED, params, share)
        report(f"later generation at the first's spam share ({share:.0%})", same, "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
