"""The review server's API: who may call it, what it refuses, and schemathesis finding no 5xx."""
from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys

import httpx
import pytest
from fastapi.testclient import TestClient

from edge.review.server import create_app
from edge.review.storesource import StoreSource
from edge.store.health import verify
from tests.review_support import REPO, fill_store, review_server

TOKEN = "test-token-0123456789abcdef"


@pytest.fixture()
def state_dir(tmp_path):
    d = tmp_path / "state"
    fill_store(d, 12, scenes=True)
    return d


@pytest.fixture()
def source(state_dir):
    s = StoreSource(state_dir)
    yield s
    s.close()


def test_loopback_refuses_foreign_host_and_unsigned_writes(source):
    client = TestClient(create_app(source, check_host=True), base_url="http://127.0.0.1:8080")
    assert client.get("/api/faces").status_code == 200
    # DNS rebinding: a page on evil.example resolved to 127.0.0.1 still sends its own Host.
    r = client.get("/api/faces", headers={"host": "evil.example:8080"})
    assert r.status_code == 421 and "loopback" in r.json()["detail"]
    body = {"changes": [{"id": 1, "action": "accept"}]}
    r = client.post("/api/reviews", json=body)
    assert r.status_code == 403 and "x-moodcam-token" in r.json()["detail"]
    write_token = client.get("/api/info").json()["write_token"]
    assert client.post("/api/reviews", json=body, headers={"x-moodcam-token": "wrong"}).status_code == 403
    r = client.post("/api/reviews", json=body, headers={"x-moodcam-token": write_token})
    assert r.status_code == 200 and r.json()["items"][0]["reviewed"] is True


def test_token_required_on_every_request(source):
    client = TestClient(create_app(source, token=TOKEN, check_host=False), base_url="http://192.0.2.1:8080")
    for path in ("/", "/static/app.js", "/api/info", "/api/faces", "/api/faces/1", "/api/faces/1/crop", "/api/stats", "/openapi.json"):
        r = client.get(path)
        assert r.status_code == 401, path
        assert "token" in r.json()["detail"]
    assert client.post("/api/reviews", json={"changes": [{"id": 1, "action": "accept"}]}).status_code == 401
    # The printed link trades its token for an HttpOnly, SameSite=Strict cookie and drops it from the URL.
    r = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert client.get("/").status_code == 200                       # the cookie now rides along
    assert client.get("/api/faces/1/crop").headers["content-type"] == "image/png"
    # A cookie alone never changes anything (a cross-site form would carry it): the header must.
    body = {"changes": [{"id": 2, "action": "label", "label": "sad"}]}
    assert client.post("/api/reviews", json=body).status_code == 403
    assert client.post("/api/reviews", json=body, headers={"x-moodcam-token": TOKEN}).status_code == 200
    assert client.get("/api/info").json()["write_token"] == TOKEN


@pytest.mark.parametrize("path", [
    "/api/faces/..%2f..%2f..%2fetc%2fpasswd/crop", "/api/faces/../../etc/passwd", "/api/faces/0/crop",
    "/api/faces/-1/crop", "/api/faces/1e3/crop", "/api/faces/%00/crop", "/api/faces/99999/crop",
    "/api/faces/99999999999999999999999999/crop", "/api/faces/1.5", "/static/..%2fserver.py", "/static/server.py",
    "/api/faces?limit=0", "/api/faces?min_confidence=nan", "/api/faces?since=inf", "/api/faces?label=joy",
    "/api/faces?order=random",
])
def test_malformed_and_traversal_requests_are_4xx(source, path):
    client = TestClient(create_app(source, check_host=False))
    r = client.get(path)
    assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])


