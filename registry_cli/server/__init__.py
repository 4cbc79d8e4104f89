"""``regctl serve-registry``: the REST API, ``/dist/`` over HTTP and the FTP control plane
(SPEC §9), on FastAPI + uvicorn. ``app.create_app`` builds it from routers."""
