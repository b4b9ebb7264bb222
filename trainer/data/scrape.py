"""Search the web for pictures per phrase and download them into one folder per phrase.

The algorithm the project began with, in a real headless Chromium (Selenium): open the image
search, type the phrase, submit, scroll until the page height stops growing, click "Show more
results" while there is one, collect every full-size picture URL. The page specifics live in an
adapter (``trainer.data.engines.<name>``). Engines without a browser (``ddgs``) return URLs directly.
Downloads go through ``trainer.data.download``; each phrase folder keeps a ``manifest.jsonl`` with the
provenance of every URL tried.
"""
from __future__ import annotations

import re
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from trainer.data.download import (
    EXTENSIONS,
    DownloadParams,
    HostRateLimit,
    Manifest,
    Refused,
    SeenPictures,
    check_picture,
    fetch,
    write_atomically,
)
from trainer.data.engines import Hit, load_engine

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


@dataclass(frozen=True)
class BrowseParams:
    pause: float = 1.5           # seconds to let the page load more after a scroll or click
    max_rounds: int = 60         # scroll/click rounds at most (a page that grows forever)
    page_timeout: float = 30.0


@dataclass(frozen=True)
class PhraseResult:
    phrase: str
    folder: Path
    found: int          # URLs the search returned
    skipped: int        # already in the manifest (an earlier run)
    kept: int           # new pictures written
    refused: dict       # reason kind -> count


def folder_name(phrase: str) -> str:
    """``"Angry Human Face"`` -> ``"Angry+Human+Face"``: the form the seed data has, safe on any disk."""
    words = re.findall(r"[\w-]+", phrase, flags=re.UNICODE)
    if not words:
        raise ValueError(f"search phrase {phrase!r} has no words")
    return "+".join(words)


# ---------------------------------------------------------------- the browser

def make_driver(chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER, user_data_dir: str | None = None):
    """A headless Chromium driven by chromedriver; a fresh profile each time (no cookies, no history)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for path, what in ((chromium, "chromium"), (chromedriver, "chromedriver")):
        if not Path(path).exists() and not shutil.which(path):
            raise FileNotFoundError(f"{what} not found at {path}; install Debian's 'chromium' and 'chromium-driver' "
                                    f"packages, or use --engine ddgs (no browser)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--lang=en-US"):
        opts.add_argument(arg)
    opts.add_argument(f"--user-data-dir={user_data_dir or tempfile.mkdtemp(prefix='moodcam-chromium-')}")
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)


def browse(driver, engine, phrase: str, limit: int, base_url: str | None = None,
           params: BrowseParams = BrowseParams()) -> list[Hit]:
    """Run the phrase on the engine's page and read every full-size picture URL off it."""
    from selenium.common.exceptions import NoSuchElementException, TimeoutException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    base = base_url or engine.BASE_URL
    driver.set_page_load_timeout(params.page_timeout)
    driver.get(engine.home_url(base))
    engine.dismiss_consent(driver)
    home = driver.current_url
    try:
        box = driver.find_element(By.CSS_SELECTOR, engine.SEARCH_BOX)
        box.clear()
        box.send_keys(phrase)
        box.send_keys(Keys.RETURN)
        try:
            # Wait for the results page rather than a fixed pause: a loaded machine is slow to navigate.
            WebDriverWait(driver, params.page_timeout / 3).until(lambda d: d.current_url != home)
        except TimeoutException:
            box.submit()  # a page whose box ignores Enter: submit its form
        time.sleep(params.pause)
    except NoSuchElementException:
        driver.get(engine.search_url(phrase, base))  # no box (changed page): the results URL directly
        time.sleep(params.pause)

    height = driver.execute_script("return document.body.scrollHeight")
    for _ in range(params.max_rounds):
        if limit and len(engine.collect(driver)) >= limit:
            break
        driver.execute_script("window.scrollTo(0, document.body.scrollHeight);")
        time.sleep(params.pause)
        new_height = driver.execute_script("return document.body.scrollHeight")
        if new_height > height:
            height = new_height
            continue
        # The height stopped growing: a "Show more results" button, if shown, loads the next part.
        buttons = [b for b in driver.find_elements(By.XPATH, engine.MORE_BUTTON) if b.is_displayed()]
        if not buttons:
            break
        try:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", buttons[0])
            buttons[0].click()
        except WebDriverException:
            break
        time.sleep(params.pause)
        height = driver.execute_script("return document.body.scrollHeight")
    hits = engine.collect(driver)
    return hits[:limit] if limit else hits


