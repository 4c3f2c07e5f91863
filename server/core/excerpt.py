"""Short previews of message bodies, cut only between whole characters.

A preview goes where space is scarce: an email's subject and body, a badge
payload, a sidebar line. Cutting a string at a fixed index can split what a
reader sees as one character: half of a surrogate pair shows as U+FFFD, a
flag turns into two letters, a family emoji loses a member, and an accent
falls off its letter. So previews are cut between extended grapheme
clusters (Unicode Standard Annex #29), which the ``regex`` package matches
with ``\\X``; the standard ``re`` module has no equivalent.
"""

from __future__ import annotations

import regex  # type: ignore[import-untyped, unused-ignore]


__all__ = ["ELLIPSIS", "excerpt"]

#: Appended to a preview that was cut; one character, counted in the limit.
ELLIPSIS = "…"

# One extended grapheme cluster, including the Indic conjuncts that
# Unicode 15.1 added to the rules (GB9c).
_GRAPHEME = regex.compile(r"\X")

# Unpaired surrogates cannot be encoded as UTF-8 or UTF-16. Stored bodies
# never hold them (check_body rejects them), but a preview must stay valid
# even when fed text from elsewhere, and dropping them is the only way that
# adds no U+FFFD.
_SURROGATE = regex.compile(r"[\ud800-\udfff]")


def excerpt(text: str, max_chars: int) -> str:
    """Return a one-line preview of ``text`` at most ``max_chars`` long.

    Runs of whitespace, line breaks included, become one space, and leading
    and trailing whitespace goes. When the result is still too long it is
    cut after the last whole grapheme cluster that fits, trailing
    whitespace is dropped, and ``ELLIPSIS`` is appended. A cluster is never
    split, so when the first one alone is too long (a family emoji is seven
    code points) the preview is the ellipsis alone.

    Lengths are counted in code points (Python's ``len``), the ellipsis
    included, so the result always fits the storage or header it is meant
    for. Unpaired surrogates in ``text`` are dropped. Explicit bidi
    controls are kept as they are, so the preview should be shown in an
    element or line of its own.

    Args:
        text: the message body, any length.
        max_chars: the largest length of the result, at least 1.

    Returns:
        The preview: ``text`` itself, collapsed, when it fits.

    Raises:
        ValueError: ``max_chars`` is less than 1.

    """
    if max_chars < 1:
        raise ValueError(f"max_chars must be at least 1, got {max_chars}")

    collapsed = " ".join(_SURROGATE.sub("", text).split())
    if len(collapsed) <= max_chars:
        return collapsed

    # Walk clusters from the start and stop at the first that overflows, so
    # a long body costs no more than the preview it yields.
    budget = max_chars - len(ELLIPSIS)
    end = 0
    for match in _GRAPHEME.finditer(collapsed):
        if match.end() > budget:
            break
        end = match.end()
    return collapsed[:end].rstrip() + ELLIPSIS
