"""Search-engine adapters: everything page-specific about one image search lives in one module.

An adapter is a module exposing:

    NAME: str
    NEEDS_BROWSER: bool
    search_url(phrase) -> str                       # browser engines: the page to open first
    SEARCH_BOX: str | None                          # CSS selector of the query box (typed into, then submitted)
    MORE_BUTTON: str                                # XPath of the "Show more results" button
    collect(driver) -> list[Hit]                    # read the full-size picture URLs off the page
    search(phrase, limit) -> list[Hit]              # engines without a browser (NEEDS_BROWSER False)

``trainer.data.scrape`` drives the browser (type, submit, scroll until the height stops growing,
click "Show more results" while present) and calls ``collect``; when an engine's page changes,
only its adapter is edited.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Hit:
    url: str        # the full-size picture
    page: str       # the page that shows it (provenance), "" when unknown
    title: str = ""


ENGINES = ("google", "ddgs")


def load_engine(name: str):
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return importlib.import_module(f"trainer.data.engines.{name}")