def search(engine_name: str, phrase: str, limit: int, driver=None, base_url: str | None = None,
           browse_params: BrowseParams = BrowseParams()) -> list[Hit]:
    engine = load_engine(engine_name)
    if engine.NEEDS_BROWSER:
        if driver is None:
            raise ValueError(f"engine {engine_name} needs a browser")
        return browse(driver, engine, phrase, limit, base_url, browse_params)
    return engine.search(phrase, limit)


# ---------------------------------------------------------------- downloads

def seen_pictures(out: Path, near_bits: int) -> SeenPictures:
    """Hashes of every picture already kept under ``out`` (all phrases: one picture, one label)."""
    seen = SeenPictures(near_bits)
    for manifest_path in sorted(Path(out).glob("*/manifest.jsonl")):
        for e in Manifest.load(manifest_path).kept():
            seen.add(e.get("sha256", ""), e.get("phash", ""), f"{manifest_path.parent.name}/{e.get('file')}", e["url"])
    return seen


def download_hits(hits: list[Hit], folder: Path, phrase: str, engine: str, params: DownloadParams,
                  seen: SeenPictures, progress: bool = True) -> PhraseResult:
    import requests

    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(folder / "manifest.jsonl")
    todo = [h for h in hits if h.url not in manifest]
    skipped = len(hits) - len(todo)
    start_index = len(manifest.entries)
    kept, refused = 0, {}
    # A URL kept under another phrase is recorded, not fetched again (one picture, one label).
    for hit in [h for h in todo if h.url in seen.urls]:
        manifest.append({"url": hit.url, "page": hit.page, "phrase": phrase, "engine": engine,
                         "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                         "status": "refused", "reason": f"duplicate: URL already kept as {seen.urls[hit.url]}"})
        refused["duplicate"] = refused.get("duplicate", 0) + 1
    todo = [h for h in todo if h.url not in seen.urls]
    limiter = HostRateLimit(params.per_host_interval)
    bar = None
    if progress and todo:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="pic", desc=folder.name[:30], dynamic_ncols=True)

    def work(hit: Hit):
        body, ctype = fetch(session, hit.url, params, limiter)
        return check_picture(body, params), ctype

    with requests.Session() as session:
        adapter = requests.adapters.HTTPAdapter(pool_connections=params.workers, pool_maxsize=params.workers)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        with ThreadPoolExecutor(params.workers) as pool:
            futures = {pool.submit(work, h): (i, h) for i, h in enumerate(todo)}
            # Decisions (duplicate or not, file name, manifest line) happen here, one at a time.
            for future in as_completed(futures):
                i, hit = futures[future]
                entry = {"url": hit.url, "page": hit.page, "phrase": phrase, "engine": engine,
                         "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
                try:
                    pic, ctype = future.result()
                    dup = seen.duplicate_of(pic.sha256, pic.phash)
                    if dup:
                        raise Refused(dup)
                    name = f"{start_index + i:05d}_{pic.sha256[:12]}.{EXTENSIONS.get(pic.format, 'img')}"
                    write_atomically(folder / name, pic.body)
                    seen.add(pic.sha256, pic.phash, f"{folder.name}/{name}", hit.url)
                    entry.update(status="ok", file=name, sha256=pic.sha256, phash=pic.phash, bytes=len(pic.body),
                                 width=pic.width, height=pic.height, format=pic.format, content_type=ctype)
                    kept += 1
                except Refused as exc:
                    reason = str(exc)
                    entry.update(status="refused", reason=reason)
                    kind = reason.split(":")[0]
                    refused[kind] = refused.get(kind, 0) + 1
                manifest.append(entry)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return PhraseResult(phrase, folder, len(hits), skipped, kept, refused)


def scrape(phrases: list[str], out: Path, engine: str = "google", limit: int = 0, base_url: str | None = None,
           download: DownloadParams = DownloadParams(), browse_params: BrowseParams = BrowseParams(),
           progress: bool = True, chromium: str = CHROMIUM, chromedriver: str = CHROMEDRIVER) -> list[PhraseResult]:
    """Search and download every phrase into ``out/<Phrase+Words>/``; returns one result per phrase."""
    out = Path(out)
    eng = load_engine(engine)
    seen = seen_pictures(out, download.near_duplicate_bits)
    driver = make_driver(chromium, chromedriver) if eng.NEEDS_BROWSER else None
    results = []
    try:
        for phrase in phrases:
            hits = search(engine, phrase, limit, driver, base_url, browse_params)
            results.append(download_hits(hits, out / folder_name(phrase), phrase, engine, download, seen, progress))
    finally:
        if driver is not None:
            driver.quit()
    return results
