"""Who a session is, for the per-browser job cap: something a reload keeps, and nothing a shared link carries.

A Streamlit session ends with its tab: a reload is a new session with a new session id, so a cap counted
by session id is reset by a reload. Here a session's owner key is
- "browser:<token>" when the browser sent our cookie (LATENT_LAB_COOKIE), a random token
  (secrets.token_urlsafe) that a reload and every other tab of the same browser send again; or
- "address:<client address>" ("address:local" on loopback) where no cookie exists: a browser's very first
  page view, and a client that refuses cookies.
A session without the cookie mounts a tiny element that sets it (st.context.cookies is read-only on the
server, so the browser writes it); from the next reload or tab on, the browser is known by its token.

The token is not in the URL: a link copied from the address bar (how teachers share a view) must not
make every student count as the teacher. A token gives no access to anything: it only names whose share
of the job queue a job counts against. A client that discards its cookie on every visit is still bounded
by the per-address cap (ui.session_jobs.jobs_per_address, LATENT_LAB_JOBS_PER_ADDRESS).
"""

from __future__ import annotations

import re
import secrets

import streamlit as st

COOKIE = "latent_lab_browser"
COOKIE_MAX_AGE_S = 30 * 24 * 3600  # a month: long enough for a course, short enough to expire
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,64}")
_NEW_TOKEN = "_ll_browser_token"  # the token this session asked its browser to keep

_JS = """
export default function (component) {
  const { data } = component;
  const mine = document.cookie.split("; ").find((c) => c.startsWith(data.name + "="));
  const valid = mine && /^[A-Za-z0-9_-]{20,64}$/.test(mine.slice(data.name.length + 1));
  if (!valid) {  // another tab may have set one meanwhile: keep the first valid one
    const secure = location.protocol === "https:" ? "; Secure" : "";
    document.cookie = `${data.name}=${data.token}; path=/; max-age=${data.max_age}; SameSite=Strict${secure}`;
  }
}
"""
_set_cookie = st.components.v2.component("latent_lab_browser_token", js=_JS)


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # noqa: BLE001 - no client (bare mode): no cookie
        return None
    return value if isinstance(value, str) and _TOKEN.fullmatch(value) else None


def client_address() -> str | None:
    """The client's address as the server sees the connection (None on loopback or outside a session).
    Behind a reverse proxy this is the proxy's address: give the app its own per-address cap then."""
    try:
        ip = st.context.ip_address
    except Exception:  # noqa: BLE001
        return None
    return ip if isinstance(ip, str) and ip else None


def owner_key() -> str:
    """This session's owner key (see the module docstring)."""
    token = _cookie_token()
    if token:
        return f"browser:{token}"
    return f"address:{client_address() or 'local'}"


def remember_browser(container=st) -> None:
    """Ask the browser to keep a token (a no-op once it sent one): call once per page run."""
    if _cookie_token():
        return
    token = st.session_state.setdefault(_NEW_TOKEN, secrets.token_urlsafe(18))
    with container:
        _set_cookie(key="w_browser_token", data={"name": COOKIE, "token": token, "max_age": COOKIE_MAX_AGE_S})


OPERATOR_ENV = "LATENT_LAB_OPERATOR_TOKEN"
OPERATOR_PARAM = "operator"


def is_operator() -> bool:
    """The operator's view is shown only when LATENT_LAB_OPERATOR_TOKEN is set on the server and the same
    token is in the URL (?operator=TOKEN); compared in constant time."""
    import hmac
    import os

    wanted = os.environ.get(OPERATOR_ENV, "")
    given = st.query_params.get(OPERATOR_PARAM) or ""
    return bool(wanted) and hmac.compare_digest(wanted.encode(), given.encode())
