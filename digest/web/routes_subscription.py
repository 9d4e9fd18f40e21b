"""The public subscription pages: sign-up with double opt-in, confirmation, unsubscribe
(including RFC 8058 one-click) and the preference page.

Every state change goes through ``subscribers.lifecycle``; these handlers only read forms, check
tokens and choose a page. Rules the pages keep:

- The sign-up answer is the same page, byte for byte, whatever the state of the address, and
  it is sent before the database is touched (the sign-up is recorded and the confirmation
  email sent after the response), so neither content nor timing tells whether an address is
  known. Only checks of the input itself (address syntax, name, timezone, categories) can
  turn the answer into a 400 page.
- ``GET /confirm/{token}`` and ``GET /unsubscribe/{token}`` (and HEAD) only show a button:
  link scanners follow GETs, and must neither confirm a sign-up someone else made nor
  unsubscribe anyone. The POST to the confirm URL confirms. The POST to the unsubscribe URL
  unsubscribes, with or without the one-click body, without cookies or CSRF token, answers
  200 and never redirects (RFC 8058).
- A token that is forged, damaged or made for another purpose is refused before any database
  work, with the same plain 400 page whatever was wrong with it.
- The preference form carries a CSRF value bound to its token; after a POST the browser is
  sent back to the same preference path (built here, never taken from the request).

Each path is one ``HTTPEndpoint`` so that a 405 lists every method the path accepts. Database
work never runs on the event loop: GET methods are sync (Starlette runs them in its thread
pool), POST methods read the form asynchronously and hand over with ``run_in_threadpool``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from typing import Any

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.endpoints import HTTPEndpoint
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from digest.db import session_scope
from digest.errors import InputError
from digest.web.ratelimit import client_key
from digest.web.services import WebServices, error_page, render, services
from subscribers import confirmation, lifecycle
from subscribers.models import Cause, Status, Subscriber
from subscribers.normalize import normalize_email, normalize_name, validate_timezone
from subscribers.tokens import Purpose

logger = logging.getLogger(__name__)

CATEGORIES: tuple[str, ...] = (
    "Developer Tools",
    "Writing & Content",
    "Image & Video",
    "Productivity",
    "Data & Analytics",
    "Customer Support",
)
# Statuses whose subscriber is still on the list (the others left or were removed).
ON_LIST = frozenset({Status.ACTIVE, Status.PENDING})
ACTOR = "web"
SOURCE = "web"
ONE_CLICK_FIELD = "List-Unsubscribe"
ONE_CLICK_VALUE = "One-Click"
# The forms have a handful of fields and never a file; refuse anything bigger before parsing it.
MAX_FORM_FIELDS = 32


# --- sign-up -------------------------------------------------------------------------------


class SubscribeEndpoint(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        return _subscribe_page(request, email="", name="", chosen=(), timezone="", first_name="")

    async def post(self, request: Request) -> Response:
        svc = services(request)
        wait = svc.signup_limiter.hit(client_key(request))
        if wait is not None:
            return error_page(
                request,
                429,
                "Too many sign-ups",
                "Too many sign-up attempts from your network. Please wait a minute and try again.",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        form = await _read_form(request)
        email = _text(form, "email")
        name = _text(form, "name")
        first_name = _text(form, "first_name")
        timezone = _text(form, "timezone")
        chosen = _strings(form, "categories")
        if _text(form, "website"):
            # Only bots fill the hidden field; they get the usual answer and nothing happens.
            return render(request, "check_inbox.html")
        try:
            if not email:
                raise InputError("Enter your email address.")
            if any(category not in CATEGORIES for category in chosen):
                raise InputError("Choose categories from the list.")
            # Checks of the input alone (no database): a bad field is answered here.
            normalize_email(email)
            normalize_name(name)
            normalize_name(first_name)
            zone = _timezone_or_default(svc, timezone)
        except InputError as exc:
            return _subscribe_page(
                request,
                email=email,
                name=name,
                first_name=first_name,
                chosen=chosen,
                timezone="",  # the browser's script fills it again
                error=_friendly(exc),
                status_code=400,
            )
        # The database is touched only once the answer is sent: the same page after the same
        # work whatever the address's state, so its timing does not tell known from new.
        background = BackgroundTask(
            _signup_and_confirm,
            svc,
            email=email,
            name=name,
            timezone=zone,
            categories=chosen,
            first_name=first_name,
        )
        return svc.templates.TemplateResponse(request, "check_inbox.html", background=background)


def _signup(
    svc: WebServices,
    *,
    email: str,
    name: str,
    timezone: str,
    categories: list[str],
    first_name: str = "",
) -> int | None:
    """Record the sign-up; the id of the subscriber to send a confirmation to, if any."""
    with svc.transaction() as session:
        outcome = lifecycle.signup(
            session,
            email,
            name=name,
            timezone=timezone,
            categories=categories,
            source=SOURCE,
            actor=ACTOR,
            first_name=first_name,
        )
        if outcome.subscriber is None or not outcome.should_send_confirmation:
            return None
        return outcome.subscriber.id


def _signup_and_confirm(
    svc: WebServices,
    *,
    email: str,
    name: str,
    timezone: str,
    categories: list[str],
    first_name: str = "",
) -> None:
    """After the response: record the sign-up, then send the confirmation if one is due (it
    is recorded before it is sent, see ``confirmation.send_confirmations``, so concurrent
    sign-ups send one email)."""
    try:
        subscriber_id = _signup(
            svc,
            email=email,
            name=name,
            timezone=timezone,
            categories=categories,
            first_name=first_name,
        )
        if subscriber_id is not None:
            confirmation.send_confirmation(svc.engine, svc.settings, svc.backend, subscriber_id)
    except Exception:
        logger.exception("could not record the sign-up or send its confirmation email")


def _timezone_or_default(svc: WebServices, timezone: str) -> str:
    """The browser fills the field; empty means the newsletter's zone, anything that is not an
    IANA zone is a bad request (``InputError``, answered with the form and a 400)."""
    return validate_timezone(timezone) if timezone else svc.settings.timezone


def _friendly(exc: InputError) -> str:
    message = str(exc)
    if message.startswith("invalid address"):
        return "That is not a valid email address. Please check it and try again."
    return message[:1].upper() + message[1:]


def _subscribe_page(
    request: Request,
    *,
    email: str,
    name: str,
    chosen: Sequence[str],
    timezone: str,
    first_name: str = "",
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    context = {
        "email": email,
        "name": name,
        "first_name": first_name,
        "chosen": list(chosen),
        "timezone": timezone,
        "categories": CATEGORIES,
        "error": error,
    }
    return render(request, "subscribe.html", context, status_code=status_code)


def _subscriber_of(svc: WebServices, token: str, purpose: Purpose) -> Subscriber | None:
    """The subscriber a link of ``purpose`` names; None when the token is not valid for it or
    the subscriber no longer exists."""
    subscriber_id = svc.signer.read(token, purpose)
    if subscriber_id is None:
        return None
    with session_scope(svc.engine) as session:
        return session.get(Subscriber, subscriber_id)


# --- confirmation --------------------------------------------------------------------------


class ConfirmEndpoint(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        """The confirmation page: one button, and no change (link scanners follow GETs)."""
        svc = services(request)
        token = request.path_params["token"]
        subscriber = _subscriber_of(svc, token, Purpose.CONFIRM)
        if subscriber is None:
            return invalid_link(request)
        if subscriber.status == Status.ACTIVE:
            return _confirmed_page(request, svc, subscriber)
        if subscriber.status != Status.PENDING:
            return _no_longer_on_the_list(request)
        context = {"email": subscriber.email, "action": f"/confirm/{token}"}
        return render(request, "confirm.html", context)

    async def post(self, request: Request) -> Response:
        """The page's button: activate a pending subscriber (idempotent)."""
        svc = services(request)
        subscriber_id = svc.signer.read(request.path_params["token"], Purpose.CONFIRM)
        if subscriber_id is None:
            return invalid_link(request)
        subscriber = await run_in_threadpool(_confirm, svc, subscriber_id)
        if subscriber is None:
            return invalid_link(request)
        if subscriber.status != Status.ACTIVE:
            # Unsubscribed, bounced or complained since the link was sent: a new sign-up decides.
            return _no_longer_on_the_list(request)
        return _confirmed_page(request, svc, subscriber)


