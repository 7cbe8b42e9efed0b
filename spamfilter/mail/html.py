"""HTML parts to text and link targets: `html_to_text(html) -> HtmlText(text, links)`.

Text is what a reader sees: script, style and template content and comments are dropped, entities are
decoded, block elements (p, div, br, li, tr, td, headings, ...) end a line and inline markup joins without
a space, so `<b>F</b>REE` stays one word. Links are the `href` of every `<a>` and `<area>`, in document
order, as written (entities decoded): URL extraction decides which are web links.

Library: selectolax (lexbor), chosen by measurement on the 1,210 HTML parts of the SpamAssassin corpus
(bench/html_to_text.py, one core, median part 4.5 KB):

    converter                          parts/s   median ms   output
    selectolax, block-aware             ~3,000     0.22      reference
    lxml, block-aware walk              ~1,750     0.36      same words on 97% of parts
    inscriptis (on lxml)                  ~320     1.69      same text, layout-aware; 10x slower

selectolax is the fastest and its text is as good as inscriptis's for a bag-of-words model. But all
three build a DOM, and on crafted HTML tree building goes super-linear: in lexbor, 16,000 nested
`<div>` take 2.5 s (every block start tag scans the open-element stack) and 1,000 distinct `<font>`
re-opened around 4,000 `<div>` (HTML's "reconstruct the active formatting elements") take 9 s and 2 GB
for 61 KB of input; 10,000 attributes on one tag take 0.5 s (quadratic duplicate check; libxml2 is
worse: 100,000 take 260 s), and libxml2 stops at depth 255 and then drops the whole text. Spam is
adversarial input, so before lexbor sees the HTML a linear pre-pass (C regular expressions, no
backtracking) keeps only what text extraction needs: comments and script/style/template elements go,
block tags become line breaks, `<a>`/`<area>` tags are rewritten to their `href` alone, and every other
tag goes. lexbor then builds a flat tree (depth <= 3, at most one open `<a>`) in linear time, decodes
entities in text and attributes by the HTML standard, and yields text and hrefs. The text has the same
words as the plain DOM conversion on 94% of the corpus's parts; the rest differ on broken markup, by
design: source order is kept (a DOM moves stray table text before the table), and markup inside
`<title>`, `<textarea>` or `<xmp>` is dropped rather than shown as text. A comment or script between
two letters joins them, as on screen ("V<!-- -->iagra" reads "Viagra").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

# The inside of a tag after its name, as the HTML tokenizer reads it: a quoted value may hold ">".
# Possessive, and its alternatives start with distinct characters, so it never backtracks.
_ATTRIBUTES = r"""(?:[^>"'=]++|=\s*+"[^"]*+"|=\s*+'[^']*+'|["'=])*+"""
_NAME_END = r"(?![\w:-])"
# One pass over the markup, left to right as the HTML tokenizer reads it, so a tag inside a comment or
# an attribute value is not taken for a tag:
_MARKUP = re.compile(
    r"<(?:"
    # a comment ("<!-->" and "<!--->" are empty ones; an unterminated one runs to the end, as in a browser),
    r"!--(?:-?>|.*?--!?>|.*)"
    # a raw-text element a reader never sees, with its content,
    rf"|((?i:script|style|template)){_NAME_END}{_ATTRIBUTES}>?.*?(?:</(?i:\1){_NAME_END}[^>]*+>?|\Z)"
    # a start or end tag,
    rf"|(/?)([a-zA-Z][^\s/>]*)({_ATTRIBUTES})>?"
    # or what the tokenizer reads as a bogus comment: <!...>, <?...>, </ ...>.
    r"|[!?][^>]*+>?|/(?![a-zA-Z])[^>]*+>?"
    # All alternatives after one literal "<", so the engine skips from "<" to "<" (30% faster).
    r")",
    re.S,
)
_HREF = re.compile(r"""(?:^|[\s"'/])href\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]*))""", re.I)
_LINE_BREAKING = frozenset(
    "address article aside blockquote br caption center dd div dl dt fieldset figcaption figure footer form h1 h2 "  # noqa: SIM905 - a word list
    "h3 h4 h5 h6 header hr legend li main nav ol option p pre section table tbody td tfoot th thead title tr ul".split()
)
_WORD_BREAKING = frozenset("button embed iframe img input label object select textarea".split())  # noqa: SIM905
# Block boundaries travel through lexbor as this private-use character, so that the whitespace of the
# source (which HTML renders as single spaces) can be collapsed without losing them.
_LINE_MARK = "\ue000"


@dataclass(frozen=True, slots=True)
class HtmlText:
    """The visible text of an HTML document (one line per block) and its link targets in document order."""

    text: str
    links: tuple[str, ...]


def html_to_text(html: str) -> HtmlText:
    """The text and link targets of `html`; linear in its length whatever the markup (see the module)."""
    tree = LexborHTMLParser(_flatten(html))
    links = tuple(href.strip() for node in tree.css("a[href], area[href]") if (href := node.attributes.get("href")))
    root = tree.root
    raw_text = root.text() if root is not None else ""
    # str.split, not a regular expression: five times faster on the corpus.
    lines = (" ".join(line.split()) for line in raw_text.split(_LINE_MARK))
    return HtmlText("\n".join(line for line in lines if line), links)


def _flatten(html: str) -> str:
    """`html` with only text, entities, line marks and bare `<a href>`/`<area href>` tags left."""
    return _MARKUP.sub(_replace_markup, html)


def _replace_markup(match: re.Match[str]) -> str:
    """What one comment, raw-text element or tag of `_MARKUP` becomes in the flat document."""
    name = match[3]
    if name is None:  # a comment, a raw-text element or a bogus comment: as if absent ("V<!-- -->iagra")
        return ""
    name = name.lower()
    if name in _LINE_BREAKING:
        return _LINE_MARK
    if name in _WORD_BREAKING:
        return " "
    if name not in ("a", "area"):
        return ""
    if match[2]:  # an end tag
        return "</a>" if name == "a" else ""
    # Only the first href stays: an attribute flood costs lexbor quadratic time.
    href = _HREF.search(match[4])
    if href is None:
        return "<a>" if name == "a" else " "
    value = next(group for group in href.groups() if group is not None)
    return f'<{name} href="{value.replace(chr(34), "&quot;")}">'