def test_crop_outside_the_state_dir_is_never_served(source, state_dir, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG not yours")
    with sqlite3.connect(state_dir / "moodcam.db") as db:   # a tampered database
        db.execute("UPDATE faces SET crop_file = ? WHERE id = 3", ("../secret.png",))
        db.execute("UPDATE faces SET crop_file = ? WHERE id = 4", (str(secret),))
    client = TestClient(create_app(source, check_host=False))
    for face_id in (3, 4):
        r = client.get(f"/api/faces/{face_id}/crop")
        assert r.status_code == 404 and b"not yours" not in r.content
    assert client.get("/api/faces/5/crop").status_code == 200


def test_bulk_review_is_all_or_nothing_and_responses_carry_headers(source):
    client = TestClient(create_app(source, check_host=False))
    token = client.get("/api/info").json()["write_token"]
    r = client.post("/api/reviews", headers={"x-moodcam-token": token},
                    json={"changes": [{"id": 1, "action": "accept"}, {"id": 4242, "action": "accept"}]})
    assert r.status_code == 404 and "4242" in r.json()["detail"]
    assert client.get("/api/faces/1").json()["reviewed"] is False   # nothing of the bulk action applied
    r = client.post("/api/reviews", headers={"x-moodcam-token": token},
                    json={"changes": [{"id": 1, "action": "label"}]})
    assert r.status_code == 422                                      # label missing
    r = client.get("/api/faces")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["referrer-policy"] == "no-referrer"


@pytest.mark.slow  # schemathesis, hundreds of requests
def test_schemathesis_finds_no_server_errors(state_dir, tmp_path):
    """Fuzz every operation of the OpenAPI schema against the real server (uvicorn) with every check
    (no 5xx, documented status codes and bodies, valid data accepted, negative data rejected) and
    valid and invalid data, in all phases including the stateful one."""
    with review_server("--state", str(state_dir), "--token", TOKEN) as (base, _):
        proc = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{base}/openapi.json", "--checks", "all", "--mode", "all",
             "--max-examples", "25", "--seed", "1", "--generation-database", "none", "--no-color",
             "--phases", "examples,coverage,fuzzing,stateful", "--header", f"x-moodcam-token: {TOKEN}",
             "--request-timeout", "60", "--report-dir", str(tmp_path / "st")],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
        summary = proc.stdout[-2500:]
        assert proc.returncode == 0, summary + proc.stderr[-2000:]
        assert "No issues found" in summary and "7 selected" in proc.stdout, summary
        info = httpx.get(f"{base}/api/stats", headers={"x-moodcam-token": TOKEN}).json()
        assert info["total"] == 12
    # Hundreds of fuzzed reviews later the store is intact: no row lost, every crop in place.
    from edge.store.database import Store

    with Store(state_dir, readonly=True) as store:
        assert verify(store) == []
        assert store.count() == 12


def test_cli_token_rules(state_dir, monkeypatch):
    from edge.commands.review import resolve_token

    monkeypatch.delenv("MOODCAM_REVIEW_TOKEN", raising=False)
    assert resolve_token("127.0.0.1", None) == (None, False)
    token, generated = resolve_token("0.0.0.0", None)                # any other address: always a token
    assert generated and len(token) >= 24
    assert resolve_token("192.168.1.5", TOKEN) == (TOKEN, False)
    assert resolve_token("127.0.0.1", "")[1] is True                 # bare --token: generate one
    monkeypatch.setenv("MOODCAM_REVIEW_TOKEN", TOKEN)
    assert resolve_token("10.0.0.2", None) == (TOKEN, False)
    with pytest.raises(ValueError, match="at least 16"):
        resolve_token("10.0.0.2", "short")


def test_cli_prints_token_link_and_refuses_missing_store(state_dir, tmp_path):
    with review_server("--state", str(state_dir), "--token") as (base, out):
        token = out.split("?token=")[1].split()[0]
        assert "token generated" in out
        assert httpx.get(f"{base}/api/info").status_code == 401
        assert httpx.get(f"{base}/api/info", headers={"x-moodcam-token": token}).status_code == 200
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "edge", "review", "--state", str(tmp_path / "nope")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = subprocess.run([sys.executable, "-m", "edge", "review", "--state", str(tmp_path / "empty")], capture_output=True, text=True, env=env)
    assert proc.returncode == 2 and "no moodcam store" in proc.stderr
    # The server never created a store (or anything else) where there was none.
    assert list((tmp_path / "empty").iterdir()) == []
    assert stat.S_IMODE((state_dir / "moodcam.db").stat().st_mode) == 0o600


