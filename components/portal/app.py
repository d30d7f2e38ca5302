"""The portal's web application (Starlette): sign-in, the person's desktops, their actions and console links.

Every state-changing request is a POST carrying the session's CSRF token (and, when the browser sends
one, an Origin of this portal); every desktop a request names is looked up among the person's own, so
another person's desktop is refused (403) the same way as one that does not exist. One log line per
sign-in, action and console link: who, what, from where; never a password, a token or a cookie.
"""
from __future__ import annotations

import dataclasses
import hmac
import logging
import re
import secrets
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..console import service as console_service
from ..lifecycle.quotas import QuotaExceeded, lifecycle_dir_of
from ..names import name_problem
from ..console.resize import resize_of
from ..console.tokens import console_url, link_id, mint, revoke, signing_key
from . import accounts, inventory, oidc, onetime, usage, waking
from .limiter import AttemptLimiter
from .links import CONSOLE_COOKIE, link_claims
from .people import SESSIONS_FILE, Person, Sessions
from .settings import PortalSettings

log = logging.getLogger("vdesk.portal")
_HERE = Path(__file__).parent
SESSION_COOKIE = "vdesk_portal"
_USER_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_EMAIL = re.compile(r"[A-Za-z0-9._%+'-]{1,64}@[A-Za-z0-9.-]{1,253}")   # what a person's address may be to log it
_HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self' http: https:",
            "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
            "X-Frame-Options": "DENY"}


@dataclasses.dataclass(frozen=True)
class PortalConfig:
    """One host's portal: its state directory, the host's libvirt, and its console gateway's directory."""

    portal_dir: Path              # accounts/ (the stacks' records) and the session signing key
    libvirt_uri: str
    host: str                     # the host's name, as stacks call it
    console_dir: Path | None      # the console gateway's (its signing key and its address); None: no consoles
    settings: PortalSettings = PortalSettings()


def _loggable(user: str) -> str:
    """A user name as typed, safe for a log line (anything odd is not echoed)."""
    return user if _USER_NAME.fullmatch(user or "") else "<invalid>"


def _loggable_desktop(name: str) -> str:
    return "<invalid>" if name_problem(name) else name


