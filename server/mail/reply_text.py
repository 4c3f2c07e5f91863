"""The words of a reply by email, without what it quotes.

Mail programs put the answer above or between lines of the mail being
answered. What is kept: the text/plain part (or the HTML part made into
text when there is none), up to the first sign of quoted mail, without
lines quoted with ">" and without the signature. Signs of quoted mail:

- an attribution line, "On Mon, 9 Mar 2026, Ana wrote:" (possibly folded
  over two lines), or its French and German forms;
- Outlook's "-----Original Message-----" or a line of underscores, and
  its header block ("From:" followed by "Sent:" or "Date:");
- the signature delimiter "-- " (RFC 3676 section 4.3).

Known limitation: answers written in other languages' attribution forms,
or below the quoted mail (bottom-posting with no ">"), keep some quoted
text; what is kept is still only text, posted as the person who wrote it.
"""

from __future__ import annotations

import html.parser
import re
import unicodedata
from email.message import EmailMessage


__all__ = ["reply_body", "strip_quoted"]

# Attribution lines: English (Gmail, Apple Mail, Thunderbird), French and
# German. Matched on one line or on two lines joined, as Gmail folds them.
_ATTRIBUTION = re.compile(
    r"^(On\b.{0,300}\bwrote:"
    r"|Le\b.{0,300}\ba écrit ?:"
    r"|Am\b.{0,300}\bschrieb\b.{0,300}:)$",
    re.IGNORECASE,
)
_OUTLOOK_SEPARATOR = re.compile(r"^(-{3,}\s*Original Message\s*-{3,}|_{20,})$", re.I)
_HEADER_FROM = re.compile(r"^\*?From:\*?\s", re.IGNORECASE)
_HEADER_NEXT = re.compile(r"^\*?(Sent|Date|To|Subject):\*?\s", re.IGNORECASE)

# Controls that a message body may not hold (check_body), other than the
# tab and line break; mail programs leave form feeds and the like about.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# HTML elements whose text is not part of the reply, and the ones that
# end a line.
_SKIPPED = frozenset(("head", "style", "script", "blockquote", "title"))
_BREAKS = frozenset(("br", "p", "div", "li", "tr", "h1", "h2", "h3", "table"))


def reply_body(message: EmailMessage) -> str:
    """The reply's own words; "" when it has none (or no readable text)."""
    part = message.get_body(preferencelist=("plain", "html"))
    if not isinstance(part, EmailMessage):
        return ""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):
        # An unknown charset or a broken encoding: nothing we can read.
        return ""
    if not isinstance(content, str):
        return ""
    if part.get_content_type() == "text/html":
        content = _html_text(content)
    return strip_quoted(content)


def strip_quoted(text: str) -> str:
    """``text`` up to the quoted mail, without quoted lines or signature."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = line.strip()
        following = lines[index + 1].strip() if index + 1 < len(lines) else ""
        if line == "-- " or _OUTLOOK_SEPARATOR.match(stripped):
            break
        if _ATTRIBUTION.match(stripped) or (
            stripped and _ATTRIBUTION.match(f"{stripped} {following}")
        ):
            break
        if _HEADER_FROM.match(stripped) and _HEADER_NEXT.match(following):
            break
        if stripped.startswith(">"):
            continue
        kept.append(_CONTROL.sub(" ", line).rstrip())
    return _trim_blank_lines(kept)


def _trim_blank_lines(lines: list[str]) -> str:
    """Join lines, with at most one blank line in a row and none around."""
    out: list[str] = []
    for line in lines:
        if not line and (not out or not out[-1]):
            continue
        out.append(line)
    return "\n".join(out).strip()


class _TextOfHtml(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        # Depth inside elements whose text is left out; 0 outside them.
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skipping += 1
        elif tag in _BREAKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skipping = max(0, self._skipping - 1)
        elif tag in _BREAKS:
            self.chunks.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def _html_text(markup: str) -> str:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.chunks)
    # Non-breaking and other odd spaces read as plain spaces in a message.
    return "".join(" " if unicodedata.category(c) == "Zs" else c for c in text)
