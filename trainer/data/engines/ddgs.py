"""DuckDuckGo (and the other back ends of the ``ddgs`` library): no browser needed.

For machines without Chromium. ``ddgs`` returns the original picture URL (``image``) and the
page showing it (``url``) for each result.
"""
from __future__ import annotations

from trainer.data.engines import Hit

NAME = "ddgs"
NEEDS_BROWSER = False


def search(phrase: str, limit: int) -> list[Hit]:
    from ddgs import DDGS

    results = DDGS().images(phrase, max_results=limit, safesearch="moderate")
    hits, seen = [], set()
    for r in results:
        url = r.get("image") or ""
        if url.startswith(("http://", "https://")) and url not in seen:
            seen.add(url)
            hits.append(Hit(url=url, page=r.get("url") or "", title=r.get("title") or ""))
    return hits[:limit]
