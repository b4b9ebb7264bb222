"""scrape: a real headless Chromium against a small image-search site served here on 127.0.0.1.

The site mimics what the Google adapter reads: a search box on /imghp, a results page that
appends more results as it is scrolled, a "Show more results" button once scrolling stops
loading, and result links ``/imgres?imgurl=...&imgrefurl=...``. The pictures it serves include a
404, a slow one, HTML under a .jpg name, a huge one, a flaky one (503 once), exact and near
duplicates. Everything is generated here; nothing leaves the machine.
"""
from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, urlparse

import numpy as np
import pytest
from PIL import Image

from trainer.data.download import DownloadParams, Manifest, Refused, SeenPictures, check_picture
from trainer.data.engines import google
from trainer.data.scrape import BrowseParams, folder_name, scrape

pytestmark = pytest.mark.slow  # Chromium

CHROME_OK = Path("/usr/bin/chromium").exists() and Path("/usr/bin/chromedriver").exists()


def smooth_picture(seed: int, size: int = 256) -> Image.Image:
    """A smooth random picture: distinct perceptual hashes per seed, stable under re-encoding."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8), "RGB")
    return small.resize((size, size), Image.Resampling.BICUBIC)


def encode(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


class Site:
    """The pictures and pages of the fake search site, and a log of what was requested."""

    def __init__(self):
        self.pictures: dict[str, tuple[bytes, str]] = {}  # name -> (body, content type)
        for i in range(10):
            fmt = ("JPEG", "PNG", "WEBP")[i % 3]
            self.pictures[f"good{i}.{fmt.lower()}"] = (encode(smooth_picture(i), fmt), f"image/{fmt.lower()}")
        self.pictures["copy-of-good0.jpg"] = self.pictures["good0.jpeg"]  # same bytes, other URL
        near = smooth_picture(1).resize((230, 230)).convert("RGB")
        self.pictures["near-good1.jpg"] = (encode(near, "JPEG", quality=60), "image/jpeg")
        self.pictures["page.jpg"] = (b"<!doctype html><html><body>Not found</body></html>", "text/html")
        self.pictures["html-as-jpeg.jpg"] = (b"<html><body>login required</body></html>", "image/jpeg")
        self.pictures["icon.png"] = (encode(smooth_picture(99, 32), "PNG"), "image/png")
        self.specials = ["missing.jpg", "slow.jpg", "huge.jpg", "huge-stream.jpg", "flaky.jpg"]
        self.pictures["flaky.jpg"] = (encode(smooth_picture(42), "JPEG"), "image/jpeg")
        self.requests = Counter()
        self.lock = threading.Lock()
        names = list(self.pictures) + [s for s in self.specials if s not in self.pictures]
        # Five batches: 0 in the page, 1-2 appear on scrolling, 3 after "Show more results", 4 on scrolling again.
        self.batches = [names[i::5] for i in range(5)]

    def all_names(self) -> list[str]:
        return [n for b in self.batches for n in b]


def make_handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def _send(self, code: int, body: bytes, ctype: str, length: int | None = None):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            url = urlparse(self.path)
            base = f"http://{self.headers['Host']}"
            with site.lock:
                site.requests[url.path] += 1
                count = site.requests[url.path]
            if url.path == "/imghp":
                return self._send(200, SEARCH_HOME.encode(), "text/html")
            if url.path == "/search":
                q = parse_qs(url.query).get("q", [""])[0]
                batches = [[{"img": f"{base}/pic/{quote(n)}", "page": f"{base}/page/{quote(n)}"} for n in b]
                           for b in site.batches]
                html = RESULTS.replace("__Q__", q.replace("<", "")).replace("__BATCHES__", json.dumps(batches))
                return self._send(200, html.encode(), "text/html")
            if url.path == "/thumb":
                return self._send(200, encode(Image.new("RGB", (40, 40), "gray"), "PNG"), "image/png")
            if url.path.startswith("/pic/"):
                name = url.path[len("/pic/"):]
                if name == "missing.jpg":
                    return self._send(404, b"not here", "text/plain")
                if name == "slow.jpg":
                    time.sleep(3.0)
                    return self._send(200, encode(smooth_picture(7), "JPEG"), "image/jpeg")
                if name == "huge.jpg":
                    return self._send(200, b"\xff\xd8" + b"\0" * 1000, "image/jpeg", length=50_000_000)
                if name == "huge-stream.jpg":
                    # No Content-Length (HTTP/1.0, ends when the connection closes): the cap applies while reading.
                    self.send_response(200)
                    self.send_header("Content-Type", "image/jpeg")
                    self.end_headers()
                    try:
                        for _ in range(40):
                            self.wfile.write(b"\0" * 65536)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                if name == "flaky.jpg" and count == 1:
                    return self._send(503, b"busy", "text/plain")
                if name in site.pictures:
                    body, ctype = site.pictures[name]
                    return self._send(200, body, ctype)
            return self._send(404, b"no such page", "text/plain")

    return Handler


SEARCH_HOME = """<!doctype html><html><head><title>Images</title></head><body>
<form action="/search" method="get"><input type="hidden" name="tbm" value="isch">
<textarea name="q" rows="1"></textarea><input type="submit" value="Search"></form>
<script>/* Like Google's box: Enter submits instead of starting a new line. */
document.querySelector('textarea').addEventListener('keydown', e => {
  if (e.key === 'Enter') { e.preventDefault(); e.target.form.submit(); } });</script></body></html>"""

RESULTS = """<!doctype html><html><head><title>__Q__ - Images</title>
<style>.r{display:block;height:300px;margin:10px} #more{display:none}</style></head><body>
<div id="results"></div>
<input id="more" type="button" value="Show more results">
<script>
const batches = __BATCHES__;
let next = 0, loading = false;
function add() {
  for (const r of batches[next]) {
    const a = document.createElement('a');
    a.className = 'r';
    a.href = '/imgres?imgurl=' + encodeURIComponent(r.img) + '&imgrefurl=' + encodeURIComponent(r.page);
    a.innerHTML = '<img src="/thumb" height="200">';
    document.getElementById('results').appendChild(a);
  }
  next++;
}
add();
// Scrolling to the bottom loads batches 1 and 2 (after a short "network" delay), then shows the
// button; the button loads batch 3 and re-arms scrolling for batch 4; then nothing more.
let scrollLimit = 3;
window.addEventListener('scroll', () => {
  if (loading || window.innerHeight + window.scrollY < document.body.scrollHeight - 50) return;
  if (next < scrollLimit) {
    loading = true;
    setTimeout(() => { add(); loading = false; }, 150);
  } else if (next === 3) {
    document.getElementById('more').style.display = 'inline';
  }
});
document.getElementById('more').addEventListener('click', () => {
  document.getElementById('more').style.display = 'none';
  add();
  scrollLimit = 5;
});
</script></body></html>"""


@pytest.fixture
def site():
    s = Site()
    server = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(s))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield s, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


FAST = DownloadParams(timeout=1.0, connect_timeout=1.0, retries=1, backoff=0.05, max_bytes=2_000_000,
                      workers=4, per_host_interval=0.0)


@pytest.mark.skipif(not CHROME_OK, reason="needs Debian's chromium and chromium-driver (apt)")
def test_scrape_with_real_chromium_resumes_and_never_fetches_twice(site, tmp_path):
    s, base = site
    out = tmp_path / "pictures"
    results = scrape(["Angry Human Face"], out, engine="google", base_url=base, download=FAST,
                     browse_params=BrowseParams(pause=0.5), progress=False)
    (r,) = results
    folder = out / "Angry+Human+Face"
    assert r.folder == folder
    # Every result of every batch was found: scrolling, the button, and scrolling after it.
    assert r.found == len(s.all_names())
    entries = Manifest.load(folder / "manifest.jsonl").entries
    by_name = {urlparse(u).path.split("/")[-1]: e for u, e in entries.items()}
    assert set(by_name) == set(s.all_names())
    assert all(e["page"].startswith(base + "/page/") and e["phrase"] == "Angry Human Face" for e in by_name.values())

    kept = {n for n, e in by_name.items() if e["status"] == "ok"}
    # good0 and its byte copy race; exactly one of them is kept. near-good1 vs good1 likewise.
    assert {f"good{i}.{('jpeg', 'png', 'webp')[i % 3]}" for i in range(2, 10)} | {"flaky.jpg"} <= kept
    assert len(kept & {"good0.jpeg", "copy-of-good0.jpg"}) == 1
    assert len(kept & {"good1.png", "near-good1.jpg"}) == 1
    assert len(kept) == 11

    def reason(name):
        return by_name[name].get("reason", "")

    assert reason("missing.jpg") == "HTTP 404"
    assert reason("slow.jpg").startswith("timeout")
    assert reason("page.jpg") == "not a picture: content type text/html"
    assert reason("html-as-jpeg.jpg").startswith("not a picture: an HTML/XML page")
    assert reason("huge.jpg").startswith("too large: 50,000,000 bytes")
    assert reason("huge-stream.jpg").startswith("too large: over")
    assert reason("icon.png").startswith("too small")
    dup_reasons = [reason(n) for n in ("good0.jpeg", "copy-of-good0.jpg") if n not in kept]
    assert dup_reasons[0].startswith("duplicate: same bytes as Angry+Human+Face/")
    near_reasons = [reason(n) for n in ("good1.png", "near-good1.jpg") if n not in kept]
    assert near_reasons[0].startswith("near-duplicate:")
    assert s.requests["/pic/flaky.jpg"] == 2  # 503, then retried with backoff
    assert s.requests["/pic/missing.jpg"] == 1  # a 404 is not retried

    # Files on disk: the kept ones, decodable, named by index and content hash.
    files = sorted(p.name for p in folder.iterdir() if p.name != "manifest.jsonl")
    assert sorted(by_name[n]["file"] for n in kept) == files
    for n in kept:
        with Image.open(folder / by_name[n]["file"]) as im:
            im.load()

    # A re-run finds the same URLs and fetches none of them again.
    before = {k: v for k, v in s.requests.items() if k.startswith("/pic/")}
    (again,) = scrape(["Angry Human Face"], out, engine="google", base_url=base, download=FAST,
                      browse_params=BrowseParams(pause=0.5), progress=False)
    assert again.skipped == again.found == len(s.all_names()) and again.kept == 0
    assert {k: v for k, v in s.requests.items() if k.startswith("/pic/")} == before


@pytest.mark.skipif(not CHROME_OK, reason="needs Debian's chromium and chromium-driver (apt)")
def test_scrape_cli_max_and_second_phrase_skips_cross_phrase_duplicates(site, tmp_path):
    from trainer.cli import main

    s, base = site
    out = tmp_path / "pics"
    rc = main(["scrape", "Happy Human Face", "Sad Human Face", "--out", str(out), "--base-url", base,
               "--max", "6", "--timeout", "1", "--retries", "0", "--per-host-interval", "0", "--pause", "0.3", "--quiet"])
    assert rc == 0
    happy = Manifest.load(out / "Happy+Human+Face" / "manifest.jsonl").entries
    sad = Manifest.load(out / "Sad+Human+Face" / "manifest.jsonl").entries
    assert len(happy) == 6 and len(sad) == 6
    # The same search site gives both phrases the same pictures: the second keeps none of them
    # (but the flaky one, refused with 503 under the first phrase and fetched anew under the second).
    assert [urlparse(u).path for u, e in sad.items() if e["status"] == "ok"] in ([], ["/pic/flaky.jpg"])
    assert any(e.get("reason", "").startswith("duplicate: URL already kept as Happy+Human+Face/") for e in sad.values())
    # ... and does not fetch the pictures kept under the first phrase again.
    kept_paths = [urlparse(u).path for u, e in happy.items() if e["status"] == "ok"]
    assert len(kept_paths) >= 3 and all(s.requests[p] == 1 for p in kept_paths)


def test_check_picture_and_duplicates_offline():
    params = DownloadParams()
    pic = check_picture(encode(smooth_picture(3), "PNG"), params)
    assert pic.format == "PNG" and (pic.width, pic.height) == (256, 256) and len(pic.phash) == 16
    with pytest.raises(Refused, match="not a picture"):
        check_picture(b"GIF89a but not really", params)
    with pytest.raises(Refused, match="not a picture: an empty file"):
        check_picture(b"", params)
    seen = SeenPictures(near_bits=4)
    seen.add(pic.sha256, pic.phash, "a/1.png")
    recoded = check_picture(encode(smooth_picture(3).resize((200, 200)), "JPEG", quality=70), params)
    assert seen.duplicate_of(pic.sha256, pic.phash) == "duplicate: same bytes as a/1.png"
    assert seen.duplicate_of(recoded.sha256, recoded.phash).startswith("near-duplicate")
    other = check_picture(encode(smooth_picture(4), "PNG"), params)
    assert seen.duplicate_of(other.sha256, other.phash) is None


def test_manifest_ignores_a_line_cut_by_a_crash(tmp_path):
    path = tmp_path / "manifest.jsonl"
    path.write_text(json.dumps({"url": "http://x/1.jpg", "status": "ok"}) + "\n" + '{"url": "http://x/2.j')
    m = Manifest.load(path)
    assert "http://x/1.jpg" in m and "http://x/2.j" not in m


def test_google_inline_data_and_folder_names():
    html = 'AF_initDataCallback(["https://encrypted-tbn0.gstatic.com/images?q\\u003dtbn",150,200],' \
           '["https://example.org/a\\u003d1.jpg",600,800])'
    assert [h.url for h in google.parse_inline_data(html)] == ["https://example.org/a=1.jpg"]
    assert folder_name("Angry Human Face") == "Angry+Human+Face"
    assert folder_name("  surprised/face? ") == "surprised+face"
    with pytest.raises(ValueError, match="has no words"):
        folder_name("?!")
