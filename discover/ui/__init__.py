"""Browsing the lineage: ``views`` (read-only views over the store, shared by the command
line and the web page), ``plot`` (PNG figures) and ``web`` (``discover ui``)."""
