"""The regctl version, importable from any layer without loading the package's public API."""

__version__ = "0.1.0"
