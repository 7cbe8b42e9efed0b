"""spamfilter.mail.html: visible text and link targets of HTML, and hostile markup converted in linear
time (each crafted document below takes lexbor alone seconds to minutes, or gigabytes)."""

from __future__ import annotations

import pytest

from spamfilter.mail.html import HtmlText, html_to_text


def test_script_style_template_and_comments_are_dropped() -> None:
    html = (
        "<html><head><title>Title words</title><style>p { color: red }</style>"
        "<SCRIPT type='text/javascript'>var hidden = '<p>not text</p>';</SCRIPT></head>"
        "<body><!-- a comment <p>with a tag</p> -->Visible<template><p>inert</p></template>"
        "<script>never</script >shown</body></html>"
    )
    assert html_to_text(html).text == "Title words\nVisibleshown"  # as rendered: nothing between the words


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("a<!-->b", "ab"),  # "<!-->" is an empty comment
        ("a<!--->b", "ab"),
        ("a<!-- x --!>b", "ab"),
        ("a<!-- never closed <p>b", "a"),  # an unterminated comment runs to the end
        ("a<script>never closed", "a"),
        ("a<!DOCTYPE html>b<?xml version='1.0'?>c<![CDATA[d]]>e", "abce"),  # CDATA is a bogus comment in HTML
        ("V<!-- -->iagra", "Viagra"),
        ("a</ bogus>b", "ab"),
    ],
)
def test_comment_and_bogus_markup_edge_cases(html: str, text: str) -> None:
    assert html_to_text(html).text == text


def test_entities_are_decoded() -> None:
    html = "<p>Fish &amp; chips &lt;3 &eacute;t&#233; &#x20AC;5 &copy 2002&nbsp;Ltd &bogus;</p>"
    assert html_to_text(html).text == "Fish & chips <3 été €5 © 2002 Ltd &bogus;"


def test_blocks_break_lines_and_inline_markup_joins_words() -> None:
    html = (
        "<div>First <b>F</b>REE <font color=red>off</font><span>er</span></div>"
        "<p>Second<br>Third</p><ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>cell1</td><td>cell2</td></tr></table>"
        "word<img src=x.gif>word"
    )
    assert html_to_text(html).text == "First FREE offer\nSecond\nThird\none\ntwo\ncell1\ncell2\nword word"


def test_source_whitespace_collapses_as_a_browser_renders_it() -> None:
    html = "<p>  many\n\n   spaces\tand\r\nlines  </p>\n\n<p>\n</p>  <p>next</p>"
    assert html_to_text(html).text == "many spaces and lines\nnext"


def test_links_in_document_order_with_entities_decoded() -> None:
    html = (
        '<a href="http://one.example/?a=1&amp;b=2">one</a>'
        "<map><area shape=rect href='http://two.example/'></map>"
        "<A HREF=http://three.example/x>three</A>"
        '<a name="anchor-only">no link</a>'
        '<a href="  http://four.example/  ">padded</a>'
        '<a href="">empty</a>'
    )
    result = html_to_text(html)
    assert result.links == (
        "http://one.example/?a=1&b=2",
        "http://two.example/",
        "http://three.example/x",
        "http://four.example/",
    )
    assert result.text == "onethreeno linkpaddedempty"


def test_first_href_wins_and_quoted_gt_does_not_end_a_tag() -> None:
    html = '<a title="1 > 0" href="http://first.example/" href="http://second.example/">go</a>'
    assert html_to_text(html) == HtmlText("go", ("http://first.example/",))


def test_markup_inside_attribute_values_and_comments_is_not_markup() -> None:
    html = (
        '<img alt="<p>alt text</p> <a href=http://in-alt.example/>">after<!-- <a href="http://in-comment.example/"> -->'
    )
    assert html_to_text(html) == HtmlText("after", ())


def test_links_inside_script_are_not_links() -> None:
    html = "<script>document.write('<a href=\"http://in-script.example/\">x</a>')</script><a href=http://real.example/>y</a>"
    assert html_to_text(html).links == ("http://real.example/",)


@pytest.mark.parametrize("html", ["", "   \n\t", "plain text, no markup", "a < b and c > d", "<", "<<<>>>", "&"])
def test_degenerate_documents(html: str) -> None:
    assert html_to_text(html) == HtmlText(" ".join(html.split()), ())


@pytest.mark.parametrize(
    "html",
    [
        '<p class="broken>First</p><p>Second</p><p>"Third</p>',  # the value runs to the next quote
        "<p>unclosed <b>bold <i>italic</p> after",
        "<a href=x>one<a href=y>two</a></a>",
        "<p>x</p y><p/>z<br/>w",
        "<div\nclass='a'\n>multi-line tag</div>",
        "<scripty>not script</scripty><stylesheet>not style</stylesheet>",
        "<<p>>double<</p>>",
    ],
)
def test_same_words_as_a_browser_dom_on_broken_markup(html: str) -> None:
    """On malformed markup the pre-pass keeps the words the HTML parser itself would show (spacing aside)."""
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(html)
    tree.strip_tags(["script", "style", "template"])
    dom_text = tree.root.text() if tree.root is not None else ""
    assert "".join(html_to_text(html).text.split()) == "".join(dom_text.split())


def test_where_the_text_differs_from_a_dom_by_design() -> None:
    # Source order is kept (a DOM moves stray table text before the table), and markup inside <title> or
    # <textarea> is dropped rather than shown as text.
    assert html_to_text("<table><tr><td>cell</td>stray<td>next</table>").text == "cell\nstray\nnext"
    assert html_to_text("<title>a <b> c</title>").text == "a c"


# Hostile markup: none of these is slow or memory-hungry for html_to_text. Without the pre-pass, lexbor
# spends ~2.5 s on 16,000 nested divs (quadratic), minutes on 100,000, ~9 s and 2 GB on the
# formatting-element case at a fifteenth of this size, and minutes on 100,000 attributes.


def test_deeply_nested_blocks() -> None:
    result = html_to_text("<div>" * 100_000 + "deep" + "</div>" * 100_000)
    assert result.text == "deep"


def test_formatting_elements_reopened_around_many_blocks() -> None:
    fonts = "".join(f"<font id={n}>" for n in range(3_000))
    result = html_to_text("<div>" + fonts + "</div>" + "<div>x</div>" * 30_000)
    assert result.text.split() == ["x"] * 30_000


def test_attribute_flood_on_a_link() -> None:
    attributes = " ".join(f"a{n}=1" for n in range(100_000))
    result = html_to_text(f"<a {attributes} href='http://flood.example/'>link</a>")
    assert result == HtmlText("link", ("http://flood.example/",))


def test_many_unclosed_links_and_tables() -> None:
    html = '<a href="http://x.example/">x' * 50_000 + "<table><tr><td>" * 20_000 + "end"
    result = html_to_text(html)
    assert len(result.links) == 50_000
    assert result.text.endswith("end")
