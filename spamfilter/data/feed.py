"""A simulated production feed: labelled batches sampled from a corpus, with drift injected for drills.

Drift modes, each with a `strength` in [0, 1] and a documented *moderate* strength (what
`bench/monitor.py` must catch 95% of the time in 500-message windows):

  none          a plain random sample.
  spam_surge    the spam share rises from the corpus's rate r to r + strength·(1 − r).  Moderate: 0.15.
  new_campaign  a share `strength` of the batch is spam from a campaign whose vocabulary the 2012-era
                corpus never saw (parcel fees, crypto airdrops, account suspensions...).  Moderate: 0.1.
  length_shift  a share `strength` of messages is joined with 1–2 further messages of the same label,
                as when a gateway stops splitting long SMS.  Moderate: 0.3.
  vocab_shift   in a share `strength` of messages, a third of the words are swapped for present-day
                words the corpus never saw (apps, brands); labels unchanged.  Moderate: 0.3.

The sampling functions are pure (a seeded `random.Random`); `write_batch` is the thin writer of a
timestamped `label<TAB>text` file under `data/new/`, validated exactly as the `ingest` stage
validates the raw corpus before it is written.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, get_args

from spamfilter import files
from spamfilter.data.corpus import Message, parse_corpus
from spamfilter.errors import DataError
from spamfilter.labels import LABELS

DriftMode = Literal["none", "spam_surge", "new_campaign", "length_shift", "vocab_shift"]
DRIFT_MODES: tuple[str, ...] = get_args(DriftMode)
MODERATE_STRENGTH: dict[str, float] = {
    "none": 0.0,
    "spam_surge": 0.15,
    "new_campaign": 0.1,
    "length_shift": 0.3,
    "vocab_shift": 0.3,
}

_CAMPAIGN_TEMPLATES = (
    "{courier}: your parcel {ref} is held at our depot due to an unpaid customs fee of {fee}. Reschedule delivery at {url}",
    "{courier}: we missed you today. Your package {ref} will be returned unless you confirm your address at {url}",
    "Your {service} account has been suspended due to unusual sign-in activity. Verify your identity within 24h: {url}",
    "{service}: your subscription payment was declined. Update your billing details at {url} to avoid losing access",
    "{coin} airdrop is LIVE! Claim {tokens} free tokens to your wallet before midnight {url}",
    "Invest {fee} in {coin} today and our trading bot guarantees {pct}% daily returns. Join on Telegram {url}",
    "HMRC: you are eligible for a tax refund of {fee}. Submit your claim securely at {url}",
    "NHS: you have been in close contact with someone who tested positive for covid. Order a test kit at {url}",
    "Hi mum, I dropped my phone in the toilet, this is my new number. Can you message me on whatsapp? {ref}",
    "Your {service} verification code is {code}. If you did not request this, secure your account at {url}",
)
_COURIERS = ("Evri", "DPD", "Royal Mail", "DHL Express", "FedEx", "Yodel", "ParcelForce")
_SERVICES = ("Netflix", "PayPal", "Apple ID", "iCloud", "Disney+", "Spotify", "Amazon Prime", "Coinbase", "Revolut")
_COINS = ("Bitcoin", "Ethereum", "Dogecoin", "Solana", "Shiba Inu", "Cardano")
_TLDS = ("info", "net", "com", "org")
# Present-day words absent from the 2012 SMS corpus, for vocab_shift.
MODERN_WORDS = (
    "whatsapp",
    "zoom",
    "netflix",
    "uber",
    "deliveroo",
    "instagram",
    "tiktok",
    "snapchat",
    "spotify",
    "airpods",
    "covid",
    "lockdown",
    "vaccine",
    "facetime",
    "podcast",
    "hashtag",
    "selfie",
    "emoji",
    "doordash",
    "venmo",
    "airbnb",
    "youtube",
    "streaming",
    "wfh",
    "teams",
    "gifs",
    "memes",
    "vlog",
    "influencer",
    "discord",
)


def campaign_message(rng: random.Random) -> str:
    """One message of the new spam campaign."""
    courier = rng.choice(_COURIERS)
    slug = courier.lower().replace(" ", "")
    return rng.choice(_CAMPAIGN_TEMPLATES).format(
        courier=courier,
        service=rng.choice(_SERVICES),
        coin=rng.choice(_COINS),
        ref=f"{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{rng.randint(10**7, 10**8 - 1)}",
        fee=f"£{rng.randint(1, 3)}.{rng.randint(10, 99)}",
        url=f"https://{slug}-{rng.choice(('secure', 'track', 'verify', 'portal'))}{rng.randint(10, 999)}.{rng.choice(_TLDS)}/{rng.randint(1000, 9999)}",
        tokens=rng.choice((500, 1000, 2500, 5000)),
        pct=rng.choice((3, 5, 8, 12)),
        code=rng.randint(100000, 999999),
    )


def _swap_words(text: str, rng: random.Random) -> str:
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if w.isalpha()]
    if not candidates:
        return f"{text} {rng.choice(MODERN_WORDS)}"
    for i in rng.sample(candidates, max(1, len(candidates) // 3)):
        words[i] = rng.choice(MODERN_WORDS)
    return " ".join(words)


def sample_messages(
    pool: Sequence[Message], n: int, rng: random.Random, spam_share: float | None = None
) -> list[Message]:
    """`n` messages from `pool`, without replacement while the pool (per label) lasts; with
    `spam_share`, that share of spam (rounded), else the pool's own mix."""
    if not pool:
        raise DataError("the source corpus has no messages to sample")
    if spam_share is None:
        return _draw(list(pool), n, rng)
    spam = [m for m in pool if m.is_spam]
    ham = [m for m in pool if not m.is_spam]
    n_spam = round(n * spam_share)
    if (n_spam and not spam) or (n - n_spam and not ham):
        raise DataError("the source corpus needs both ham and spam for this drift mode")
    out = _draw(spam, n_spam, rng) + _draw(ham, n - n_spam, rng)
    rng.shuffle(out)
    return out


