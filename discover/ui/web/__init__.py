"""`discover ui`: the lineage store in a browser.

A small JSON API over ``discover.ui.views`` served by the standard library's
``ThreadingHTTPServer``, and one static page (``static/index.html``, vanilla JavaScript,
no build step) that shows the runs, a best-so-far chart that follows a running run, the
lineage graph, and for a clicked program its code, the diff with its parent, its metrics
and curves. See ``discover.ui.web.server`` for the routes.
"""

from discover.ui.web.server import make_server, serve

__all__ = ["make_server", "serve"]
