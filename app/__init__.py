"""medrec: a GraphQL API for medical records.

The packages, each importing only those below it (schema/ and resolvers/, the GraphQL layer,
sit between server and auth):

- ``ops``: the ``medrec`` command line and the dev tooling (``medrec dev``, seeding, ``watch``);
- ``server``: the HTTP server and the composition root (``services.py`` builds the services,
  ``main.py`` the app), the one place that wires the layers together;
- ``auth``: tokens, the JWKS, and the caller they resolve to;
- ``data``: the engine, connections, queries, writes, audit appends, the status-event stream and
  file storage;
- ``domain``: rules with no I/O: access predicates, workflow, validation, audit trail, ids,
  errors;
- ``settings.py``: configuration, read by all.
"""
