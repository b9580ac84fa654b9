"""web: the live dashboard, streaming Workflow Streams to browsers over Server-Sent Events.

* ``static/``: the page (HTML, CSS, JavaScript; no build step, nothing remote);
* ``streams`` and ``actions``: the HTTP routes;
* ``fanout``, ``stream``, ``upstream``, ``chain``: one upstream subscription per
  stream, shared by every viewer, read from Temporal run by run;
* ``app`` builds the ASGI app, ``server`` runs it under the service runner.
"""
