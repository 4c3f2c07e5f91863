"""Previews cut between whole grapheme clusters, never inside one."""

from __future__ import annotations

import json

import pytest

from server.core.excerpt import ELLIPSIS, excerpt


FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # 👨‍👩‍👧, 5 code points
FLAG_FR = "\U0001f1eb\U0001f1f7"  # 🇫🇷, 2 regional indicators
E_ACUTE = "e\u0301"  # é as e + combining acute accent
KSSA = "\u0915\u094d\u0937"  # क्ष, a Devanagari conjunct of 3 code points
CJK_EXT_B = "\U00020bb7"  # 𠮷, outside the Basic Multilingual Plane
GRIN = "\U0001f600"  # 😀


def assert_clean(preview: str, source: str) -> None:
    """The preview encodes strictly and adds no replacement character."""
    preview.encode("utf-8")
    preview.encode("utf-16-le")
    json.loads(json.dumps(preview, ensure_ascii=False))
    if "\ufffd" not in source:
        assert "\ufffd" not in preview


def test_excerpt_short_text_is_returned_unchanged() -> None:
    assert excerpt("Is this the March lease?", 300) == "Is this the March lease?"


def test_excerpt_text_of_exactly_the_limit_is_not_cut() -> None:
    assert excerpt("abcde", 5) == "abcde"


def test_excerpt_cuts_plain_text_and_appends_ellipsis() -> None:
    assert excerpt("abcdefghij", 5) == "abcd…"


def test_excerpt_collapses_whitespace_and_line_breaks() -> None:
    body = "  Hello\n\n  Carl,\r\n\tplease\u00a0check\u2028the total.  "
    assert excerpt(body, 300) == "Hello Carl, please check the total."


def test_excerpt_drops_trailing_space_before_ellipsis() -> None:
    assert excerpt("Wrong figure: 12,400", 7) == "Wrong…"


@pytest.mark.parametrize(
    ("cluster", "prefix"),
    [
        (GRIN, "ab"),
        (FAMILY, "ab"),
        (FLAG_FR, "ab"),
        (E_ACUTE, "ab"),
        (KSSA, "ab"),
        (CJK_EXT_B, "ab"),
    ],
    ids=["emoji", "zwj-family", "flag", "combining-accent", "conjunct", "cjk-ext-b"],
)
def test_excerpt_never_splits_a_grapheme_cluster(cluster: str, prefix: str) -> None:
    source = prefix + cluster + "tail"
    # Every limit that lands inside or right after the cluster.
    for max_chars in range(len(prefix) + 1, len(prefix) + len(cluster) + 2):
        preview = excerpt(source, max_chars)
        assert_clean(preview, source)
        assert len(preview) <= max_chars
        if max_chars >= len(prefix) + len(cluster) + len(ELLIPSIS):
            assert preview == prefix + cluster + ELLIPSIS
        else:
            assert preview == prefix + ELLIPSIS


def test_excerpt_keeps_a_cluster_that_fits_whole() -> None:
    assert excerpt(f"Paid {FAMILY} and {FLAG_FR} done", 15) == f"Paid {FAMILY} and…"


def test_excerpt_of_emoji_only_body_keeps_whole_emoji() -> None:
    body = (FAMILY + FLAG_FR + GRIN) * 20
    preview = excerpt(body, 20)
    assert_clean(preview, body)
    # 5 + 2 + 1 + 5 + 2 + 1 = 16 code points fit before the ellipsis; the
    # next family (5) would not.
    assert preview == FAMILY + FLAG_FR + GRIN + FAMILY + FLAG_FR + GRIN + ELLIPSIS


def test_excerpt_first_cluster_too_long_leaves_ellipsis_alone() -> None:
    assert excerpt(FAMILY * 3, 4) == ELLIPSIS


def test_excerpt_counts_the_ellipsis_in_the_limit() -> None:
    body = "x" * 1000
    preview = excerpt(body, 300)
    assert len(preview) == 300
    assert preview == "x" * 299 + ELLIPSIS


def test_excerpt_drops_unpaired_surrogates_without_replacement() -> None:
    preview = excerpt("ab\ud83dcd\ude00ef", 300)
    assert preview == "abcdef"
    assert_clean(preview, "abcdef")


def test_excerpt_keeps_replacement_character_present_in_source() -> None:
    assert excerpt("bad byte \ufffd here", 300) == "bad byte \ufffd here"


def test_excerpt_of_blank_text_is_empty() -> None:
    assert excerpt(" \n\t ", 10) == ""


def test_excerpt_rejects_limit_below_one() -> None:
    with pytest.raises(ValueError, match="max_chars must be at least 1, got 0"):
        excerpt("abc", 0)
