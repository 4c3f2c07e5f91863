"""Return paths carried through sign-in, checked so they stay on our site.

A deep link from an email sends a reader who is signed out to the sign-in
page with the link's path in a ``next`` parameter; after sign-in the server
redirects there. Whatever a browser could read as another origin must never
come out of that redirect, and everything else must come out unchanged:
query strings, percent-encoded bytes and non-ASCII paths included.

The only form accepted is a relative path that starts with exactly one
"/". Browsers treat "//host" and "/\\host" as another origin, drop tabs and
line breaks anywhere in a URL, and trim leading spaces and controls; some
servers and proxies decode percent escapes once or twice more on the way.
So the check runs on the value as given and on each percent-decoding of
it, and a value that fails any of them is replaced by the default.

Fragments (``#m7``) never reach the server, since browsers do not send
them. The client keeps the fragment itself (for example in
``sessionStorage`` before leaving for sign-in) and puts it back on the
URL once it lands on the path returned here.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote


__all__ = ["DEFAULT_NEXT", "MAX_NEXT_CHARS", "safe_next"]

#: Where a reader lands when the return path is missing or refused.
DEFAULT_NEXT = "/"

#: Longest return path kept. Deep links with a 2 KB query fit twice over;
#: longer values are not ours and would make the sign-in URL itself
#: longer than some proxies accept (8 KB is a common limit).
MAX_NEXT_CHARS = 4096

# How many layers of percent-encoding are peeled and checked. Real links
# carry one or two ("%2525" in a query is "%25" encoded once more); eight
# leaves room for careless proxies while bounding the work on a 4 KB value.
# A value still changing after that many is refused.
_MAX_DECODINGS = 8

# Unicode categories that have no place in a path: controls (C0, DEL, C1,
# which browsers strip or mangle), unpaired surrogates, and line and
# paragraph separators (which some header code treats as line breaks).
_BAD_CATEGORIES = frozenset(("Cc", "Cs", "Zl", "Zp"))


def safe_next(value: str | None) -> str:
    """Return ``value`` if it is a path on this site, else ``DEFAULT_NEXT``.

    Accepted values are returned exactly as given, not re-encoded, so the
    reader lands on the same path and query the link carried.

    Args:
        value: the ``next`` parameter as received (already decoded once by
            the query-string parser), or None when absent.

    Returns:
        ``value`` itself, or ``DEFAULT_NEXT``.

    """
    if not value or len(value) > MAX_NEXT_CHARS:
        return DEFAULT_NEXT

    # Each pass checks one layer; the last pass only confirms that the
    # eighth decoding left nothing more to decode.
    candidate = value
    for _ in range(_MAX_DECODINGS + 1):
        if not _is_local_path(candidate):
            return DEFAULT_NEXT
        decoded = unquote(candidate, errors="replace")
        if decoded == candidate:
            return value
        candidate = decoded

    # Still decoding to something new after every layer we peel.
    return DEFAULT_NEXT


def _is_local_path(value: str) -> bool:
    """Whether a browser would read ``value`` as a path on the current origin.

    ``value`` must start with one "/" followed by something other than "/",
    "\\" or whitespace (RFC 3986 section 4.2: "//" starts a network-path
    reference, and the WHATWG URL parser treats "\\" like "/").
    """
    if not value.startswith("/"):
        return False
    if any(unicodedata.category(char) in _BAD_CATEGORIES for char in value):
        return False
    if len(value) == 1:
        return True

    second = value[1]
    # A fullwidth solidus and friends become "/" under NFKC, which some
    # URL handling applies to hosts; refuse them where a host could start.
    normalized = unicodedata.normalize("NFKC", second)
    return not (second.isspace() or normalized in ("/", "\\"))
