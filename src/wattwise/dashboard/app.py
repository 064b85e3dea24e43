"""The dashboard: a read-only web app over the run store, every page rendered on the server and also served as
JSON under ``/api``.

Pages: ``/`` (runs, with filters and sorting), ``/runs/{id}`` (the report of one run), ``/compare?ids=A,B``.
JSON: ``/api/runs``, ``/api/runs/{id}``, ``/api/runs/{id}/samples``, ``/api/compare?ids=A,B``.

Nothing it serves can change the store: the store is opened read-only (runs whose process is gone are *shown*
incomplete, never rewritten), only GET and HEAD are routed, and a run id in a path or a query must look like a run
id (letters, digits, ``.``, ``_``, ``-``) before it reaches the store, so ``../../etc/passwd`` or ``1' OR 1=1``
get a 400 and no data. Pages carry a Content-Security-Policy that allows no script and no request elsewhere.
Bound to a non-loopback address, every request needs the token (see :mod:`wattwise.dashboard.auth`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from wattwise.errors import ConfigError, RunNotFoundError, StoreError
from wattwise.report.safe import printable

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from wattwise.records import Artifact
    from wattwise.report.html import Pages
    from wattwise.store.base import RunStore

__all__ = ["PAGE_SIZE", "create_app"]

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
MAX_OFFSET = 10_000_000
SAMPLE_PAGE = 10_000  # samples per /api/runs/ID/samples answer by default
MAX_SAMPLE_PAGE = 200_000
_REF = re.compile(r"^(?:latest|[A-Za-z0-9][A-Za-z0-9._-]{3,127})$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
_SORTS = {"started": "started_at", "energy": "energy_j", "co2e": "co2e_g", "duration": "duration_s", "name": "name"}
_STATUSES = ("running", "complete", "incomplete", "failed")
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"


class BadRequest(Exception):
    """A request the dashboard refuses (400) with the reason."""


def _ref(value: str) -> str:
    if not _REF.match(value) or ".." in value:
        raise BadRequest(f"{printable(value)[:80]!r} is not an id; ids look like 20261203-124606-e39cb2")
    return value


def _refs(request: Request) -> list[str]:
    raw = request.query_params.getlist("ids")
    ids = [part.strip() for item in raw for part in item.split(",") if part.strip()]
    return [_ref(i) for i in ids]


def _list_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"unknown status; use one of {', '.join(_STATUSES)}")
    sort = q.get("sort") or "started"
    if sort not in _SORTS:
        raise BadRequest(f"cannot sort by that; use one of {', '.join(_SORTS)}")
    order = q.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise BadRequest("order is asc or desc")
    args: dict[str, Any] = {"status": status, "order_by": _SORTS[sort], "descending": order == "desc"}
    for key in ("name_contains", "region"):
        value = q.get("name" if key == "name_contains" else key) or None
        if value is not None and not _NAME.match(value):
            raise BadRequest(f"{key.split('_')[0]} must be 1 to 200 printable characters")
        args[key] = value
    try:
        limit = int(q.get("limit") or PAGE_SIZE)
        offset = int(q.get("offset") or 0)
    except ValueError:
        raise BadRequest("limit and offset are whole numbers") from None
    if not 1 <= limit <= MAX_PAGE_SIZE or not 0 <= offset <= MAX_OFFSET:
        raise BadRequest(f"limit is 1 to {MAX_PAGE_SIZE}, offset 0 to {MAX_OFFSET:,}")
    args.update(limit=limit, offset=offset)
    return args


def _find_artifact(store: RunStore, ref: str, plans: bool) -> Artifact:
    """A saved plan, or a saved estimate of either kind (the newest of both for "latest")."""
    kinds = ("plan",) if plans else ("training-estimate", "inference-estimate")
    found = []
    for kind in kinds:
        try:
            found.append(store.get_artifact(ref, kind))
        except RunNotFoundError:
            continue
    if ref == "latest" and found:
        return max(found, key=lambda a: a.created_at)
    if len(found) == 1:
        return found[0]
    what = "plan" if plans else "estimate"
    if found:
        raise RunNotFoundError(f"ambiguous prefix {ref!r}: give more characters of the {what} id")
    raise RunNotFoundError(f"no {what} matches {ref!r}; {'/plans' if plans else '/estimates'} lists them")


def create_app(
    store: RunStore,
    *,
    token: str | None = None,
    store_label: str = "",
    allowed_hosts: tuple[str, ...] | None = None,
) -> Starlette:
    """The app over an open store (read-only: pass ``open_store(url, read_only=True)``). With ``token``, every
    request must carry it; with ``allowed_hosts``, a request naming another Host is refused (a web page elsewhere
    cannot reach a loopback dashboard through DNS rebinding). See :mod:`wattwise.dashboard.auth`."""
    try:
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse
        from starlette.routing import Route
    except ImportError:
        from wattwise.report.html import missing_extra

        raise missing_extra("the dashboard") from None
    from wattwise.dashboard.auth import SecurityMiddleware
    from wattwise.report.build import compare_page, run_page
    from wattwise.report.compare import compare
    from wattwise.report.html import Pages
    from wattwise.report.run_view import build_run_view

    if not store.read_only:
        raise ConfigError("the dashboard serves a read-only store; open it with read_only=True")
    pages: Pages = Pages()
    context: dict[str, object] = {"base": "", "store_label": store_label}

    def page(template_html: str, status: int = 200) -> HTMLResponse:
        return HTMLResponse(template_html, status_code=status)

    def error_page(message: str, status: int) -> HTMLResponse:
        return page(pages.render("error.html", standalone=False, title="wattwise", message=message, **context), status)

    def runs_page(request: Request) -> Response:
        args = _list_args(request)
        runs = store.list_runs(**args)
        rows = [r.to_dict() for r in runs]
        if request.url.path.startswith("/api/"):
            return JSONResponse({"runs": rows, "count": len(rows), **args})
        query = {k: v for k, v in request.query_params.items() if k not in ("offset",)}
        return page(
            pages.render(
                "runs.html",
                standalone=False,
                title="wattwise runs",
                runs=runs,
                args=args,
                query=query,
                sorts=list(_SORTS),
                statuses=_STATUSES,
                page_size=args["limit"],
                **context,
            )
        )

    def run_detail(request: Request) -> Response:
        run = store.get(_ref(request.path_params["run_id"]))
        if request.path_params["run_id"] == "latest" and not request.url.path.startswith("/api/"):
            return RedirectResponse(f"/runs/{run.id}", status_code=303)
        view = build_run_view(run, store.iter_samples(run.id))
        if request.url.path.startswith("/api/"):
            return JSONResponse(view.to_dict())
        return page(run_page(view, pages=pages, standalone=False, base="", store_label=store_label))

    def run_samples(request: Request) -> Response:
        import itertools

        run = store.get(_ref(request.path_params["run_id"]))
        q = request.query_params
        channel = q.get("channel")
        try:
            limit = int(q.get("limit") or SAMPLE_PAGE)
            offset = int(q.get("offset") or 0)
        except ValueError:
            raise BadRequest("limit and offset are whole numbers") from None
        if not 1 <= limit <= MAX_SAMPLE_PAGE or not 0 <= offset <= 10**9:
            raise BadRequest(f"limit is 1 to {MAX_SAMPLE_PAGE:,}, offset 0 or more")
        chosen = (s for s in store.iter_samples(run.id) if channel is None or s.channel == channel)
        page_rows = list(itertools.islice(chosen, offset, offset + limit + 1))  # one more: is there a next page?
        rows = [
            {"t_s": s.t_s, "channel": s.channel, "power_w": s.power_w, "energy_j": s.energy_j}
            for s in page_rows[:limit]
        ]
        more = len(page_rows) > limit
        return JSONResponse(
            {"run_id": run.id, "samples": rows, "count": len(rows), "next_offset": offset + limit if more else None}
        )

    def compare_view(request: Request) -> Response:
        refs = _refs(request)
        api = request.url.path.startswith("/api/")
        if not refs and not api:
            recent = store.list_runs(limit=100)
            return page(pages.render("pick.html", standalone=False, title="compare runs", runs=recent, **context))
        runs = [store.get(ref) for ref in refs]
        cmp = compare(runs)
        if api:
            return JSONResponse(cmp.to_dict())
        return page(compare_page(cmp, pages=pages, standalone=False, run_links=True, base="", store_label=store_label))

    def artifacts_page(request: Request) -> Response:
        plans = request.url.path.rstrip("/").endswith("plans")
        kinds = ("plan",) if plans else ("training-estimate", "inference-estimate")
        found = [a for kind in kinds for a in store.list_artifacts(kind, limit=MAX_PAGE_SIZE)]
        found.sort(key=lambda a: a.created_at, reverse=True)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"items": [a.to_dict() for a in found], "count": len(found)})
        section = "plans" if plans else "estimates"
        return page(
            pages.render(
                "artifacts.html", standalone=False, title=f"wattwise {section}", items=found, section=section, **context
            )
        )

    def artifact_detail(request: Request) -> Response:
        from wattwise.report.pages import estimate_page, plan_page

        plans = request.url.path.startswith(("/plans/", "/api/plans/"))
        found = _find_artifact(store, _ref(request.path_params["artifact_id"]), plans)
        if request.url.path.startswith("/api/"):
            return JSONResponse(found.to_dict())
        extra = {"base": "", "store_label": store_label}
        if found.kind == "plan":
            return page(plan_page(found.data, pages=pages, standalone=False, **extra))
        return page(estimate_page(found.kind, found.data, name=found.name, pages=pages, standalone=False, **extra))

    async def on_error(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, RunNotFoundError) else 400 if isinstance(exc, BadRequest | ConfigError) else 500
        message = printable(exc) if status != 500 else f"the store could not be read: {printable(exc)}"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return error_page(message, status)

    async def not_found(request: Request, exc: Exception) -> Response:
        status = int(getattr(exc, "status_code", 404))
        message = "no such page" if status == 404 else "only GET and HEAD are served: the dashboard is read-only"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return error_page(message, status)

    routes = [
        Route("/", runs_page, methods=["GET", "HEAD"]),
        Route("/runs/{run_id}", run_detail, methods=["GET", "HEAD"]),
        Route("/compare", compare_view, methods=["GET", "HEAD"]),
        Route("/api/runs", runs_page, methods=["GET", "HEAD"]),
        Route("/api/runs/{run_id}", run_detail, methods=["GET", "HEAD"]),
        Route("/api/runs/{run_id}/samples", run_samples, methods=["GET", "HEAD"]),
        Route("/api/compare", compare_view, methods=["GET", "HEAD"]),
        Route("/estimates", artifacts_page, methods=["GET", "HEAD"]),
        Route("/plans", artifacts_page, methods=["GET", "HEAD"]),
        Route("/estimates/{artifact_id}", artifact_detail, methods=["GET", "HEAD"]),
        Route("/plans/{artifact_id}", artifact_detail, methods=["GET", "HEAD"]),
        Route("/api/estimates", artifacts_page, methods=["GET", "HEAD"]),
        Route("/api/plans", artifacts_page, methods=["GET", "HEAD"]),
        Route("/api/estimates/{artifact_id}", artifact_detail, methods=["GET", "HEAD"]),
        Route("/api/plans/{artifact_id}", artifact_detail, methods=["GET", "HEAD"]),
    ]
    from starlette.exceptions import HTTPException

    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityMiddleware, token=token, csp=CSP, allowed_hosts=allowed_hosts)],
        exception_handlers={
            BadRequest: on_error,
            ConfigError: on_error,
            RunNotFoundError: on_error,
            StoreError: on_error,
            HTTPException: not_found,
        },
    )
