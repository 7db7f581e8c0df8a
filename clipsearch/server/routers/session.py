"""Logging the web page in when the server has a token (a cookie, HttpOnly, SameSite)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from clipsearch.server import schemas
from clipsearch.server.context import Ctx
from clipsearch.server.errors import ApiError
from clipsearch.server.routers import Feature
from clipsearch.server.security import COOKIE, token_matches

router = APIRouter(prefix="/api", tags=["session"])


@router.post("/session", status_code=204, responses={401: {"model": schemas.ErrorResponse}})
def login(body: schemas.TokenLogin, ctx: Ctx) -> Response:
    """Check the token and keep it in a cookie for this browser session.

    Scripts use `Authorization: Bearer TOKEN` instead. Without a token set, this is a no-op.
    """
    token = ctx.settings.token
    if token and not token_matches(body.token, token):
        raise ApiError(401, "unauthorized", "wrong token")
    response = Response(status_code=204)
    if token:
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.delete("/session", status_code=204)
def logout() -> Response:
    """Forget the cookie."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/")
    return response


FEATURE = Feature("session", "Session", router)
