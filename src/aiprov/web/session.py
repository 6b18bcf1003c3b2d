"""Who a page's reader is: an API token kept in an HttpOnly cookie, and the CSRF check of every form.

The token is set by the login form and never written into a page. CSRF uses a double-submit token: a random
value in its own cookie that every form also carries in a hidden field; both cookies are SameSite=Strict, so
another site's form cannot send them, and the field stops a same-site page that cannot read the cookie.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from starlette.responses import Response

from aiprov.api.deps import ANONYMOUS, Caller
from aiprov.config import Container
from aiprov.errors import Forbidden, Unauthorized

TOKEN_COOKIE = "aiprov_token"
CSRF_COOKIE = "aiprov_csrf"
CSRF_FIELD = "csrf"
MAX_AGE_S = 8 * 3600


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def csrf_token(request: Request) -> str:
    """The reader's CSRF token: the cookie's, or a new one (which `remember_csrf` sets on the response)."""
    token = request.cookies.get(CSRF_COOKIE, "")
    if len(token) != 43:
        token = request.state.new_csrf = secrets.token_urlsafe(32)
    return token


def remember_csrf(request: Request, response: Response) -> None:
    """Set the CSRF cookie on `response` if `csrf_token` made a new one for this request."""
    token = getattr(request.state, "new_csrf", None)
    if token is not None:
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_secure(request), path="/")


def check_csrf(request: Request, submitted: str | None) -> None:
    """Raise Forbidden unless the form's CSRF field equals the reader's CSRF cookie."""
    cookie = request.cookies.get(CSRF_COOKIE)
    if not cookie or not submitted or not hmac.compare_digest(cookie.encode(), submitted.encode()):
        raise Forbidden("the form's CSRF token is missing or stale", hint="reload the page and send the form again")


def reader(request: Request, container: Container) -> Caller:
    """The caller whose token is in the reader's cookie; anonymous without one (call it off the event loop).

    Raises Unauthorized for a cookie whose token no longer works, and for no cookie when anonymous reads are off.
    """
    token = request.cookies.get(TOKEN_COOKIE)
    if not token:
        if not container.settings.anonymous_reads:
            raise Unauthorized("this hub needs an API token to read", hint="log in with your API token")
        return ANONYMOUS
    accounts = container.accounts
    principal = accounts.cached(token) or accounts.authenticate(token)
    return Caller(principal.user, frozenset(principal.scopes), principal.admin)


def log_in(container: Container, token: str, response: Response, *, secure: bool) -> Caller:
    """Check `token` and keep it in the reader's cookie on `response`. Raises Unauthorized for a bad token."""
    token = token.strip()
    if not token:
        raise Unauthorized("give an API token to log in", hint="`aiprov user add NAME` or `aiprov token add` makes one")
    principal = container.accounts.authenticate(token)
    response.set_cookie(
        TOKEN_COOKIE, token, max_age=MAX_AGE_S, httponly=True, samesite="strict", secure=secure, path="/"
    )
    return Caller(principal.user, frozenset(principal.scopes), principal.admin)


def log_out(response: Response) -> None:
    """Forget the reader's token (the cookie is cleared; the token itself stays valid until revoked)."""
    response.delete_cookie(TOKEN_COOKIE, path="/", samesite="strict", httponly=True)
