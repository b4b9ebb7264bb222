"""What the review server accepts as a request body, checked before anything parses it.

A body is at most ``MAX_BODY_BYTES`` (the largest real one, 500 changes, is about 30 KB): a
longer one is refused with 413 as soon as its Content-Length says so, or, for a chunked body
without one, as soon as the bytes read pass the cap, so a client can never make the server hold
or parse megabytes. A JSON body must be strict JSON (RFC 8259): ``NaN``, ``Infinity`` and
``-Infinity`` (which Python's json module accepts) and nesting deeper than ``MAX_DEPTH`` are a
400 with one short message. Validation errors (422) name the field and the problem but never
echo more than a few characters of what was sent.
"""
from __future__ import annotations

import json
import math

MAX_BODY_BYTES = 64 * 1024
MAX_DEPTH = 32                  # the API's bodies nest 4 deep; Python's parser recurses per level
MAX_ERRORS = 20                 # validation errors listed in one 422 (the count says how many in all)
MAX_ECHO = 64                   # characters of a value or field name a 422 may repeat


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON; send finite numbers only")


def _depth(value, limit: int) -> int:
    """Nesting depth of a parsed JSON value, stopping past ``limit`` (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def strict_json_problem(body: bytes) -> str | None:
    """Why ``body`` is not strict JSON the API can take, or None (invalid JSON is left to FastAPI's 422)."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as exc:       # JSONDecodeError (a ValueError) included: FastAPI words it better
        if isinstance(exc, json.JSONDecodeError):
            return None
        return str(exc)
    except RecursionError:
        return f"JSON nested more than {MAX_DEPTH} deep"
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        return f"JSON nested more than {MAX_DEPTH} deep"
    return None


def short(value, limit: int = MAX_ECHO):
    """A value safe and small enough to repeat in an error: scalars only, strings cut to ``limit``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value if len(repr(value)) <= limit else f"{repr(value)[:limit]}..."
    if isinstance(value, str):
        return value if len(value) <= limit else value[:limit] + "..."
    return None


def validation_details(errors: list[dict]) -> dict:
    """A 422 body: at most MAX_ERRORS errors, each its type, where (loc) and message; ``input`` only
    when it is a short scalar."""
    shown = []
    for error in errors[:MAX_ERRORS]:
        item = {"type": error.get("type"), "loc": [short(part) for part in error.get("loc", ())],
                "msg": short(str(error.get("msg", "")), 200)}
        value = short(error.get("input"))
        if value is not None:
            item["input"] = value
        shown.append(item)
    return {"detail": shown, "errors": len(errors)}


class BodyCap:
    """ASGI middleware: reads the whole body (at most ``max_bytes``), refuses what is too large or
    not strict JSON, and hands the rest on unchanged."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, headers: dict[str, str] | None = None):
        self.app, self.max_bytes, self.headers = app, max_bytes, headers or {}

    async def _answer(self, send, status: int, message: str) -> None:
        body = json.dumps({"detail": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or ())
        length = headers.get(b"content-length")
        too_large = f"request body over {self.max_bytes // 1024} KiB; send at most 500 changes per request"
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                return await self._answer(send, 400, "Content-Length is not a number")
            if declared > self.max_bytes:
                return await self._answer(send, 413, too_large)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return await self._answer(send, 413, too_large)
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if body and content_type.endswith(b"json"):
            problem = strict_json_problem(body)
            if problem:
                return await self._answer(send, 400, f"request body: {problem}")
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)
