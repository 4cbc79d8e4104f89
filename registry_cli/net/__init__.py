"""Outbound network plumbing (layer 1, beside storage): one retry policy
(:mod:`registry_cli.net.retry`) and one stdlib HTTP client helper
(:mod:`registry_cli.net.http`). Imports only the standard library and
``registry_cli.errors``; nothing is imported here, so ``import registry_cli.net``
costs nothing."""
