"""web: the live dashboard, streaming Workflow Streams to browsers over Server-Sent Events.

Top to bottom, each module calling only those below it:

* ``static/``: the page (HTML, CSS, JavaScript; no build step, nothing remote);
* ``app`` builds the ASGI app, ``server`` runs it under the service runner;
  ``guard`` checks the Host and adds the security headers; ``jobs`` supervises
  the background work;
* the routes: ``routes_events`` (one multiplexed SSE connection per page,
  resumable by one ``tokens`` id), ``routes_streams`` (one stream per
  connection, for curl and the benchmark), ``routes_actions`` (the buttons,
  the ledger, the configuration), ``durable`` (the HTTP read protocol);
  ``errors`` and ``sse`` are what they share;
* ``registry``: the open streams, one per chain, shared by every reader;
* ``window``: one stream's in-memory window and its viewers;
* ``follower``: the one upstream subscription of a stream, run by run;
* ``chain``: a workflow id's runs grouped into chains, read from Temporal.
"""
