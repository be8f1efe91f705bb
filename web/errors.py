"""Error pages in the console's style: never raw JSON on a console path, never lose what was typed.

- a stranger opening a page is sent to /login (and back afterwards); a form sent without a
  live session gets a page that shows what was typed, so nothing is lost by signing in again;
- a role that may not use a page or action gets a 403 page saying whom to ask;
- a form whose CSRF token is missing or stale (an old tab, a session renewed meanwhile) gets
  a 400 page with the same form filled in and a fresh token: one click sends it again;
- a missing page, a wrong address or a broken request gets a page with a way back;
- anything unexpected gets a 500 page; the traceback goes to the log, not to the screen.
Webhook, health and metrics paths keep FastAPI's JSON answers (providers read them).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from web.pages import render
from web.security import CSRF_FIELD, FormExpired, NotSignedIn, Refused, current_staff
from web.words import label

log = logging.getLogger(__name__)

MACHINE_PATHS = ("/webhooks/", "/healthz", "/readyz", "/metrics")
NOT_KEPT = {CSRF_FIELD, "password", "new_password", "new_password_again", "current_password", "confirmed"}


def _is_machine_path(request: Request) -> bool:
    return request.url.path.startswith(MACHINE_PATHS)


async def typed_fields(request: Request) -> list[tuple[str, str]]:
    """What the person typed into the form being answered (passwords and tokens left out)."""
    if request.method in ("GET", "HEAD"):
        return []
    try:
        form = await request.form()
    except Exception:  # a body that is not a form: nothing to keep
        return []
    return [(key, value) for key, value in form.multi_items()
            if key not in NOT_KEPT and isinstance(value, str) and not isinstance(value, UploadFile)]


def _next_path(request: Request) -> str:
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return path


async def not_signed_in(request: Request, exc: Exception) -> Response:
    expired = isinstance(exc, NotSignedIn) and exc.expired
    if request.method in ("GET", "HEAD"):
        target = "/login?next=" + quote(_next_path(request), safe="")
        return RedirectResponse(target + ("&expired=1" if expired else ""), status_code=303)
    back = request.headers.get("referer", "") or "/"
    return render(request, "error.html", None, status_code=401, title="请先登录",
                  message="登录已过期（或尚未登录），这次提交没有保存。请复制下面您填写的内容，重新登录后再填一次。",
                  kept=await typed_fields(request), login_next=back if back.startswith("/") else "/")


async def refused(request: Request, exc: Exception) -> Response:
    staff = await current_staff(request)
    roles = exc.roles if isinstance(exc, Refused) else ()
    lang = staff.language if staff else "zh-Hans"
    needed = "、".join(label("role", str(r), lang) for r in roles)
    return render(request, "error.html", staff, status_code=403, title="没有权限",
                  message="您的账号不能使用这个页面或操作。需要的角色：{roles}。如需开通，请找系统管理员。",
                  message_values={"roles": needed}, kept=await typed_fields(request))


async def form_expired(request: Request, exc: Exception) -> Response:
    staff = await current_staff(request)
    return render(request, "form_expired.html", staff, status_code=400, action=request.url.path,
                  kept=await typed_fields(request))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if _is_machine_path(request):
        return await http_exception_handler(request, exc)
    staff = await current_staff(request)
    if exc.status_code == 404:
        return render(request, "error.html", staff, status_code=404, title="找不到这个页面",
                      message="这个地址没有页面，或者要找的记录已经不在了。请从上方的菜单重新进入。",
                      kept=await typed_fields(request))
    if exc.status_code == 405:
        return render(request, "error.html", staff, status_code=405, title="这个地址不能这样打开",
                      message="请从页面上的按钮进入，不要直接输入地址。", kept=await typed_fields(request))
    if exc.status_code == 413:
        return render(request, "error.html", staff, status_code=413, title="文件太大",
                      message="上传的内容太大了。请把文件拆小一些再试。", kept=[])
    return render(request, "error.html", staff, status_code=exc.status_code, title="无法完成",
                  message=str(exc.detail) if isinstance(exc.detail, str) else "请求没有完成，请返回重试。",
                  kept=await typed_fields(request), raw_message=True)


async def bad_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if _is_machine_path(request):
        return await request_validation_exception_handler(request, exc)
    staff = await current_staff(request)
    if any(err.get("loc", ("",))[0] == "path" for err in exc.errors()):
        return render(request, "error.html", staff, status_code=404, title="找不到这个页面",
                      message="这个地址没有页面，或者要找的记录已经不在了。请从上方的菜单重新进入。", kept=[])
    return render(request, "error.html", staff, status_code=400, title="填写的内容不完整",
                  message="有必填的内容没有填，或者格式不对。您填写的内容在下面，请返回补全后再提交。",
                  kept=await typed_fields(request))


async def crashed(request: Request, exc: Exception) -> Response:
    log.error("console request failed: %s %s (%s)", request.method, request.url.path, type(exc).__name__,
              exc_info=exc)
    if _is_machine_path(request):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": "internal error"}, status_code=500)
    staff: Any = getattr(request.state, "staff", None)
    return render(request, "error.html", staff, status_code=500, title="系统出错了",
                  message="这次操作没有完成，系统已经记下了这个错误。您填写的内容在下面，请稍后再试；一直不行请联系系统管理员。",
                  kept=await typed_fields(request))


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotSignedIn, not_signed_in)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(FormExpired, form_expired)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)
    app.add_exception_handler(Exception, crashed)
