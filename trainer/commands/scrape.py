"""moodcam-train scrape "Angry Human Face" ... --out pictures/ [--max N] [--engine google|ddgs]"""
from __future__ import annotations

from pathlib import Path

from edge.argpaths import need_output
from edge.cliutil import report_error
from trainer.data.download import DownloadParams
from trainer.data.engines import ENGINES
from trainer.data.scrape import BrowseParams, scrape

HELP = "search the web for pictures per phrase and download them"
DESCRIPTION = (
    "Run each search PHRASE on an image search (google: a real headless Chromium; ddgs: no browser), "
    "collect the full-size picture URLs and download them into OUT/<Phrase+Words>/ with a manifest.jsonl "
    "(URL, page, time, hash, status). A re-run resumes: URLs already in a manifest are never fetched again. "
    "Respect the search engine's and the sites' terms of use; see the README."
)


def add_arguments(p) -> None:
    d = DownloadParams()
    p.add_argument("phrases", nargs="+", metavar="PHRASE", help='search phrases, e.g. "Angry Human Face"')
    p.add_argument("--out", type=Path, required=True, help="output folder (one sub-folder per phrase)")
    p.add_argument("--max", type=int, default=0, help="URLs per phrase at most (0: all the page gives)")
    p.add_argument("--engine", choices=ENGINES, default="google", help="search engine adapter (default google)")
    p.add_argument("--base-url", help="the engine's site (default: the real one; tests point it at a local site)")
    p.add_argument("--workers", type=int, default=d.workers, help=f"concurrent downloads (default {d.workers})")
    p.add_argument("--timeout", type=float, default=d.timeout, help=f"seconds per picture (default {d.timeout:g})")
    p.add_argument("--retries", type=int, default=d.retries, help=f"retries after transient errors (default {d.retries})")
    p.add_argument("--max-bytes", type=int, default=d.max_bytes, help=f"size cap per picture (default {d.max_bytes})")
    p.add_argument("--per-host-interval", type=float, default=d.per_host_interval,
                   help=f"seconds between requests to one host (default {d.per_host_interval:g})")
    p.add_argument("--pause", type=float, default=1.5, help="seconds to wait after each scroll or click")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    params = DownloadParams(timeout=args.timeout, retries=args.retries, max_bytes=args.max_bytes,
                            workers=args.workers, per_host_interval=args.per_host_interval)
    try:
        need_output(args.out, "--out", kind="dir", may_exist=True)   # a re-run resumes into it
        results = scrape(args.phrases, args.out, engine=args.engine, limit=args.max, base_url=args.base_url,
                         download=params, browse_params=BrowseParams(pause=args.pause), progress=not args.quiet)
    except (FileNotFoundError, ValueError) as exc:
        return report_error("moodcam-train scrape", exc)
    for r in results:
        refused = ", ".join(f"{k} {v}" for k, v in sorted(r.refused.items())) or "none"
        print(f"{r.phrase}: {r.found} URLs, {r.skipped} already done, {r.kept} new pictures -> {r.folder} "
              f"(refused: {refused})")
    return 0
