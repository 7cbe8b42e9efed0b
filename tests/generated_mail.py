"""Generated e-mail for the monitor's tests: raw RFC 822 messages with chosen senders, subjects, bodies,
links, HTML, attachments and charsets, and labelled corpora of them in two generations (the second with
other sender and link domains, more HTML, other charsets and longer bodies: a drift, as the
SpamAssassin corpus's later groups are)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

_HAM_SUBJECTS = ("Meeting notes for {day}", "Re: {topic} question", "Lunch on {day}?", "Patch for the {topic} bug")
_SPAM_SUBJECTS = ("WIN a FREE {prize} now", "Cheap {prize} - limited offer", "Your {prize} is waiting, act now")
_HAM_LINES = (
    "Hi {name}, the {topic} review moved to {day} afternoon.",
    "I pushed a fix for the {topic} issue, can you have a look?",
    "Thanks for the notes on {topic}, I will reply by {day}.",
    "Are you around on {day} to go through the {topic} plan?",
)
_SPAM_LINES = (
    "Congratulations {name}! You have been selected to receive a free {prize}.",
    "Click below to claim your {prize} before midnight, no purchase required.",
    "Earn money from home and get a bonus {prize} today only.",
    "Lowest prices on {prize}, satisfaction guaranteed, order now.",
)
_WORDS = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"),
    "topic": ("parser", "release", "budget", "backup", "scheduler", "website"),
    "name": ("Alice", "Bob", "Carol", "Dave", "Erin"),
    "prize": ("laptop", "cruise", "watch", "phone", "gift card"),
}


@dataclass(frozen=True)
class Generation:
    """Where one generation's mail comes from and links to, how much of it is HTML, and its charsets."""

    ham_senders: tuple[str, ...]
    spam_senders: tuple[str, ...]
    ham_links: tuple[str, ...]
    spam_links: tuple[str, ...]
    html_ham: float
    html_spam: float
    charsets: tuple[str, ...]
    extra_lines: int
    # Lines and subjects of this generation's own (none for the first): new topics and new campaigns.
    ham_lines: tuple[str, ...] = ()
    spam_lines: tuple[str, ...] = ()
    spam_subjects: tuple[str, ...] = ()


GENERATIONS = {
    1: Generation(
        ham_senders=("lists.example.org", "work.example.com", "uni.example.edu"),
        spam_senders=("promo.example.biz", "deals.example.info", "offers.example.net"),
        ham_links=("docs.example.org", "git.example.com"),
        spam_links=("buy.example.biz", "claim.example.info"),
        html_ham=0.0,
        html_spam=0.5,
        charsets=("us-ascii", "us-ascii", "iso-8859-1"),
        extra_lines=0,
    ),
    2: Generation(
        ham_senders=("chat.example.io", "team.example.dev", "mail.example.co"),
        spam_senders=("win.example.top", "prize.example.click", "bonus.example.xyz"),
        ham_links=("wiki.example.io", "board.example.dev"),
        spam_links=("get.example.top", "free.example.click"),
        html_ham=0.6,
        html_spam=0.9,
        charsets=("utf-8", "utf-8", "windows-1252"),
        extra_lines=6,
        ham_lines=(
            "The standup moved to {day}, join the video call from the calendar invite.",
            "Deploy of the {topic} service is green, rollback plan is in the runbook.",
        ),
        spam_lines=(  # a campaign written like the first generation's ham: a model trained on it misses these
            "Hi {name}, please review the attached invoice for the {topic} work and pay it by {day}.",
            "Can you have a look at the {topic} payment details and send the wire today?",
            "Thanks for the notes, the updated bank details for the {topic} invoice are below.",
        ),
        spam_subjects=("Re: {topic} invoice", "Payment for the {topic} review", "Re: {topic} question"),
    ),
}


def make_email(
    sender: str,
    subject: str,
    body: str,
    html: bool = False,
    links: Sequence[str] = (),
    attachment: bytes | None = None,
    charset: str = "us-ascii",
) -> bytes:
    """One raw message: a text/plain (or text/html) body in `charset` with `links`, optionally an attachment."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "someone@example.net"
    message["Subject"] = subject
    text = body + "".join(f"\nSee https://{link}/page" for link in links)
    if html:
        anchors = "".join(f'<p><a href="https://{link}/page">here</a></p>' for link in links)
        text = f"<html><body><p>{body}</p>{anchors}</body></html>"
    if charset == "us-ascii":
        text = text.encode("ascii", "replace").decode("ascii")
    message.set_content(text, subtype="html" if html else "plain", charset=charset)
    if attachment is not None:
        message.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="data.bin")
    return message.as_bytes()


def make_corpus(n_ham: int, n_spam: int, seed: int, generation: int = 1) -> list[tuple[str, bytes]]:
    """Distinct labelled messages of one generation, shuffled: (label, raw)."""
    rng = random.Random(seed)
    kind = GENERATIONS[generation]
    out: list[tuple[str, bytes]] = []
    subjects: tuple[str, ...]
    lines: tuple[str, ...]
    for label, count in (("ham", n_ham), ("spam", n_spam)):
        if label == "ham":
            subjects, lines = _HAM_SUBJECTS, kind.ham_lines * 3 + _HAM_LINES
        else:  # a generation's own campaigns replace the old ones where it has them
            subjects, lines = kind.spam_subjects or _SPAM_SUBJECTS, kind.spam_lines or _SPAM_LINES
        spam = label == "spam"
        senders = kind.spam_senders if spam else kind.ham_senders
        links = kind.spam_links if spam else kind.ham_links
        for i in range(count):
            words = {key: rng.choice(values) for key, values in _WORDS.items()}
            body_lines = [rng.choice(lines).format(**words) for _ in range(2 + rng.randrange(3) + kind.extra_lines)]
            # One message in ten comes from a domain of its own (the long tail of real senders).
            domain = f"host{rng.randrange(10**6)}.example.net" if rng.random() < 0.1 else rng.choice(senders)
            out.append(
                (
                    label,
                    make_email(
                        sender=f"{words['name'].lower()}{i}@{domain}",
                        subject=f"{rng.choice(subjects).format(**words)} #{seed}-{i}",
                        body="\n".join(body_lines) + f"\nref {rng.randrange(10**9)}",
                        html=rng.random() < (kind.html_spam if spam else kind.html_ham),
                        links=rng.sample(links, rng.randrange(len(links) + 1)),
                        attachment=b"\x00" * 64 if rng.random() < 0.05 else None,
                        charset=rng.choice(kind.charsets),
                    ),
                )
            )
    rng.shuffle(out)
    return out


def write_corpus(root: Path, messages: Sequence[tuple[str, bytes]]) -> Path:
    """`root/ham/*.eml` and `root/spam/*.eml`: a corpus the e-mail ingest (and the monitor's batches) read."""
    for number, (label, raw) in enumerate(messages):
        path = root / label / f"{number:05d}.eml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(raw)
    return root
