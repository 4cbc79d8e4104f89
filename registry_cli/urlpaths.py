"""The path convertor both HTTP faces of a registry server (the API in ``server/``, the
web UI in ``webui/``) route model names with: ``{name:modelname}``.

A model name may contain ``/``, so ``/-/`` separates it from what follows; the
convertor takes everything before it (a segment never is ``-``), which keeps that split
unambiguous, and checks it by the naming rules. Importing this module registers it with
Starlette.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from registry_cli.core.names import validate_model_name

MODELNAME = "modelname"


class ModelNameConvertor(Convertor[str]):
    """Everything before ``/-/`` is the name: any segments but ``-`` (which a name never
    has). A name that breaks the naming rules is refused here, in the route match,
    with the CLI's message (400 bad_input), not left to fall through to 404 "no such
    route"; a valid name of no model is the handler's 404 not_found."""

    regex = r"(?!-(?:/|$))[^/]*(?:/(?!-(?:/|$))[^/]*)*"

    def convert(self, value: str) -> str:
        return validate_model_name(value)

    def to_string(self, value: str) -> str:
        return value


register_url_convertor(MODELNAME, ModelNameConvertor())
