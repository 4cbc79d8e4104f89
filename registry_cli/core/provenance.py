"""Facts a version carries about where it comes from and how it may be used: its SPDX
license expression, its model card (Markdown), the CI run that built it, and an
attestation (an in-toto statement) kept beside it. See docs/trust.md.

``license-expression`` is imported only when a license is given.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from registry_cli.errors import BadInput

CARD_LIMIT = 1 << 20  # a model card is a document, not a payload
ATTESTATION_LIMIT = 16 << 20


def validate_license(expression: str) -> str:
    """The normalized SPDX expression; BadInput (exit 2) when it is not one."""
    from license_expression import get_spdx_licensing

    info = get_spdx_licensing().validate(expression)
    if not expression.strip() or info.errors or info.normalized_expression in (None, "None"):
        raise BadInput(
            f"invalid SPDX license expression {expression!r}: "
            + ("; ".join(info.errors) or "empty"),
            hint="use SPDX identifiers (https://spdx.org/licenses/), e.g. 'Apache-2.0 OR MIT'",
        )
    return str(info.normalized_expression)


def read_card(path: str | os.PathLike[str]) -> str:
    """The text of a Markdown model card; BadInput when missing, too big or not UTF-8."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise BadInput(f"card file {p} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"card file {p} is a folder") from None
    if len(data) > CARD_LIMIT:
        raise BadInput(f"card file {p} is larger than {CARD_LIMIT} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput(f"card file {p} is not UTF-8 text") from None


def read_attestation(path: str | os.PathLike[str]) -> bytes:
    """An in-toto statement (JSON, or a DSSE envelope / JSON lines of them)."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise BadInput(f"attestation file {p} does not exist or is not a file") from None
    if len(data) > ATTESTATION_LIMIT:
        raise BadInput(f"attestation file {p} is larger than {ATTESTATION_LIMIT} bytes")
    try:
        for line in data.decode("utf-8").splitlines() or [""]:
            if line.strip():
                doc = json.loads(line)
                if not isinstance(doc, dict):
                    raise ValueError
    except (UnicodeDecodeError, ValueError):
        try:
            json.loads(data)
        except ValueError:
            raise BadInput(
                f"attestation file {p} is not an in-toto statement (JSON)",
                hint="give the statement or DSSE envelope as JSON (.intoto.jsonl works too)",
            ) from None
    return data


def ci_source(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Where a CI run is building this version: ``provider``, ``repository``, ``commit``,
    ``run_url`` (and ``ref`` where known), from the usual CI variables; None outside CI."""
    env = os.environ if env is None else env
    g = env.get
    if g("GITHUB_ACTIONS") == "true":
        server = g("GITHUB_SERVER_URL", "https://github.com")
        repo = g("GITHUB_REPOSITORY")
        run = g("GITHUB_RUN_ID")
        url = f"{server}/{repo}/actions/runs/{run}" if repo and run else None
        return _ci("github-actions", repo, g("GITHUB_SHA"), url, g("GITHUB_REF"))
    if g("GITLAB_CI") == "true":
        return _ci(
            "gitlab-ci",
            g("CI_PROJECT_PATH") or g("CI_PROJECT_URL"),
            g("CI_COMMIT_SHA"),
            g("CI_PIPELINE_URL") or g("CI_JOB_URL"),
            g("CI_COMMIT_REF_NAME"),
        )
    if g("BUILDKITE") == "true":
        return _ci(
            "buildkite",
            g("BUILDKITE_REPO"),
            g("BUILDKITE_COMMIT"),
            g("BUILDKITE_BUILD_URL"),
            g("BUILDKITE_BRANCH"),
        )
    if g("JENKINS_URL") or g("JENKINS_HOME"):
        return _ci(
            "jenkins",
            g("GIT_URL"),
            g("GIT_COMMIT"),
            g("BUILD_URL"),
            g("GIT_BRANCH") or g("BRANCH_NAME"),
        )
    return None


def _ci(
    provider: str, repo: str | None, commit: str | None, url: str | None, ref: str | None
) -> dict[str, Any]:
    return {"provider": provider, "repository": repo, "commit": commit, "run_url": url, "ref": ref}


def publish_facts(
    *,
    license: str | None = None,
    card: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The extra manifest facts of ``regctl publish``, each checked before anything is
    written (``license``, ``card`` and ``ci``: folded into ``source.ci``)."""
    facts: dict[str, Any] = {}
    if license is not None:
        facts["license"] = validate_license(license)
    if card is not None:
        facts["card"] = read_card(card)
    ci = ci_source(env)
    if ci is not None:
        facts["ci"] = ci
    return facts


def card_html(text: str | None) -> str:
    """A model card as HTML: CommonMark (plus tables) with raw HTML disabled, so every
    ``<tag>`` in the card is shown as text and unsafe link schemes are not linked."""
    if not text:
        return ""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")
    return str(md.render(text))