def test_busy_store_is_a_clear_503(state_dir):
    """Another process holds the write lock past the busy timeout: the review is refused, not lost silently."""
    source = StoreSource(state_dir, busy_timeout_s=0.2)
    client = TestClient(create_app(source, check_host=False))
    token = client.get("/api/info").json()["write_token"]
    blocker = sqlite3.connect(state_dir / "moodcam.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")                      # as a long daemon write would
    try:
        r = client.post("/api/reviews", json={"changes": [{"id": 1, "action": "accept"}]},
                        headers={"x-moodcam-token": token})
        assert r.status_code == 503 and "busy" in r.json()["detail"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    r = client.post("/api/reviews", json={"changes": [{"id": 1, "action": "accept"}]}, headers={"x-moodcam-token": token})
    assert r.status_code == 200                             # and goes through once the lock is free
    source.close()


def _write(client):
    return {"x-moodcam-token": client.get("/api/info").json()["write_token"], "content-type": "application/json"}


@pytest.mark.parametrize("body", [
    b'{"changes": [{"id": NaN, "action": "accept"}]}', b'{"changes": [{"id": Infinity, "action": "accept"}]}',
    b'{"changes": [{"id": 1, "action": "accept", "label": -Infinity}]}', b"[" * 5000 + b"]" * 5000,
    b'{"changes": ' + b"[" * 40 + b"]" * 40 + b"}", b"\xff\xfe{}",
])
def test_non_strict_json_is_a_short_4xx(source, body):
    client = TestClient(create_app(source, check_host=False))
    r = client.post("/api/reviews", content=body, headers=_write(client))
    assert r.status_code in (400, 422), (r.status_code, r.text[:300])
    assert len(r.content) < 300 and "detail" in r.json()
    assert client.get("/api/faces/1").json()["reviewed"] is False


def test_large_bodies_are_refused_before_parsing(source):
    client = TestClient(create_app(source, check_host=False))
    big = b'{"changes": [' + b",".join([b'{"id": 1, "action": "accept"}'] * 4000) + b"]}"   # ~120 KB
    r = client.post("/api/reviews", content=big, headers=_write(client))
    assert r.status_code == 413 and "KiB" in r.json()["detail"] and len(r.content) < 300
    # Chunked, without Content-Length: the cap holds on the bytes read.
    r = client.post("/api/reviews", content=iter([big[i:i + 8192] for i in range(0, len(big), 8192)]),
                    headers=_write(client))
    assert r.status_code == 413 and "content-length" not in {k.lower() for k in r.request.headers}
    assert r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/api/faces/1").json()["reviewed"] is False
    r = client.post("/api/reviews", content=b"{}", headers={**_write(client), "content-length": "x"})
    assert 400 <= r.status_code < 500


def test_validation_errors_do_not_echo_the_input(source):
    client = TestClient(create_app(source, check_host=False))
    huge = "A" * 50_000
    for body in ({"changes": [{"id": 1, "action": huge}]}, {"changes": [{"id": 1, "action": "accept", huge: 1}]},
                 {"changes": huge}, {"changes": [{"id": huge, "action": "accept"}] * 1}):
        r = client.post("/api/reviews", json=body, headers=_write(client))
        assert r.status_code == 422 and len(r.content) < 2000, (r.status_code, len(r.content))
        assert r.json()["detail"][0]["loc"][0] == "body"
    many = {"changes": [{"id": 0, "action": "nope", "label": "x"}] * 500}
    r = client.post("/api/reviews", json=many, headers=_write(client))
    assert r.status_code == 422 and len(r.json()["detail"]) == 20 and r.json()["errors"] > 20


def test_cli_port_in_use_fails_before_the_link(state_dir, capsys):
    import socket

    from edge.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["review", "--state", str(state_dir), "--port", str(port)]) == 2
    out, err = capsys.readouterr()
    assert "open http" not in out and err.count("\n") == 1
    assert err.startswith("moodcam review: error: cannot listen on 127.0.0.1:") and "--port" in err