def _confirm(svc: WebServices, subscriber_id: int) -> Subscriber | None:
    with svc.transaction() as session:
        return lifecycle.confirm(session, subscriber_id, actor=ACTOR)


def _confirmed_page(request: Request, svc: WebServices, subscriber: Subscriber) -> Response:
    assert subscriber.id is not None
    context = {
        "email": subscriber.email,
        "preferences_path": _preferences_path(svc, subscriber.id),
    }
    return render(request, "confirmed.html", context)


def _no_longer_on_the_list(request: Request) -> Response:
    return error_page(
        request,
        409,
        "This link can no longer be used",
        "This address is no longer on the list. Sign up again to come back.",
    )


# --- unsubscribe ---------------------------------------------------------------------------


class UnsubscribeEndpoint(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        """The confirmation page: a button, and no change (link scanners follow GETs)."""
        svc = services(request)
        token = request.path_params["token"]
        subscriber_id = svc.signer.read(token, Purpose.UNSUBSCRIBE)
        if subscriber_id is None:
            return invalid_link(request)
        with session_scope(svc.engine) as session:
            subscriber = session.get(Subscriber, subscriber_id)
        if subscriber is None:
            # The row was erased: there is nothing left to send to.
            return svc.unsubscribed_page.response(request, "")
        context: dict[str, Any] = {
            "email": subscriber.email,
            "already": subscriber.status not in ON_LIST,
            "action": f"/unsubscribe/{token}",
            "preferences_path": _preferences_path(svc, subscriber_id),
        }
        return render(request, "unsubscribe.html", context)

    async def post(self, request: Request) -> Response:
        """The page's button and RFC 8058 one-click: unsubscribe, 200, never a redirect."""
        svc = services(request)
        subscriber_id = svc.signer.read(request.path_params["token"], Purpose.UNSUBSCRIBE)
        if subscriber_id is None:
            return invalid_link(request)
        # The signed token alone decides (RFC 8058): a body that cannot be parsed (multipart
        # without a boundary, too many fields, bytes that are no form) comes from a mail
        # client's one-click, not from our page's button, and still unsubscribes.
        form = await _read_form_leniently(request)
        one_click = form is None or _text(form, ONE_CLICK_FIELD) == ONE_CLICK_VALUE
        cause = Cause.ONE_CLICK if one_click else Cause.LINK
        email = await run_in_threadpool(_unsubscribe, svc, subscriber_id, cause)
        return svc.unsubscribed_page.response(request, email)


def _unsubscribe(svc: WebServices, subscriber_id: int, cause: Cause) -> str:
    """Unsubscribe; the address, or "" when the row was erased (nothing left to send to)."""
    with svc.core_transaction() as connection:
        outcome = lifecycle.unsubscribe(connection, subscriber_id, cause=cause, actor=ACTOR)
    return "" if outcome is None else outcome.email


# --- preferences ---------------------------------------------------------------------------


class PreferencesEndpoint(HTTPEndpoint):
    def get(self, request: Request) -> Response:
        svc = services(request)
        token = request.path_params["token"]
        subscriber = _subscriber_of(svc, token, Purpose.PREFERENCES)
        if subscriber is None:
            return invalid_link(request)
        context = {
            "email": subscriber.email,
            "chosen": list(subscriber.categories),
            "paused": subscriber.paused,
            "votes": svc.settings.votes,
            "vote_links": subscriber.vote_links,
            "track": svc.settings.track_clicks or svc.settings.track_opens,
            "track_links": svc.settings.track_clicks,
            "track_opens": svc.settings.track_opens,
            "track_clicks": subscriber.track_clicks,
            "unsubscribed": subscriber.status not in ON_LIST,
            "categories": CATEGORIES,
            "action": f"/preferences/{token}",
            "csrf": svc.csrf.issue(token),
            "saved": "saved" in request.query_params,
        }
        return render(request, "preferences.html", context)

    async def post(self, request: Request) -> Response:
        svc = services(request)
        token = request.path_params["token"]
        subscriber_id = svc.signer.read(token, Purpose.PREFERENCES)
        if subscriber_id is None:
            return invalid_link(request)
        form = await _read_form(request)
        if not svc.csrf.check(token, _text(form, "csrf")):
            return error_page(
                request,
                403,
                "This form has expired",
                "Please reload the preference page and try again.",
            )
        action = _text(form, "action")
        chosen = _strings(form, "categories")
        if action not in {"save", "unsubscribe"} or any(c not in CATEGORIES for c in chosen):
            return error_page(request, 400, "Bad request", "The form was not understood.")
        paused = _text(form, "paused") == "1"
        # The box is on the form only while votes are on site-wide; otherwise keep the choice.
        vote_links = _text(form, "vote_links") == "1" if svc.settings.votes else None
        # The same holds for tracking: one choice covers clicks and the open pixel.
        tracking = svc.settings.track_clicks or svc.settings.track_opens
        track_clicks = _text(form, "track_clicks") == "1" if tracking else None
        found = await run_in_threadpool(
            functools.partial(
                _apply_preferences,
                svc,
                subscriber_id,
                action,
                categories=chosen,
                paused=paused,
                vote_links=vote_links,
                track_clicks=track_clicks,
            )
        )
        if not found:
            return invalid_link(request)
        # POST-redirect-GET to our own path: built here from the checked token, never from
        # anything else in the request.
        return RedirectResponse(f"/preferences/{token}?saved=1", status_code=303)


def _apply_preferences(
    svc: WebServices,
    subscriber_id: int,
    action: str,
    *,
    categories: list[str],
    paused: bool,
    vote_links: bool | None,
    track_clicks: bool | None = None,
) -> bool:
    """Save the form; False when the subscriber no longer exists."""
    with svc.transaction() as session:
        if action == "unsubscribe":
            outcome = lifecycle.unsubscribe(
                session, subscriber_id, cause=Cause.PREFERENCE_PAGE, actor=ACTOR
            )
            found = outcome is not None
        else:
            subscriber = lifecycle.update_preferences(
                session,
                subscriber_id,
                categories=categories,
                paused=paused,
                vote_links=vote_links,
                track_clicks=track_clicks,
                actor=ACTOR,
            )
            found = subscriber is not None
    return found


# --- shared --------------------------------------------------------------------------------


def invalid_link(request: Request) -> Response:
    """The one answer to every unusable token, whatever was wrong with it."""
    return error_page(
        request,
        400,
        "This link is not valid",
        "It may be incomplete or out of date. Copy the whole link from the email, "
        "or use the link in a more recent one.",
    )


def _preferences_path(svc: WebServices, subscriber_id: int) -> str:
    return f"/preferences/{svc.signer.make(subscriber_id, Purpose.PREFERENCES)}"


async def _read_form(request: Request) -> FormData:
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)


async def _read_form_leniently(request: Request) -> FormData | None:
    """The form, or None when the body is not one this endpoint can parse."""
    try:
        return await _read_form(request)
    except HTTPException as exc:
        if exc.status_code == 413:
            raise
        return None
    except (ValueError, KeyError, UnicodeError):
        return None


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _strings(form: FormData, name: str) -> list[str]:
    return [value for value in form.getlist(name) if isinstance(value, str)]


routes = [
    Route("/subscribe", SubscribeEndpoint),
    Route("/confirm/{token}", ConfirmEndpoint),
    Route("/unsubscribe/{token}", UnsubscribeEndpoint),
    Route("/preferences/{token}", PreferencesEndpoint),
]
