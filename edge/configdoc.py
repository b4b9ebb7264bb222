"""docs/config.md, the daemon's config reference, generated from edge/config.py.

Every key's default and one-line description live once, in the dataclass fields of
:mod:`edge.config`; this module writes them out as Markdown, so the page cannot drift from the
code (tests/test_docs.py fails when docs/config.md is not what this prints). Regenerate with

    .venv/bin/python -m edge.configdoc > docs/config.md
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, get_type_hints

from edge.config import Config, documented_keys

COMMAND = ".venv/bin/python -m edge.configdoc > docs/config.md"


def _toml(value: Any) -> str:
    """A default as it is written in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def _allowed(meta: dict) -> str:
    if "choices" in meta:
        return ", ".join(_toml(c) for c in meta["choices"])
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"{low} to {high}"
    if low is not None:
        return f">= {low}"
    if high is not None:
        return f"<= {high}"
    return ""


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _checks() -> dict[str, dict]:
    """Each dotted key's min / max / choices, from the same field metadata parse_config checks."""
    out = {}
    for section in fields(Config):
        for f in fields(get_type_hints(Config)[section.name]):
            out[f"{section.name}.{f.name}"] = dict(f.metadata)
    return out


def config_reference_markdown() -> str:
    """The whole of docs/config.md."""
    checks = _checks()
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from edge/config.py; do not edit by hand. Regenerate with:",
        f"     {COMMAND} -->",
        "",
        "The daemon (`moodcam run`) reads one TOML file: `--config FILE`, else",
        "`/etc/moodcam/config.toml` when it exists, else the built-in defaults below. Every key is",
        "optional. An unknown key or a bad value is refused with the file, the dotted key, the value",
        "and, for a typo, the closest known key; `moodcam check-config FILE` checks a file without",
        "starting anything (`--print` shows the effective config as JSON).",
        "[`deploy/config.example.toml`](../deploy/config.example.toml) lists the same keys with the",
        "same defaults (a test keeps it so).",
        "",
        f"This page is generated from the code: `{COMMAND}`.",
        "Figures quoted in a description (accuracy, time a face) are those of the shipped model; its",
        "times were measured on the Intel Xeon (AVX-512 VNNI, AMX) it was exported on",
        "(see [benchmarks.md](benchmarks.md)).",
    ]
    section = None
    for key, default, doc in documented_keys():
        name, _, leaf = key.partition(".")
        if name != section:
            section = name
            lines += ["", f"## `[{name}]`", "", "| key | default | allowed | description |", "|---|---|---|---|"]
        lines.append(f"| `{leaf}` | `{_cell(_toml(default))}` | {_cell(_allowed(checks.get(key, {})))} | {_cell(doc)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(config_reference_markdown(), end="")
