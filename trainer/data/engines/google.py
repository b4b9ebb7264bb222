"""Google Images, through a real browser. Everything Google-specific is here.

Full-size URLs: each result is an anchor whose ``href`` is ``/imgres?imgurl=<picture>&imgrefurl=<page>``
(the form Google has served for years, also to scripted browsers); where the anchors carry no such
link yet, the page's inline data holds ``["<url>",height,width]`` triples for every result, the
first of each pair a gstatic thumbnail and the second the original. Both are read.
"""
from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, quote_plus, urljoin, urlparse

from trainer.data.engines import Hit

NAME = "google"
NEEDS_BROWSER = True
BASE_URL = "https://www.google.com"
# The images home page: the phrase is typed into its box and submitted, as a person would.
HOME_PATH = "/imghp?hl=en"
SEARCH_BOX = "textarea[name=q], input[name=q]"
MORE_BUTTON = ("//input[@type='button' and contains(@value, 'Show more results')]"
               " | //*[self::button or self::a or self::span or self::div][normalize-space(text())='Show more results']")
# EU consent interstitial ("Accept all"/"Reject all"): dismissed if shown, harmless otherwise.
CONSENT_BUTTONS = ("//button[.//div[text()='Reject all'] or text()='Reject all']",
                   "//button[.//div[text()='Accept all'] or text()='Accept all']")

_TRIPLE = re.compile(r'\["(https?://[^"\\]+(?:\\.[^"\\]*)*)",(\d+),(\d+)\]')


def home_url(base_url: str = BASE_URL) -> str:
    return base_url.rstrip("/") + HOME_PATH


def search_url(phrase: str, base_url: str = BASE_URL) -> str:
    """Direct results URL (used when the home page shows no search box)."""
    return f"{base_url.rstrip('/')}/search?tbm=isch&hl=en&q={quote_plus(phrase)}"


def dismiss_consent(driver) -> None:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    for xpath in CONSENT_BUTTONS:
        try:
            buttons = driver.find_elements(By.XPATH, xpath)
            if buttons and buttons[0].is_displayed():
                buttons[0].click()
                return
        except WebDriverException:
            continue


def _from_href(href: str, base: str) -> Hit | None:
    parsed = urlparse(urljoin(base, href))
    if not parsed.path.endswith("/imgres"):
        return None
    q = parse_qs(parsed.query)
    url = (q.get("imgurl") or [""])[0]
    if not url.startswith(("http://", "https://")):
        return None
    return Hit(url=url, page=(q.get("imgrefurl") or [""])[0])


def collect(driver) -> list[Hit]:
    """Every full-size picture on the results page, in page order, without repeats."""
    from selenium.webdriver.common.by import By

    base = driver.current_url
    hits: list[Hit] = []
    for a in driver.find_elements(By.CSS_SELECTOR, "a[href*='imgurl=']"):
        hit = _from_href(a.get_attribute("href") or "", base)
        if hit:
            hits.append(hit)
    hits += parse_inline_data(driver.page_source)
    seen, unique = set(), []
    for h in hits:
        if h.url not in seen:
            seen.add(h.url)
            unique.append(h)
    return unique


def parse_inline_data(html: str) -> list[Hit]:
    """Original URLs from the inline ``["url",h,w]`` triples (thumbnails on gstatic are skipped)."""
    hits = []
    for m in _TRIPLE.finditer(html):
        try:
            url = json.loads(f'"{m.group(1)}"')  # undo \u003d and friends
        except json.JSONDecodeError:
            continue
        host = urlparse(url).hostname or ""
        if host.endswith(("gstatic.com", "google.com", "googleusercontent.com")):
            continue
        hits.append(Hit(url=url, page=""))
    return hits
