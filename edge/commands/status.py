"""moodcam status --state DIR [--json]: the log and the daemon at a glance, from the store alone.

Rows, reviews, disk use and free space come from the database and the file system; fps, faces
and logged counts come from the heartbeat the daemon writes into the store about once a minute
(its age tells whether the daemon is alive). Opens the store read-only: safe beside the daemon.
"""
from __future__ import annotations

import json
import time

from edge.cliutil import report_error, write_line
from edge.commands.options import add_state_option, state_dir
from edge.store.database import Store
from edge.store.health import disk_usage, verify
from edge.store.models import list_installed
from edge.store.records import StoreError, iso_utc

HELP = "print fps, faces, logged rows and disk use from the store"
EXIT_CODES = "exit status: 0 shown; 1 --check found problems; 2 no store at --state (or it cannot be read)"
STALE_AFTER_S = 180.0  # three missed heartbeats (the daemon writes one a minute)


def add_arguments(p) -> None:
    add_state_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.add_argument("--check", action="store_true",
                   help="also verify the store (integrity_check, every crop present and decodable); exit 1 on problems")


def collect(store, now: float | None = None, *, check: bool = False) -> dict:
    """Everything status prints, as plain data (the --json output)."""
    now = time.time() if now is None else now
    summary = store.summary()
    usage = disk_usage(store)
    hb = store.read_heartbeat()
    status = {
        "state_dir": str(store.state_dir),
        "rows": summary["rows"],
        "reviewed": summary["reviewed"],
        "not_face": summary["not_face"],
        "labels": summary["labels"],
        "first_logged": iso_utc(summary["first_ts"]),
        "last_logged": iso_utc(summary["last_ts"]),
        "last_logged_age_s": None if summary["last_ts"] is None else round(now - summary["last_ts"], 1),
        "disk": usage,
        "heartbeat": None,
    }
    if hb is not None:
        age = round(now - hb["written_at"], 1)
        status["heartbeat"] = {**hb, "written_at": iso_utc(hb["written_at"]), "age_s": age,
                               "stale": age > STALE_AFTER_S}
    status["model"] = model_status(store, hb)
    if check:
        status["problems"] = verify(store)
    return status


def model_status(store, hb: dict | None) -> dict:
    """The model the daemon last reported running (its heartbeat; else the one that logged the newest
    row) and the one installed as current."""
    running = None
    if hb is not None and hb.get("model_sha256"):
        running = {"name": hb.get("model_name") or None, "sha256": hb["model_sha256"],
                   "origin": hb.get("model_origin") or None}
    else:
        rows = store.read("SELECT model_sha256 FROM faces ORDER BY id DESC LIMIT 1")
        if rows and rows[0][0]:
            running = {"name": None, "sha256": rows[0][0], "origin": "last row"}
    current = next((m for m in list_installed(store.state_dir) if m.current), None)
    installed = None if current is None else {"version": current.version, "name": current.name,
                                              "sha256": current.sha256}
    return {"running": running, "installed": installed}


def _mb(n: float) -> str:
    for unit, size in (("GB", 2**30), ("MB", 2**20), ("KB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 0:
        return "in the future (clock changed?)"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def format_text(s: dict) -> str:
    d = s["disk"]
    lines = [f"store      {s['state_dir']}",
             f"faces      {s['rows']} logged, {s['reviewed']} reviewed ({s['not_face']} not a face)"]
    if s["rows"]:
        lines.append(f"           first {s['first_logged']}, last {s['last_logged']} ({_ago(s['last_logged_age_s'])})")
        lines.append("labels     " + ", ".join(f"{k} {v}" for k, v in s["labels"].items()))
    lines.append(f"disk       {_mb(d['total_bytes'])} used (database {_mb(d['db_bytes'] + d['wal_bytes'])}, "
                 f"crops {_mb(d['crops_bytes'])}, full-disk reserve {_mb(d['reserve_bytes'])}), "
                 f"{_mb(d['free_bytes'])} free of {_mb(d['fs_bytes'])}")
    hb = s["heartbeat"]
    if hb is None:
        lines.append("daemon     no heartbeat yet (has `moodcam run` used this state directory?)")
    else:
        fields = [f"{hb['fps']} fps" if "fps" in hb else None,
                  f"{hb['frames']} frames" if "frames" in hb else None,
                  f"{hb['faces']} faces" if "faces" in hb else None,
                  f"{hb['logged']} logged" if "logged" in hb else None]
        if isinstance(hb.get("started_at"), (int, float)):
            fields.insert(0, "up " + _ago(time.time() - hb["started_at"]).replace(" ago", ""))
        dropped = hb.get("dropped_full_disk", hb.get("dropped"))
        if dropped:
            fields.append(f"{dropped} dropped (disk full)")
        note = "  STALE: is the daemon running? (journalctl -u moodcam)" if hb["stale"] else ""
        lines.append(f"daemon     heartbeat {_ago(hb['age_s'])}: " + ", ".join(f for f in fields if f) + note)
    m = s["model"]
    running = m["running"]
    text = "not reported yet" if running is None else f"{running['name'] or '?'} (sha256 {running['sha256'][:12]}...)"
    if running is not None and running["origin"] == "last row":
        text += " (of the newest row)"
    if m["installed"] is not None:
        inst = m["installed"]
        same = running is not None and running["sha256"] == inst["sha256"]
        text += (", the installed one" if same else
                 f"; installed: {inst['version']} {inst['name']} (sha256 {inst['sha256'][:12]}...)")
    lines.append(f"model      {text}")
    if "problems" in s:
        lines.append("check      ok" if not s["problems"] else
                     "check      " + f"{len(s['problems'])} problem(s):\n  " + "\n  ".join(s["problems"][:20]))
    return "\n".join(lines)


def run(args) -> int:
    try:
        store = Store(state_dir(args), readonly=True)
    except StoreError as exc:
        return report_error("moodcam status", exc)
    try:
        status = collect(store, check=args.check)
    finally:
        store.close()
    write_line(json.dumps(status, indent=2) if args.json else format_text(status))
    return 1 if status.get("problems") else 0