def _draw(pool: list[Message], n: int, rng: random.Random) -> list[Message]:
    if n <= len(pool):
        return rng.sample(pool, n)
    return [rng.choice(pool) for _ in range(n)]


def inject_drift(
    batch: Sequence[Message], pool: Sequence[Message], mode: str, strength: float, rng: random.Random
) -> list[Message]:
    """Apply a drift mode (other than spam_surge, which is a sampling choice) to a sampled batch."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength must be within [0, 1], got {strength}")
    out = list(batch)
    chosen = rng.sample(range(len(out)), round(len(out) * strength)) if out else []
    if mode in ("none", "spam_surge"):
        return out
    if mode == "new_campaign":
        for i in chosen:
            out[i] = Message("spam", campaign_message(rng), "feed:new_campaign")
    elif mode == "length_shift":
        by_label = {label: [m for m in pool if m.label == label] for label in LABELS}
        for i in chosen:
            same = by_label[out[i].label] or [out[i]]
            extra = [rng.choice(same).text for _ in range(rng.randint(1, 2))]
            out[i] = Message(out[i].label, " ".join([out[i].text, *extra]), "feed:length_shift")
    elif mode == "vocab_shift":
        for i in chosen:
            out[i] = Message(out[i].label, _swap_words(out[i].text, rng), "feed:vocab_shift")
    else:
        raise ValueError(f"unknown drift mode {mode!r}: expected one of {', '.join(DRIFT_MODES)}")
    return out


def make_batch(pool: Sequence[Message], n: int, mode: str, strength: float, seed: int | None) -> list[Message]:
    """A labelled batch of `n` messages from `pool` with `mode` drift at `strength`."""
    if mode not in DRIFT_MODES:
        raise ValueError(f"unknown drift mode {mode!r}: expected one of {', '.join(DRIFT_MODES)}")
    if n < 1:
        raise ValueError(f"batch size must be at least 1, got {n}")
    rng = random.Random(seed)
    spam_share = None
    if mode == "spam_surge":
        base = sum(m.is_spam for m in pool) / max(len(pool), 1)
        spam_share = base + strength * (1.0 - base)
    batch = sample_messages(pool, n, rng, spam_share)
    return inject_drift(batch, pool, mode, strength, rng)


def to_tsv(messages: Sequence[Message]) -> str:
    """The batch in the raw corpus's form: a `label<TAB>text` header, one message per line."""
    lines = ["label\ttext"]
    for m in messages:
        text = " ".join(m.text.split())  # the format has no room for tabs or newlines in a text
        lines.append(f"{m.label}\t{text}")
    return "\n".join(lines) + "\n"


def batch_name(mode: str, at: datetime) -> str:
    return f"batch-{at.astimezone(UTC).strftime('%Y%m%dT%H%M%S%fZ')}-{mode}.tsv"


def write_batch(messages: Sequence[Message], out_dir: Path, mode: str, at: datetime | None = None) -> Path:
    """Validate the batch as `ingest` will, then write it atomically under `out_dir`."""
    content = to_tsv(messages)
    path = Path(out_dir) / batch_name(mode, at or datetime.now(UTC))
    parsed = parse_corpus(content.encode("utf-8"), str(path))
    if parsed.bad_rows or len(parsed.messages) != len(messages):
        first = parsed.bad_rows[0] if parsed.bad_rows else "row count changed on parsing"
        raise DataError(f"{path}: the generated batch would not pass validation ({first})")
    if path.exists():
        raise DataError(f"{path}: a batch with this name already exists")
    files.write_text(path, content)
    return path
