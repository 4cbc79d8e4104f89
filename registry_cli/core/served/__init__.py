"""The served tree ``dist/``: its documents, the writer that keeps it in step with
``models/`` after every commit, and the drift check used by ``verify``."""
