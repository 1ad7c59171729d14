"""Stateless CSRF protection: a cookie nonce and an HMAC of it in the form.

The form carries ``HMAC(secret, nonce + scope)``; a cross-site page cannot read the
cookie nor compute the token, and the cookie is ``SameSite=Strict`` besides.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

COOKIE_NAME = b"callnow_csrf"
_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{22,64}")
_TOKEN_RE = re.compile(r"[0-9a-f]{64}")


class CsrfTokens:
    """Issues and checks CSRF cookie nonces and form tokens.

    Args:
        secret: the daemon's secret key (at least 32 bytes).
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the CSRF secret must have at least 32 bytes")
        self._secret = secret

    @staticmethod
    def new_nonce() -> str:
        """A fresh cookie value."""
        return secrets.token_urlsafe(24)

    @staticmethod
    def valid_nonce(nonce: str | None) -> bool:
        """Whether a cookie value has the shape of one we issue."""
        return nonce is not None and _NONCE_RE.fullmatch(nonce) is not None

    def token_for(self, nonce: str, scope: str) -> str:
        """The form token for ``nonce`` on the form of ``scope`` (a CallNow ID)."""
        mac = hmac.new(self._secret, f"{nonce}\x1f{scope}".encode(), hashlib.sha256)
        return mac.hexdigest()

    def verify(self, nonce: str | None, scope: str, token: str | None) -> bool:
        """Whether ``token`` was issued for this cookie nonce and scope."""
        if not self.valid_nonce(nonce) or not token or nonce is None:
            return False
        if not _TOKEN_RE.fullmatch(token):
            return False  # not something we issue (and compare_digest wants ASCII)
        return hmac.compare_digest(self.token_for(nonce, scope), token)