def create_app(config: PortalConfig, *, limiter: AttemptLimiter | None = None) -> Starlette:
    settings = config.settings
    limiter = limiter or AttemptLimiter()
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    secret = signing_key(config.portal_dir, create=True)
    sessions = Sessions(settings.session_s, config.portal_dir / SESSIONS_FILE)     # kept across a restart
    identity_provider = oidc.OidcSignIn(settings.oidc) if settings.oidc else None

    def client(request: Request) -> str:
        return request.client.host if request.client else "-"

    def csrf_token(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def person_of(request: Request) -> Person | None:
        return sessions.get(request.session.get("sid"))

    def page(request: Request, name: str, status: int = 200, **context) -> Response:
        used = usage.last_used(config.portal_dir)
        context.update(host=config.host, person=person_of(request), csrf=csrf_token(request),
                       oidc=identity_provider is not None,
                       last_used=lambda desk: usage.shown(used.get((desk.stack, desk.name))))
        response = templates.TemplateResponse(request, name, context, status_code=status)
        response.headers.update(_HEADERS)
        return response

    async def checked_form(request: Request):
        """The POSTed form, once its CSRF token (and Origin, when sent) are this session's and this portal's."""
        form = await request.form()
        origin = request.headers.get("origin")
        ours = f"{request.url.scheme}://{request.url.netloc}"
        if origin is not None and urlsplit(origin)._replace(path="").geturl() != ours:
            log.info("refused from=%s reason=foreign origin path=%s", client(request), request.url.path)
            return None
        sent, expected = str(form.get("csrf") or ""), request.session.get("csrf") or ""
        if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
            log.info("refused from=%s reason=bad csrf token path=%s", client(request), request.url.path)
            return None
        return form

    def refused(request: Request, reason: str, status: int = 403, title: str = "Refused") -> Response:
        return page(request, "refused.html", status, reason=reason, title=title)

    def none_of_theirs(request: Request) -> Response:
        """Another person's desktop, and one that does not exist, get this same 403: true of both, it tells
        nobody which one it was (nor echoes the name)."""
        return refused(request, "You have no desktop of that name on this host.", title="No desktop of yours")

    def still_theirs(person: Person) -> list[tuple[str, str]]:
        """The desktops proven at sign-in that their stacks still list the person on (a removal counts at once)."""
        records = accounts.load(config.portal_dir)
        listed = set(accounts.by_email(records, person.email)) if person.email else \
            {(r.stack, r.desktop) for r in records if person.user in r.users}
        return [p for p in person.desktops if p in listed]

    async def mine(request: Request, person: Person, name: str) -> inventory.Desktop | None:
        try:
            return await run_in_threadpool(inventory.one_of, config.libvirt_uri, config.host, still_theirs(person),
                                           name)
        except inventory.NotYours:
            log.info("refused user=%s desktop=%s from=%s reason=not theirs", person.user, _loggable_desktop(name),
                     client(request))
            return None

    def to_signin() -> Response:
        return RedirectResponse("/signin", status_code=303)

    async def home(request: Request) -> Response:
        person = person_of(request)
        if person is None:
            return to_signin()
        desks = await run_in_threadpool(inventory.desktops_of, config.libvirt_uri, config.host,
                                        still_theirs(person))
        action, _, name = (request.query_params.get("done") or "").partition(" ")
        done = f"{action.capitalize()}: {name}" if action in inventory.ACTIONS and name in {d.name for d in desks} \
            else None                             # what was done, never text from the URL as it came
        if not desks and person.email:
            done = (f"Signed in as {person.email}, but no stack on this host gives that address a desktop: ask "
                    "the person who declares yours to set your user's email.")
        return page(request, "desktops.html", desktops=desks, actions=inventory.ACTIONS, message=done)

    async def desktop(request: Request) -> Response:
        person = person_of(request)
        if person is None:
            return to_signin()
        desk = await mine(request, person, request.path_params["name"])
        if desk is None:
            return none_of_theirs(request)
        return page(request, "desktops.html", desktops=[desk], actions=inventory.ACTIONS)

    async def signin(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "signin.html")
        form = await checked_form(request)
        if form is None:
            return refused(request, "The sign-in form was stale; load it again.")
        user, password = str(form.get("user") or ""), str(form.get("password") or "")
        source = client(request)
        if not limiter.allow(source, user):
            log.info("signin user=%s from=%s result=rate-limited", _loggable(user), source)
            return page(request, "signin.html", 429, message="Too many attempts; wait a few minutes.")
        proven, admin = [], False
        if _USER_NAME.fullmatch(user) and password:
            proven = await run_in_threadpool(accounts.verify, accounts.load(config.portal_dir), user, password)
            admin = await run_in_threadpool(settings.admins.by_password, user, password)
        if not proven and not admin:
            log.info("signin user=%s from=%s result=refused", _loggable(user), source)
            return page(request, "signin.html", 401, message="Wrong user or password.")
        return signed_in(request, user, proven, admin=admin)

    def signed_in(request: Request, user: str, proven: list[tuple[str, str]], email: str | None = None,
                  admin: bool = False, via: str = "password") -> Response:
        """One server-side session, however the person proved who they are."""
        sessions.close(request.session.get("sid"))
        request.session.clear()                                   # a new session id and CSRF token
        request.session["sid"] = sessions.open(user, proven, client(request), email=email, admin=admin)
        log.info("signin user=%s from=%s result=ok desktops=%s via=%s%s", user, client(request),
                 ",".join(d for _s, d in proven), "oidc" if email else via, " admin=yes" if admin else "")
        return RedirectResponse("/", status_code=303)

    async def signin_link(request: Request) -> Response:
        """A one-time sign-in link (onetime.py): the page's script posts the token from the URL's fragment."""
        if request.method == "GET":
            return page(request, "link.html")
        form = await checked_form(request)
        if form is None:
            return refused(request, "The sign-in page was stale; open the link again.", title="Sign-in refused")
        source = client(request)
        if not limiter.allow(source, f"link from {source}"):       # a token cannot be guessed: per client
            log.info("signin via=link from=%s result=rate-limited", source)
            return page(request, "link.html", 429, message="Too many attempts; wait a few minutes.")
        try:
            grant = await run_in_threadpool(onetime.redeem, config.portal_dir, str(form.get("token") or ""))
        except onetime.LinkRefused as exc:
            log.info("signin via=link from=%s result=refused reason=%s", source, exc)
            return refused(request, "This sign-in link was used already, has expired, or is not this portal's: "
                                    "`make access` prints a new one.", 401, title="Sign-in refused")
        return signed_in(request, grant.user, [(grant.stack, grant.desktop)], via="link")

    async def oidc_signin(request: Request) -> Response:
        if identity_provider is None:
            return PlainTextResponse("no identity provider on this host", status_code=404)
        try:
            return await identity_provider.begin(request, str(request.url_for("oidc_callback")))
        except oidc.SignInRefused as exc:
            log.warning("signin via=oidc from=%s result=refused reason=%s", client(request), exc)
            return refused(request, "The identity provider cannot be reached; try again later.", 503,
                           title="Sign-in refused")

    async def oidc_callback(request: Request) -> Response:
        if identity_provider is None:
            return PlainTextResponse("no identity provider on this host", status_code=404)
        source = client(request)
        try:
            identity = await identity_provider.finish(request)
        except oidc.SignInRefused as exc:
            log.info("signin via=oidc from=%s result=refused reason=%s", source, exc)
            return refused(request, f"Your sign-in was refused: {exc}. Sign in again.", title="Sign-in refused")
        email = identity.email
        if not _EMAIL.fullmatch(email):
            log.info("signin via=oidc from=%s result=refused reason=an odd email claim", source)
            return refused(request, "Your identity provider sent an address this portal does not take.",
                           title="Sign-in refused")
        proven = accounts.by_email(accounts.load(config.portal_dir), email)
        admin = settings.admins.by_email(email) or settings.oidc.grants_admin(identity.groups)
        return signed_in(request, email, proven, email=email, admin=admin)

    async def signout(request: Request) -> Response:
        if await checked_form(request) is None:
            return refused(request, "The form was stale; load the page again.")
        links = sessions.links_of(request.session.get("sid"))
        person = sessions.close(request.session.get("sid"))
        request.session.clear()
        if config.console_dir is not None:          # a console opened from this sign-in ends with it
            for desktop_name, link in links:
                await run_in_threadpool(revoke, config.console_dir, desktop_name, link)
        at_provider = None
        if person is not None and person.email and identity_provider is not None:   # its session ends too
            at_provider = await identity_provider.signed_out_at(str(request.url_for("signin")))
        if person is not None:
            log.info("signout user=%s from=%s%s", person.user, client(request),
                     " at_provider=yes" if at_provider else "")
        response = RedirectResponse(at_provider, status_code=303) if at_provider else to_signin()
        response.delete_cookie(CONSOLE_COOKIE, path="/")
        return response

    async def on_their_desktop(request: Request):
        """(person, desktop) for a POST on one of the person's desktops, or the Response that refuses it."""
        person = person_of(request)
        if person is None:
            return to_signin()
        if await checked_form(request) is None:
            return refused(request, "The form was stale; load the page again.")
        desk = await mine(request, person, request.path_params["name"])
        return none_of_theirs(request) if desk is None else (person, desk)

    async def act(request: Request) -> Response:
        action = request.path_params["action"]
        if action not in inventory.ACTIONS:
            return PlainTextResponse("no such action", status_code=404)
        if isinstance(found := await on_their_desktop(request), Response):
            return found
        person, desk = found
        try:
            await run_in_threadpool(inventory.act, config.libvirt_uri, desk, action, lifecycle_dir_of(config.portal_dir))
        except QuotaExceeded as exc:
            log.info("action user=%s desktop=%s action=%s from=%s result=refused reason=%s", person.user, desk.name,
                     action, client(request), exc)
            return refused(request, str(exc), 409, title="Over a quota")
        log.info("action user=%s desktop=%s action=%s from=%s", person.user, desk.name, action, client(request))
        return RedirectResponse(f"/?done={action}+{desk.name}", status_code=303)

    async def open_console(request: Request) -> Response:
        if isinstance(found := await on_their_desktop(request), Response):
            return found
        person, desk = found
        if desk.asleep:                           # woken behind a page that opens it once it runs
            if why := await run_in_threadpool(waking.quota_refusal, config.libvirt_uri, config.portal_dir, desk.name):
                log.info("wake user=%s desktop=%s from=%s result=refused reason=%s", person.user, desk.name,
                         client(request), why)
                return refused(request, why, 409, title="Over a quota")
            response = page(request, "waking.html", 202, desk=desk)
            response.background = BackgroundTask(waking.wake, config.libvirt_uri, desk.name, person.user,
                                                 lifecycle_dir_of(config.portal_dir))
            return response
        base = console_service.base_url(config.console_dir) if config.console_dir else None
        if base is None:
            return refused(request, "The host's console gateway is not running.", 503, title="Unavailable")
        token, _expires = mint(signing_key(config.console_dir), desk.name, settings.link_validity_s,
                               stack=desk.stack,
                               extra=link_claims(person, desk.stack, person.since + settings.session_s))
        sessions.gave_link(request.session.get("sid"), desk.name, link_id(token))
        await run_in_threadpool(usage.record, config.portal_dir, desk.stack, desk.name, person.user)
        log.info("console user=%s desktop=%s from=%s valid_for=%ds", person.user, desk.name, client(request),
                 settings.link_validity_s)
        resize = await run_in_threadpool(resize_of, config.libvirt_uri, desk.name)
        response = RedirectResponse(console_url(base, desk.name, token, resize), status_code=303)
        response.set_cookie(CONSOLE_COOKIE, person.bind, max_age=settings.session_s, path="/", httponly=True,
                            samesite="strict", secure=settings.tls)
        return response

    async def viewer(request: Request) -> Response:
        """The desktop's remote-viewer file, to its person only: a POST with the CSRF token like an action,
        because the file holds the display password (what a .vv file needs to connect), never cached."""
        if isinstance(found := await on_their_desktop(request), Response):
            return found
        person, desk = found
        if desk.asleep:                           # a viewer opens it too: woken first (the file names its display)
            if why := await run_in_threadpool(waking.quota_refusal, config.libvirt_uri, config.portal_dir, desk.name):
                log.info("wake user=%s desktop=%s from=%s result=refused reason=%s", person.user, desk.name,
                         client(request), why)
                return refused(request, why, 409, title="Over a quota")
            await run_in_threadpool(waking.wake, config.libvirt_uri, desk.name, person.user,
                                    lifecycle_dir_of(config.portal_dir))
        text = await run_in_threadpool(inventory.viewer_of, config.libvirt_uri, desk, person.user)
        if text is None:
            return refused(request, "This desktop has no display a viewer file can reach now (is it running?).", 404,
                           title="No viewer file")
        log.info("viewer user=%s desktop=%s from=%s", person.user, desk.name, client(request))
        return Response(text, media_type="application/x-virt-viewer",
                        headers={**_HEADERS, "Content-Disposition": f'attachment; filename="{desk.name}.vv"'})

    async def fetched(request: Request):
        """The person's desktop a GET of the page's own (a thumbnail, a state) names, or the Response refusing it."""
        person = person_of(request)
        if person is None:
            return PlainTextResponse("sign in first", status_code=401)
        desk = await mine(request, person, request.path_params["name"])
        return PlainTextResponse("no desktop of yours", status_code=403) if desk is None else desk

    async def desktop_state(request: Request) -> Response:
        """What the waking page asks each second."""
        if isinstance(desk := await fetched(request), Response):
            return desk
        return JSONResponse({"state": desk.state}, headers=_HEADERS)

    async def thumbnail(request: Request) -> Response:
        if isinstance(desk := await fetched(request), Response):
            return desk
        png = await run_in_threadpool(inventory.thumbnail, config.libvirt_uri, desk)
        if png is None:
            return PlainTextResponse("no screen to show", status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    def their_names(records) -> dict[tuple[str, str], str]:
        return {(r.stack, r.desktop): ", ".join(r.users) for r in records}

    async def administration(request: Request) -> Response:
        """Every desktop of every stack on the host, and everyone signed in: for the host's administrators."""
        person = person_of(request)
        if person is None:
            return to_signin()
        if not person.admin:
            log.info("refused user=%s from=%s reason=not an administrator path=/admin", person.user,
                     client(request))
            return refused(request, "This page is for the host's administrators.", title="For administrators")
        desks = await run_in_threadpool(inventory.every_desktop, config.libvirt_uri, config.host)
        ended = request.query_params.get("ended") or ""
        message = f"Ended the sessions of {ended}." if _USER_NAME.fullmatch(ended) or _EMAIL.fullmatch(ended) \
            else None
        return page(request, "admin.html", desktops=desks, people=sessions.signed_in(),
                    users_of=their_names(accounts.load(config.portal_dir)), since=usage.shown, message=message)

    async def end_sessions(request: Request) -> Response:
        """End every session of one person, and revoke each console link those sessions were given (the
        gateway closes a console open on one within a second: console/tokens.py)."""
        person = person_of(request)
        if person is None:
            return to_signin()
        form = await checked_form(request)
        if form is None:
            return refused(request, "The form was stale; load the page again.")
        if not person.admin:
            log.info("refused user=%s from=%s reason=not an administrator path=/admin/end", person.user,
                     client(request))
            return refused(request, "This page is for the host's administrators.", title="For administrators")
        user = str(form.get("user") or "")
        if not (_USER_NAME.fullmatch(user) or _EMAIL.fullmatch(user)):
            return refused(request, "No such person.", 400, title="Refused")
        count, links = sessions.end_all_of(user)
        if config.console_dir is not None:
            for desktop_name, link in links:
                await run_in_threadpool(revoke, config.console_dir, desktop_name, link)
        log.info("admin user=%s ended sessions of=%s sessions=%d links_revoked=%d from=%s", person.user, user,
                 count, len(links), client(request))
        return RedirectResponse("/admin?" + urlencode({"ended": user}), status_code=303)

    routes = [
        Route("/", home, name="home"),
        Route("/signin", signin, methods=["GET", "POST"], name="signin"),
        Route("/signout", signout, methods=["POST"], name="signout"),
        Route(onetime.PATH, signin_link, methods=["GET", "POST"], name="signin_link"),
        Route("/oidc/signin", oidc_signin, name="oidc_signin"),
        Route("/oidc/callback", oidc_callback, name="oidc_callback"),
        Route("/admin", administration, name="administration"),
        Route("/admin/end", end_sessions, methods=["POST"], name="end_sessions"),
        Route("/desktops/{name}", desktop, name="desktop"),
        Route("/desktops/{name}/thumbnail.png", thumbnail, name="thumbnail"),
        Route("/desktops/{name}/state", desktop_state, name="desktop_state"),
        Route("/desktops/{name}/open", open_console, methods=["POST"], name="open_console"),
        Route("/desktops/{name}/viewer.vv", viewer, methods=["POST"], name="viewer"),
        Route("/desktops/{name}/{action}", act, methods=["POST"], name="act"),
        Mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key=secret.hex(), session_cookie=SESSION_COOKIE,
                             max_age=settings.session_s, same_site="lax", https_only=settings.tls)]
    return Starlette(routes=routes, middleware=middleware)
