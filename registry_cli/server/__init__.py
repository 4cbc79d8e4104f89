"""``regctl serve-registry``: the REST API, ``/dist/`` over HTTP and the FTP control plane
(see docs/server.md), on FastAPI + uvicorn. ``app.create_app`` builds it from routers."""
