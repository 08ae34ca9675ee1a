"""The static files of `discover ui` (``index.html``); a package so that they ship with it."""
