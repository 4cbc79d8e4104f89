"""``regctl serve-registry``: the REST API, ``/dist/`` over HTTP and the FTP control plane
(see docs/server.md), on FastAPI + uvicorn, as routers. ``registry_cli.httpapp`` composes them with
the web UI into one app; nothing here imports the web UI."""
