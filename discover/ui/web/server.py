"""The JSON API and static page of `discover ui` (standard library only).

Routes (all ``GET``; JSON unless stated; a run is named by its id or its name):

  ``/``                          the page (``static/index.html``)
  ``/static/<file>``             the page's other files
  ``/api/runs``                  every run: ``views.run_summary``
  ``/api/runs/<run>``            one run's summary
  ``/api/runs/<run>/programs``   the run's lineage graph: ``views.run_graph``
  ``/api/runs/<run>/progress``   ``{"run": summary, "points": views.progress}`` (polled)
  ``/api/programs/<id>``         ``views.program_view``: source, parent diff, metrics, curves
  ``/api/diff?a=<id>&b=<id>``    ``views.diff_programs``

An unknown run or program is a 404 with ``{"error": "<one sentence>"}``; a database that
fails is a 503. The server only reads the store, so it can run next to a live
`discover run` on the same database and show its progress as it happens.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

from discover.ui import views
from discover.store import Store, StoreError

STATIC_DIR = Path(__file__).resolve().parent / "static"


class _NotFound(Exception):
    pass


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable")


def _finite_json(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON has no such numbers)."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def route(store: Store, path: str, query: dict[str, list[str]]) -> Any:
    """The JSON value for an API ``path`` (``/api/...``).

    Raises:
      views.LineageError: unknown run or program (a 404).
      _NotFound: no such route.
    """
    parts = [unquote(p) for p in path.strip("/").split("/")][1:]   # drop "api"
    if parts == ["runs"]:
        return views.runs_overview(store)
    if len(parts) >= 2 and parts[0] == "runs":
        run = views.resolve_run(store, parts[1])
        if len(parts) == 2:
            return views.run_summary(store, run)
        if parts[2:] == ["programs"]:
            return views.run_graph(store, run)
        if parts[2:] == ["progress"]:
            return {"run": views.run_summary(store, run), "points": views.progress(store, run)}
    if len(parts) == 2 and parts[0] == "programs":
        return views.program_view(store, parts[1])
    if parts == ["diff"]:
        a, b = query.get("a", [""])[0], query.get("b", [""])[0]
        return views.diff_programs(store, a, b)
    raise _NotFound(f"no API route {path!r}")


def _handler(store: Store, quiet: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "discover-ui"

        def log_message(self, fmt: str, *args: Any) -> None:  # noqa: D401 - http.server hook
            if not quiet:
                sys.stderr.write("ui: " + fmt % args + "\n")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _send_json(self, status: int, value: Any) -> None:
            body = json.dumps(_finite_json(value), default=_json_default).encode()
            self._send(status, body, "application/json; charset=utf-8")

        def _send_static(self, name: str) -> None:
            path = (STATIC_DIR / name).resolve()
            # Only files directly inside the static folder: no "..", no subfolders.
            if path.parent != STATIC_DIR or not path.is_file() or path.suffix == ".py":
                self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no file {name!r}"})
                return
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            if ctype.startswith("text/") or ctype.endswith("javascript"):
                ctype += "; charset=utf-8"
            self._send(HTTPStatus.OK, path.read_bytes(), ctype)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            url = urlsplit(self.path)
            try:
                if url.path in ("/", "/index.html"):
                    self._send_static("index.html")
                elif url.path.startswith("/static/"):
                    self._send_static(unquote(url.path[len("/static/"):]))
                elif url.path.startswith("/api/"):
                    self._send_json(HTTPStatus.OK, route(store, url.path, parse_qs(url.query)))
                else:
                    self._send_json(HTTPStatus.NOT_FOUND, {"error": f"no page {url.path!r}"})
            except (views.LineageError, _NotFound) as e:
                self._send_json(HTTPStatus.NOT_FOUND, {"error": str(e)})
            except StoreError as e:
                self._send_json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(e)})
            except (BrokenPipeError, ConnectionResetError):
                pass    # the browser went away mid-answer
            except Exception as e:  # noqa: BLE001 - one bad request must not stop the server
                self._send_json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(e).__name__}: {e}"})

        do_HEAD = do_GET

    return Handler


def make_server(store: Store, host: str = "127.0.0.1", port: int = 8765, quiet: bool = True) -> ThreadingHTTPServer:
    """A server bound to ``(host, port)`` (``port=0``: any free port; read it back from
    ``server.server_address[1]``), not yet serving: call ``serve_forever()`` (in a thread if
    needed) and ``shutdown()``.

    Raises:
      OSError: the address is in use or cannot be bound.
    """
    server = ThreadingHTTPServer((host, port), _handler(store, quiet))
    server.daemon_threads = True
    return server


def serve(store: Store, host: str = "127.0.0.1", port: int = 8765,
          on_ready: Callable[[str], None] | None = None, quiet: bool = True) -> None:
    """Serves until interrupted (Ctrl-C); ``on_ready(url)`` is called once listening."""
    server = make_server(store, host, port, quiet)
    try:
        h, p = server.server_address[:2]
        if on_ready is not None:
            on_ready(f"http://{h if ':' not in str(h) else f'[{h}]'}:{p}/")
        server.serve_forever(poll_interval=0.25)
    finally:
        server.server_close()


def serve_in_thread(store: Store, host: str = "127.0.0.1", port: int = 0) -> tuple[ThreadingHTTPServer, str]:
    """Starts a server in a daemon thread; returns it and its URL (stop with ``shutdown()``
    then ``server_close()``)."""
    server = make_server(store, host, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    h, p = server.server_address[:2]
    return server, f"http://{h}:{p}/"
