"""OpenID Connect sign-in to a host's portal: the administrator's identity provider, through authlib's client.

The issuer, the client id and the file holding the client secret are the host administrator's
(settings.OidcSettings, from the policy's `portal_oidc`: components/host/policy.py); a stack only
declares its users' `email`s, and an address proves only that stack's own desktops (accounts.by_email, then inventory's owner check). The flow is the
authorization code flow with PKCE (S256) and a nonce. authlib checks the state, and the ID token's
signature (the issuer's JWKS), issuer, audience, expiry and nonce. What a flow keeps between its two
requests (nonce, PKCE verifier, redirect URI) stays in this process (_PendingSignIns): the browser's
cookie holds only authlib's marker. The code, the tokens and the secret are never logged, and never in
a URL of the portal's.

An IdP group can grant the administrator's role: the policy's `portal_oidc.admin_groups`, read from the
claim `groups_claim` of the verified ID token, or of UserInfo for the same subject (Identity.groups).
Signing out ends the provider's session too, where its discovery document has an end_session_endpoint
(OpenID Connect RP-Initiated Logout 1.0, signed_out_at): the browser is sent there with the client id and
the portal's sign-in page to come back to, never with a token.
"""
from __future__ import annotations

import dataclasses
import logging
import re
import threading
import time
from urllib.parse import urlencode, urlsplit

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
log = logging.getLogger("vdesk.portal")


class SignInRefused(Exception):
    """The provider's answer does not sign anyone in; the message says why, and holds no secret."""


@dataclasses.dataclass(frozen=True)
class Identity:
    """Who the provider proved: their address, and their groups when the administrator asks for them."""

    email: str
    groups: frozenset[str] = frozenset()


def _groups(value) -> frozenset[str]:
    """A groups claim's values: a list of names (or one name); anything else names no group."""
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list):
        return frozenset(g for g in value if isinstance(g, str))
    return frozenset()


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
                            client_kwargs={"scope": " ".join(filter(None, (SCOPE, settings.groups_scope))),
                                           "code_challenge_method": "S256",
                                           "token_endpoint_auth_method": "client_secret_basic"})
        self.client = getattr(self.oauth, _NAME)
        self.wanted = (CLAIM, settings.groups_claim) if settings.admin_groups else (CLAIM,)

    async def begin(self, request: Request, redirect_uri: str) -> Response:
        """A redirect to the provider's sign-in, with a new state, nonce and PKCE challenge."""
        try:
            metadata = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the provider could not be reached ({type(exc).__name__})") from None
        if metadata.get("issuer") != self.settings.issuer:      # OpenID Connect Discovery 1.0, section 4.3
            raise SignInRefused("the provider's discovery document names another issuer")
        return await self.client.authorize_redirect(request, redirect_uri)

    async def finish(self, request: Request) -> Identity:
        """The verified ID token's identity; SignInRefused when the answer is anything but a valid sign-in."""
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
        if any(name not in claims for name in self.wanted):    # a provider may keep the scopes' claims for
            claims = {**await self._userinfo(token, claims["sub"]), **claims}   # UserInfo; the ID token's prevail
        email = claims.get(CLAIM)
        if not isinstance(email, str) or not email:
            raise SignInRefused(f"the provider sent no `{CLAIM}` for this identity")
        if claims.get("email_verified") in (False, "false"):      # (some providers send it as a string)
            raise SignInRefused("the provider says this identity's address is not verified")
        return Identity(email, _groups(claims.get(self.settings.groups_claim)) if self.settings.admin_groups
                        else frozenset())

    async def signed_out_at(self, back_to: str) -> str | None:
        """Where to send the browser so that the provider ends its session too (then back to `back_to`), or
        None when its discovery document has no end_session_endpoint (or cannot be read now)."""
        try:
            metadata = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("signout via=oidc: the provider's discovery document could not be read (%s); its "
                        "session is left as it is", type(exc).__name__)
            return None
        endpoint = metadata.get("end_session_endpoint")
        schemes = {"https", urlsplit(self.settings.issuer).scheme}       # (plain http only for a loopback issuer)
        if not isinstance(endpoint, str) or urlsplit(endpoint).scheme not in schemes or urlsplit(endpoint).fragment:
            return None
        query = urlencode({"client_id": self.settings.client_id, "post_logout_redirect_uri": back_to})
        return f"{endpoint}{'&' if urlsplit(endpoint).query else '?'}{query}"

    async def _userinfo(self, token: dict, sub: str) -> dict:
        """The UserInfo endpoint's claims, for the ID token's subject only (OpenID Connect Core, 5.3.2)."""
        try:
            claims = await self.client.userinfo(token=token)
        except (OAuthError, httpx.HTTPError, ValueError) as exc:
            raise SignInRefused(f"the provider's UserInfo could not be read ({type(exc).__name__})") from None
        if claims.get("sub") != sub:
            raise SignInRefused("the provider's UserInfo is of another identity")
        return claims
