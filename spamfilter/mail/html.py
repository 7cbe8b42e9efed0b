"""HTML parts to text and link targets: `html_to_text(html) -> HtmlText(text, links)`.

Text is what a reader sees: script, style and template content and comments are dropped, entities are
decoded, block elements (p, div, br, li, tr, td, headings, ...) end a line and inline markup joins without
a space, so `<b>F</b>REE` stays one word. Links are the `href` of every `<a>` and `<area>`, in document
order, as written (entities decoded): URL extraction decides which are web links.

Library: selectolax (lexbor), chosen by measurement on the 1,210 HTML parts of the SpamAssassin corpus
(bench/html_to_text.py; CPU time, one core, median part 4.5 KB; "same words": parts whose words equal
those of selectolax's full DOM):

    converter                                parts/s   median ms   p99 ms   same words
    this module (selectolax + pre-pass)        2,638     0.24        1.70       94.4%
    selectolax, full DOM, block-aware          2,664     0.25        1.67      100%
    lxml, block-aware walk                       818     0.61        7.53       74.9%
    inscriptis (on lxml)                         268     2.22       16.7        28.2% (layout: bullets, columns)

selectolax is three times faster than lxml and ten times faster than inscriptis, and its text is what
a reader sees. But all three build a DOM, and on crafted HTML tree building goes super-linear: lexbor
takes 0.27 s on 8,000 nested `<div>` and 2.5 s on 16,000 (every block start tag scans the stack of open
elements), 2.0 s on 500 distinct `<font>` re-opened around 2,000 `<div>` (HTML's "reconstruct the active
formatting elements"; 1,000 around 4,000 took 9 s and 2 GB), and 0.38 s on 10,000 attributes on one
tag (quadratic duplicate check; libxml2 takes 0.35 s, and 260 s on 100,000); libxml2 also stops at
depth 255 and then drops the whole text. Spam is adversarial input, so before lexbor sees the HTML a
linear pre-pass (one regular expression, possessive, never backtracking) keeps only what text extraction
needs: comments and script/style/template elements go, block tags become line breaks, `<a>`/`<area>`
tags are rewritten to their first `href`, and every other tag goes. lexbor then builds a flat tree
(depth <= 3, at most one open `<a>`) in linear time, decodes entities in text and attributes by the
HTML standard, and yields text and hrefs: the three cases above, at the sizes the tests use (100,000
nested `<div>`; 3,000 `<font>` around 30,000 `<div>`; 100,000 attributes), take 0.04-0.07 s.
The pre-pass costs no more than the tree building it saves on ordinary HTML. The text differs from the
full DOM's on broken markup, by design: source order is kept (a DOM moves stray table text before the
table), and markup inside `<title>`, `<textarea>` or `<xmp>` is dropped rather than shown as text. A
comment or script between two letters joins them, as on screen ("V<!-- -->iagra" reads "Viagra").
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
