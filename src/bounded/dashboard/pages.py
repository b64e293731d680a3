"""The dashboard's routes: login, then one page per concern, each a template over data.

Every page but the login needs a session (an admin key typed once, then a signed cookie);
every form posts a CSRF token. Responses forbid framing and scripts (CSP), so a page shows
data and nothing else can run in it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route

from bounded.dashboard import data, records
from bounded.dashboard.charts import fmt
from bounded.dashboard.session import COOKIE, LOGIN_COOKIE, Sessions, secret_from
from bounded.errors import BoundedError
from bounded.store.db import Database

if TYPE_CHECKING:
    from bounded.gateway.auth import Principal
    from bounded.gateway.runtime import Runtime

STATIC = Path(__file__).with_name("static")
HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self' data:;"
    " form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}
NAV = (
    ("overview", "/ui/", "Overview"),
    ("spend", "/ui/spend", "Spend"),
    ("features", "/ui/features", "Features"),
    ("deployments", "/ui/deployments", "Deployments"),
    ("releases", "/ui/releases", "Releases"),
    ("evals", "/ui/evals", "Evals"),
    ("traces", "/ui/traces", "Traces"),
    ("incidents", "/ui/incidents", "Incidents"),
    ("audit", "/ui/audit", "Audit log"),
)


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bounded.dashboard", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        usd=lambda v: "—" if v is None else fmt(float(v), "USD"),
        pct=lambda v: "—" if v is None else f"{float(v) * 100:.1f}%",
        ms=lambda v: "—" if v is None else f"{float(v):,.0f} ms",
        num=_num,
        when=data.when,
        ago=data.ago,
        usd_e10=lambda v: fmt(data.usd(v or 0), "USD"),
    )
    return env


class Dashboard:
    def __init__(
        self,
        db: Database,
        *,
        runtime: Callable[[], Runtime],
        authenticate: Callable[[str, str | None], Principal],
        admin_key: str | None,
        traces_url: str | None = None,
    ):
        self.db = db
        # Traces may live in a file of their own (telemetry's choice, for SQLite's one writer):
        # opened on the first trace page, once telemetry has created it.
        self.traces_url = traces_url or db.url
        self._traces_db: Database | None = None
        self._traces_lock = threading.Lock()
        self.runtime = runtime
        self.authenticate = authenticate
        self.sessions = Sessions(secret_from(admin_key))
        self.env = _environment()

    def mount(self) -> Mount:
        pages: list[tuple[str, Callable[[Request], Response]]] = [
            ("/", self.overview),
            ("/spend", self.spend),
            ("/features", self.features),
            ("/features/{name}", self.feature),
            ("/deployments", self.deployments),
            ("/releases", self.releases),
            ("/evals", self.evals),
            ("/evals/{run_id}", self.eval_run),
            ("/traces", self.traces),
            ("/traces/{trace_id}", self.trace),
            ("/incidents", self.incidents),
            ("/audit", self.audit),
        ]
        routes = [Route(path, self._guarded(handler), methods=["GET"]) for path, handler in pages]
        routes += [
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/static/{name}", self.static, methods=["GET"]),
        ]
        return Mount("/ui", routes=routes)

    # -- plumbing ------------------------------------------------------------------------

    def _guarded(self, handler: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def page(request: Request) -> Response:
            actor = self.sessions.read(request)
            if actor is None:
                target = quote(
                    request.url.path + ("?" + request.url.query if request.url.query else "")
                )
                return RedirectResponse(f"/ui/login?next={target}", status_code=303)
            request.state.actor = actor
            # Pages query the store synchronously: off the event loop, in a worker thread.
            response: Response = await asyncio.to_thread(handler, request)
            return response

        return page

    def render(self, request: Request, template: str, code: int = 200, **context: Any) -> Response:
        page = self.env.get_template(template).render(
            nav=NAV,
            actor=getattr(request.state, "actor", None),
            csrf=self.sessions.csrf(request),
            path=request.url.path,
            now=time.time(),
            **context,
        )
        return HTMLResponse(page, status_code=code, headers=HEADERS)

    def traces_db(self) -> Database:
        if self.traces_url == self.db.url:
            return self.db
        with self._traces_lock:
            if self._traces_db is None:
                self._traces_db = Database.open(self.traces_url)
            return self._traces_db

    def close(self) -> None:
        if self._traces_db is not None:
            self._traces_db.close()

    def window(self, request: Request) -> data.Window:
        return data.Window.of(request.query_params.get("range"))

    def not_found(self, request: Request, what: str) -> Response:
        return self.render(request, "missing.html", code=404, active="", what=what)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        file = STATIC / name
        if "/" in name or name.startswith(".") or not file.is_file():
            return Response("not found", status_code=404)
        return FileResponse(file, headers={"cache-control": "max-age=3600"})

    # -- login ---------------------------------------------------------------------------

    async def login_page(
        self, request: Request, error: str | None = None, status: int = 200, next_url: str = ""
    ) -> Response:
        import secrets

        token = secrets.token_hex(16)
        next_url = _local(next_url or request.query_params.get("next", ""))
        response = self.render(
            request, "login.html", code=status, active="", error=error, login_token=token,
            next_url=next_url,
        )  # fmt: skip
        response.set_cookie(
            LOGIN_COOKIE, token, httponly=True, samesite="strict", path="/ui/login",
            secure=request.url.scheme == "https",
        )  # fmt: skip
        return response

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        token = request.cookies.get(LOGIN_COOKIE, "")
        back = form.get("next", "")
        if not token or form.get("login_token") != token:
            return await self.login_page(
                request, "The form expired; please sign in again.", 403, back
            )
        key = form.get("key", "").strip()
        client = request.client.host if request.client else None
        try:
            principal = self.authenticate(f"Bearer {key}", client)
        except BoundedError:
            return await self.login_page(request, "That key is not valid.", 401, back)
        if not principal.admin:
            return await self.login_page(request, "The dashboard needs the admin key.", 403, back)
        response = RedirectResponse(_local(back), 303)
        response.set_cookie(
            COOKIE, self.sessions.issue(principal.key_id), max_age=int(self.sessions.ttl_s),
            httponly=True, samesite="strict", path="/ui", secure=request.url.scheme == "https",
        )  # fmt: skip
        response.delete_cookie(LOGIN_COOKIE, path="/ui/login")
        return response

    async def logout(self, request: Request) -> Response:
        form = await _form(request)
        if not self.sessions.check_csrf(request, form.get("csrf", "")):
            return Response("CSRF check failed", status_code=403)
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    # -- pages ---------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        w = self.window(request)
        config = self.runtime().config
        view = data.overview(self.db, config, w)
        return self.render(request, "overview.html", active="overview", w=w, v=view)

    def spend(self, request: Request) -> Response:
        w = data.Window.of(request.query_params.get("range") or "7d")
        by = request.query_params.get("by", "feature")
        view = data.spend(self.db, by, w)
        return self.render(request, "spend.html", active="spend", w=w, v=view)

    def features(self, request: Request) -> Response:
        w = self.window(request)
        rows = records.features(self.db, self.runtime().config, w)
        return self.render(request, "features.html", active="features", w=w, rows=rows)

    def feature(self, request: Request) -> Response:
        name = request.path_params["name"]
        config = self.runtime().config
        if name not in config.features:
            return self.not_found(request, f"feature {name!r}")
        w = self.window(request)
        view = records.feature_detail(self.db, config, name, w)
        return self.render(request, "feature.html", active="features", w=w, v=view)

    def deployments(self, request: Request) -> Response:
        w = self.window(request)
        runtime = self.runtime()
        rows = data.deployments(self.db, runtime.config, runtime.router.breaker_states(), w)
        return self.render(request, "deployments.html", active="deployments", w=w, rows=rows)

    def releases(self, request: Request) -> Response:
        from bounded.releases.answers import add_to_dashboard

        rows = records.releases(self.db)
        # A shadow's newest answer pairs, stable against candidate (text where it is kept).
        add_to_dashboard(rows, self.db, self.traces_db, self.runtime().config.features)
        return self.render(request, "releases.html", active="releases", rows=rows)

    def evals(self, request: Request) -> Response:
        feature = request.query_params.get("feature") or None
        rows = records.eval_runs(self.db, feature)
        features = list(self.runtime().config.features)
        return self.render(
            request, "evals.html", active="evals", rows=rows, feature=feature, features=features
        )

    def eval_run(self, request: Request) -> Response:
        view = records.eval_run(self.db, request.path_params["run_id"])
        if view is None:
            return self.not_found(request, "eval run " + repr(request.path_params["run_id"]))
        return self.render(request, "eval_run.html", active="evals", v=view)

    def traces(self, request: Request) -> Response:
        w = self.window(request)
        params = request.query_params
        feature, status, q = params.get("feature") or None, params.get("status"), params.get("q")
        rows = records.trace_search(self.traces_db(), feature=feature, status=status, q=q, w=w)
        return self.render(
            request, "traces.html", active="traces", w=w, rows=rows, feature=feature,
            status=status, q=q or "", features=list(self.runtime().config.features),
        )  # fmt: skip

    def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        view = records.trace_detail(self.traces_db(), self.db, trace_id)
        if view is None:
            return self.not_found(request, f"trace {trace_id!r}")
        return self.render(request, "trace.html", active="traces", v=view, trace_id=trace_id)

    def incidents(self, request: Request) -> Response:
        from bounded.governance.incidents import Incidents

        status = request.query_params.get("status") or None
        rows = Incidents(self.db).list(status=status)
        alerts = self.db.execute("SELECT * FROM drift_alerts ORDER BY ts DESC LIMIT 50")
        return self.render(
            request, "incidents.html", active="incidents", rows=rows, alerts=alerts, status=status
        )

    def audit(self, request: Request) -> Response:
        action = request.query_params.get("action") or None
        rows = records.audit(self.db, action)
        actions = records.audit_actions(self.db)
        return self.render(
            request, "audit.html", active="audit", rows=rows, action=action, actions=actions
        )


def _num(value: float | None) -> str:
    """Counts as integers; averages to one decimal below 100, none above."""
    if value is None:
        return "—"
    if isinstance(value, int) or float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"


def _local(target: str) -> str:
    """Only a dashboard path may follow a login (no open redirect to another site)."""
    if target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return "/ui/"


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded form body (small: a login), without python-multipart."""
    body = await request.body()
    if len(body) > 16 * 1024:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in parsed.items()}
