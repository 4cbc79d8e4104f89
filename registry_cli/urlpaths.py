"""The path convertor both HTTP faces of a registry server (the API in ``server/``, the
web UI in ``webui/``) route model names with: ``{name:modelname}``.

A model name may contain ``/``, so ``/-/`` separates it from what follows; the
convertor matches names only (a segment never is ``-``), which keeps that split
unambiguous. Importing this module registers it with Starlette.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

MODELNAME = "modelname"


class ModelNameConvertor(Convertor[str]):
    regex = r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(MODELNAME, ModelNameConvertor())
