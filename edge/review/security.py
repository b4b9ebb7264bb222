"""Who may talk to the review server. These are pictures of people's faces.

- Bound to a loopback address (the default), no login is needed, but the Host header must name
  the loopback host: a web page elsewhere that rebinds its DNS name to 127.0.0.1 is refused.
- Bound to any other address, a token is required on every request: the ``X-Moodcam-Token``
  header, or the ``moodcam_token`` cookie that opening the printed ``/?token=...`` link sets.
- State-changing requests (POST) always need the ``X-Moodcam-Token`` header, never just the
  cookie; a cross-site form can't set a header, so no other page can review on your behalf. On
  loopback without a token the page gets a per-process random one for this.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets

HEADER = "x-moodcam-token"
COOKIE = "moodcam_token"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def cookie_name(port: int | None) -> str:
    """Cookies ignore ports; one name per port keeps two servers on one host from clobbering."""
    return f"{COOKIE}_{port}" if port else COOKIE


def new_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str | None, b: str) -> bool:
    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def host_name(host_header: str) -> str:
    """'127.0.0.1:8080' -> '127.0.0.1', '[::1]:8080' -> '[::1]'."""
    if host_header.startswith("["):
        return host_header.split("]", 1)[0] + "]"
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


class Guard:
    """The policy above. ``token``: required on every request when set. ``check_host``: refuse
    Host headers that are not loopback names (use when bound to loopback)."""

    def __init__(self, token: str | None, check_host: bool):
        self.token = token
        self.write_token = token or new_token()
        self.check_host = check_host

    def check(self, method: str, host_header: str, header: str | None, cookie: str | None, query: str | None) -> tuple[int, str] | None:
        """None if allowed, else (status, reason)."""
        if self.check_host and not is_loopback(host_name(host_header or "")):
            return 421, (f"Host '{host_header}' is not a loopback name; open http://127.0.0.1:<port>/ "
                         "(or start the server with --host and a --token)")
        if self.token is not None and not (same(header, self.token) or same(cookie, self.token)
                                           or (method in ("GET", "HEAD") and same(query, self.token))):
            return 401, "a token is required: open the link printed when the server started (it ends in ?token=...)"
        if method not in ("GET", "HEAD", "OPTIONS") and not same(header, self.write_token):
            return 403, f"changes need the {HEADER} header (the page sends it; for scripts use the token printed at start)"
        return None
