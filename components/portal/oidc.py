"""OpenID Connect sign-in to a host's portal: the administrator's identity provider, through authlib's client.

The issuer, the client id and the file holding the client secret are the host administrator's
(settings.OidcSettings, from the policy's `portal_oidc`: components/host/policy.py); a stack only
declares its users' `email`s, and an address proves only that stack's own desktops (accounts.by_email, then inventory's owner check). The flow is the
authorization code flow with PKCE (S256) and a nonce. authlib checks the state, and the ID token's
signature (the issuer's JWKS), issuer, audience, expiry and nonce. What a flow keeps between its two
requests (nonce, PKCE verifier, redirect URI) stays in this process (_PendingSignIns): the browser's
cookie holds only authlib's marker. The code, the tokens and the secret are never logged, and never in
a URL of the portal's.
"""
from __future__ import annotations

import logging
import re
import threading
import time

import httpx
from authlib.integrations.base_client import OAuthError
from authlib.integrations.starlette_client import OAuth
from joserfc.errors import JoseError
from starlette.requests import Request
from starlette.responses import Response

from .settings import OidcSettings

SCOPE = "openid email"
CLAIM = "email"                  # the claim a stack's users are mapped by (their declared `email`)
PENDING_S = 600                  # a sign-in at the provider may take this long
_NAME = "idp"                    # authlib's name for the one provider
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")   # an OAuth error code (RFC 6749, 4.1.2.1), safe to show and log
# authlib logs the PKCE verifier at DEBUG, and httpcore the exchanges: a secret never reaches a log line.
for _chatty in ("authlib", "httpx", "httpcore"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in; the message says why, and holds no secret."""


class _PendingSignIns:
    """authlib's cache: the flows begun and not yet finished, each for at most its expiry (and PENDING_S)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._values: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    async def get(self, key: str) -> str | None:
        with self._lock:
            expires, value = self._values.get(key, (0.0, None))
            if value is not None and self.clock() >= expires:
                del self._values[key]
                return None
            return value

    async def set(self, key: str, value: str, expires: float | None = None) -> None:
        with self._lock:
            now = self.clock()
            self._values = {k: v for k, v in self._values.items() if v[0] > now}   # forget abandoned flows
            self._values[key] = (now + min(expires or PENDING_S, PENDING_S), value)

    async def delete(self, key: str) -> None:
        with self._lock:
            self._values.pop(key, None)


class OidcSignIn:
    """The portal's client at the host's provider: begin sends the browser there, finish reads its answer."""

    def __init__(self, settings: OidcSettings):
        self.settings = settings
        self.oauth = OAuth(cache=_PendingSignIns())
        self.oauth.register(_NAME, client_id=settings.client_id, client_secret=settings.client_secret(),
                            server_metadata_url=settings.metadata_url,
                            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256",
                                           "token_endpoint_auth_method": "client_secret_basic"})
        self.client = getattr(self.oauth, _NAME)

    async def begin(self, request: Request, redirect_uri: str) -> Response:
        """A redirect to the provider's sign-in, with a new state, nonce and PKCE challenge."""
        try:
            metadata = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the provider could not be reached ({type(exc).__name__})") from None
        if metadata.get("issuer") != self.settings.issuer:      # OpenID Connect Discovery 1.0, section 4.3
            raise SignInRefused("the provider's discovery document names another issuer")
        return await self.client.authorize_redirect(request, redirect_uri)

    async def finish(self, request: Request) -> str:
        """The verified ID token's address; SignInRefused when the answer is anything but a valid sign-in."""
        try:
            token = await self.client.authorize_access_token(
                request, claims_options={"iss": {"essential": True, "values": [self.settings.issuer]}})
        except OAuthError as exc:        # its error may come from the callback's URL: shown only if it is a code
            code = exc.error if _ERROR_CODE.fullmatch(exc.error or "") else type(exc).__name__
            raise SignInRefused(f"the provider's answer was refused ({code})") from None
        except JoseError as exc:
            raise SignInRefused(f"the ID token was refused ({exc.error})") from None
        except httpx.HTTPError as exc:
            raise SignInRefused(f"the provider could not be reached ({type(exc).__name__})") from None
        claims = token.get("userinfo")
        if not claims:
            raise SignInRefused("the provider sent no ID token")
        if CLAIM not in claims:       # a provider may keep the scope's claims for its UserInfo endpoint
            claims = await self._userinfo(token, claims["sub"])
        email = claims.get(CLAIM)
        if not isinstance(email, str) or not email:
            raise SignInRefused(f"the provider sent no `{CLAIM}` for this identity")
        if claims.get("email_verified") in (False, "false"):      # (some providers send it as a string)
            raise SignInRefused("the provider says this identity's address is not verified")
        return email

    async def _userinfo(self, token: dict, sub: str) -> dict:
        """The UserInfo endpoint's claims, for the ID token's subject only (OpenID Connect Core, 5.3.2)."""
        try:
            claims = await self.client.userinfo(token=token)
        except (OAuthError, httpx.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the provider's UserInfo could not be read ({type(exc).__name__})") from None
        if claims.get("sub") != sub:
            raise SignInRefused("the provider's UserInfo is of another identity")
        return claims
