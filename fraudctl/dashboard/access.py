"""Who may use the dashboard, and which requests may change anything.

- On loopback (the default) the page needs no login: only this machine's users reach it.
  Served on any other address it needs one (HTTP Basic, the login's password compared in
  constant time): the review page resolves alerts, and a verdict is a label.
- A request that changes something (resolving a review) must carry the page's token in a
  header. The token is random per server start and only in the page itself, which another
  origin cannot read: a hostile page open in the analyst's browser can send a form to the
  dashboard, but never with the token (a custom header also needs a CORS preflight, which
  the dashboard does not answer).
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp

TOKEN_HEADER = "X-Fraudctl-Token"  # noqa: S105 (a header name, not a secret)


@dataclass(frozen=True)
class Login:
    user: str
    password: str

    def accepts(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(
                ":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared, always: the time taken says nothing about which one was wrong.
        user_ok = secrets.compare_digest(user.encode(), self.user.encode())
        password_ok = secrets.compare_digest(password.encode(), self.password.encode())
        return user_ok and password_ok


@dataclass(frozen=True)
class Access:
    login: Login | None = None
    # Who serves the page on loopback: the verdicts given there are theirs.
    local_user: str = "dashboard"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def analyst(self) -> str:
        """Who a verdict given on the page is recorded as: the login, or the local user."""
        return self.login.user if self.login else self.local_user

    def token_ok(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())


class RequireLogin(BaseHTTPMiddleware):
    def __init__(self, app: ASGIApp, login: Login) -> None:
        super().__init__(app)
        self.login = login

    async def dispatch(self, request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if request.url.path == "/health" or self.login.accepts(
                request.headers.get("authorization")):
            return await call_next(request)
        return JSONResponse({"error": "login required"}, status_code=401,
                            headers={"WWW-Authenticate": 'Basic realm="fraudctl", '
                                                         'charset="UTF-8"'})
