"""Reading the deployment kit (deploy/) for its tests: its YAML files, compose's variable
interpolation, and what the service itself declares (settings, routes, shutdown timing)."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from wa_outbound.app import create_app
from wa_outbound.config import Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_FILE = DEPLOY / "prometheus" / "rules" / "wa-outbound.yml"
KUBERNETES = DEPLOY / "kubernetes"

# `${NAME}`, `${NAME:-default}`, `${NAME-default}`, `${NAME:?error}`, `${NAME?error}`.
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def compose_variables(text: str) -> set[str]:
    """The variables a compose file interpolates (`$$` is a literal dollar, not one)."""
    return {match.group(1) for match in _VARIABLE.finditer(text.replace("$$", ""))}


def interpolate(node: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of a parsed file's strings (compose interpolates after parsing,
    so `${X:-}` is an empty string, never null), for the forms compose.yaml uses. `:?` on a
    missing or empty variable raises, as `docker compose` refuses to start."""

    def value(match: re.Match[str]) -> str:
        name, operator, argument = match.groups()
        given = env.get(name)
        missing = given is None or (given == "" and operator is not None and ":" in operator)
        if operator is not None and operator.endswith("?") and missing:
            raise ValueError(f"{name}: {argument}")
        if operator is not None and operator.endswith("-") and missing:
            return argument
        return given or ""

    if isinstance(node, str):
        return _VARIABLE.sub(value, node).replace("$$", "$")
    if isinstance(node, dict):
        return {key: interpolate(item, env) for key, item in node.items()}
    if isinstance(node, list):
        return [interpolate(item, env) for item in node]
    return node


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines; comments and blank lines skipped."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value.strip()
    return entries


def setting_names() -> set[str]:
    """Every environment variable the service reads: `WA_` and a field of Settings."""
    return {f"WA_{name.upper()}" for name in Settings.model_fields}


def settings_from_env(env: Mapping[str, str]) -> Settings:
    """Settings from `WA_*` variables, as the service reads its environment (no `.env`)."""
    values: dict[str, Any] = {name.removeprefix("WA_").lower(): v for name, v in env.items()}
    return Settings(_env_file=None, **values)


@functools.cache
def route_paths() -> frozenset[str]:
    """The paths the service answers, from its OpenAPI document (built from defaults alone)."""
    return frozenset(create_app(Settings.model_construct()).openapi()["paths"])


def shutdown_budget_s(grace_s: float) -> float:
    """How long `serve` may take after SIGTERM: uvicorn gives requests in flight the grace
    (rounded up), then the lifespan stops the workers, each cancelled after grace + 5 s (the
    dispatcher waits up to the grace for its sends)."""
    return math.ceil(grace_s) + grace_s + 5


def duration_s(text: str) -> float:
    """A compose duration (`35s`, `1m30s`) in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(float(number) * units[unit] for number, unit in parts)


def dockerfile_uid() -> int:
    """The uid of the user the Dockerfile runs the service as."""
    match = re.search(r"useradd .*--uid (\d+)", (REPO / "Dockerfile").read_text())
    assert match, "the Dockerfile creates no user with a fixed uid"
    return int(match.group(1))
