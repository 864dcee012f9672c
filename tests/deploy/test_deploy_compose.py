"""deploy/compose.yaml: valid by the Compose Specification's schema (and `docker compose config`
where the plugin is installed), and wired the way the service needs: one image, a migration the
replicas wait for, Prometheus scraping both, Grafana provisioned, alert email to Mailpit."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deploy_kit import (
    COMPOSE_FILE,
    DEPLOY,
    ENV_EXAMPLE,
    REPO,
    compose_variables,
    duration_s,
    interpolate,
    load_yaml,
    read_env_file,
    route_paths,
    setting_names,
    settings_from_env,
    shutdown_budget_s,
)
from helpers import TEST_SECRET_KEY

REPLICAS = ("wa-outbound-1", "wa-outbound-2")
SECRETS = (
    "POSTGRES_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "WA_ACCESS_TOKEN",
    "WA_APP_SECRET",
    "WA_SECRET_KEYS",
)
PLACEHOLDERS = ("", "change-me")
CHECK_JSONSCHEMA = (sys.executable, "-m", "check_jsonschema")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return document


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def trial_env(provider: str = "sandbox") -> dict[str, str]:
    """.env.example as an operator fills it in to try the kit."""
    return {**read_env_file(ENV_EXAMPLE), "WA_PROVIDER": provider}


def rendered_services(provider: str = "sandbox") -> dict[str, dict[str, Any]]:
    """The services as compose runs them with the filled-in example."""
    services: dict[str, dict[str, Any]] = interpolate(load_yaml(COMPOSE_FILE), trial_env(provider))[
        "services"
    ]
    return services


def schema_check(path: Path) -> subprocess.CompletedProcess[str]:
    """check-jsonschema with the Compose Specification's schema it vendors (no network)."""
    return subprocess.run(
        [*CHECK_JSONSCHEMA, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def serve_port(service: dict[str, Any]) -> str:
    """The port `wa-outbound serve` listens on in this service's container."""
    command: list[str] = service["command"]
    return command[command.index("--port") + 1]


def host_path(service: dict[str, Any], container_path: str) -> Path:
    """The file of the repository that a bind mount puts at `container_path`."""
    volumes: list[str] = service.get("volumes", [])
    for volume in volumes:
        source, target = volume.split(":")[:2]
        if source.startswith(".") and (
            container_path == target or container_path.startswith(target + "/")
        ):
            return (DEPLOY / source / container_path.removeprefix(target).lstrip("/")).resolve()
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_the_compose_file_is_valid_by_the_compose_specification_schema(tmp_path: Path) -> None:
    result = schema_check(COMPOSE_FILE)
    assert result.returncode == 0, result.stdout + result.stderr

    # The check is live: a misspelt key fails it.
    broken = tmp_path / "compose.yaml"
    broken.write_text(COMPOSE_FILE.read_text().replace("healthcheck:", "helthcheck:", 1))
    assert schema_check(broken).returncode != 0


def test_docker_compose_accepts_the_file_where_its_plugin_is_installed(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if (
        docker is None
        or subprocess.run(
            [docker, "compose", "version"], capture_output=True, check=False
        ).returncode
    ):
        pytest.skip("the docker compose plugin is not installed: the schema check stands in")
    env_file = tmp_path / "env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in trial_env().items()))
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "--env-file", str(env_file), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_the_migration_and_both_replicas_run_one_image_built_from_the_dockerfile(
    services: dict[str, dict[str, Any]],
) -> None:
    users = {name: services[name] for name in ("migrate", *REPLICAS)}
    assert len({service["image"] for service in users.values()}) == 1
    for service in users.values():
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == REPO / "Dockerfile"


def test_the_replicas_serve_without_migrating_once_the_migration_has_completed(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in REPLICAS:
        command = services[name]["command"]
        assert command[0] == "serve"
        assert "--no-migrate" in command
        assert command[command.index("--host") + 1] == "0.0.0.0"
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully"
        assert depends_on["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_every_long_running_service_has_a_health_check(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, service in services.items():
        if name == "migrate":
            continue
        assert service["healthcheck"]["test"], name
        assert not service["healthcheck"].get("disable"), name


def test_a_replica_is_healthy_when_it_is_ready(services: dict[str, dict[str, Any]]) -> None:
    for name in REPLICAS:
        port = serve_port(services[name])
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://127.0.0.1:{port}/health/ready" in probe
        assert "/health/ready" in route_paths()
        assert any(mapping.endswith(f":{port}") for mapping in services[name]["ports"])


def test_the_replicas_are_given_time_to_finish_their_sends_on_stop(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in REPLICAS:
        grace_s = float(services[name]["environment"]["WA_SHUTDOWN_GRACE_SECONDS"])
        stop_s = duration_s(services[name]["stop_grace_period"])
        assert stop_s >= shutdown_budget_s(grace_s), (name, stop_s, grace_s)


def test_the_service_is_given_only_variables_it_knows(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("migrate", *REPLICAS):
        assert set(services[name]["environment"]) - setting_names() == set(), name


def test_alert_email_goes_to_mailpit(services: dict[str, dict[str, Any]]) -> None:
    settings = settings_from_env(rendered_services()["wa-outbound-1"]["environment"])
    assert settings.smtp_host == "mailpit"
    assert settings.smtp_host in services
    assert settings.smtp_port == 1025
    assert settings.smtp_starttls is False
    assert settings.alert_email_recipients


def test_the_filled_in_example_gives_settings_the_service_accepts() -> None:
    rendered = rendered_services()
    for name in ("migrate", *REPLICAS):
        settings = settings_from_env(rendered[name]["environment"])
        assert settings.is_postgres
        assert settings.database_url.startswith("postgresql+asyncpg://wa_outbound:change-me@")
        assert settings.database_url.endswith("@postgres:5432/wa_outbound")
        assert settings.redis_url == "redis://redis:6379/0"
        assert settings.provider == "sandbox"


def test_compose_refuses_to_start_without_a_provider() -> None:
    # The service refuses PostgreSQL without WA_PROVIDER; compose says so before starting.
    with pytest.raises(ValueError, match="WA_PROVIDER"):
        rendered_services(provider="")


def test_cloud_needs_the_meta_credentials_the_example_leaves_empty() -> None:
    environment = rendered_services("cloud")["wa-outbound-1"]["environment"]
    # The shared number is optional with cloud (both or neither); the app secret is not.
    with pytest.raises(ValueError, match="WA_APP_SECRET"):
        settings_from_env(environment)


def test_cloud_needs_the_secret_keys_the_example_leaves_empty() -> None:
    environment = rendered_services("cloud")["wa-outbound-1"]["environment"]
    environment |= {"WA_PHONE_NUMBER_ID": "1", "WA_ACCESS_TOKEN": "t", "WA_APP_SECRET": "s"}
    with pytest.raises(ValueError, match="WA_SECRET_KEYS"):
        settings_from_env(environment)
    assert settings_from_env(environment | {"WA_SECRET_KEYS": TEST_SECRET_KEY}).secret_keys


def test_the_env_example_lists_every_variable_the_kit_uses() -> None:
    assert set(read_env_file(ENV_EXAMPLE)) == compose_variables(COMPOSE_FILE.read_text())


def test_the_env_example_holds_no_secret() -> None:
    example = read_env_file(ENV_EXAMPLE)
    for name in SECRETS:
        assert example[name] in PLACEHOLDERS, name
    for name, value in example.items():
        if any(word in name for word in ("PASSWORD", "TOKEN", "SECRET", "WEBHOOK_URL")):
            assert value in PLACEHOLDERS, name


def test_prometheus_scrapes_both_replicas_with_the_rules(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = host_path(prometheus, config_arg.partition("=")[2])
    assert config_path == (DEPLOY / "prometheus" / "prometheus.yml").resolve()
    config = load_yaml(config_path)
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "wa-outbound")
    assert job["metrics_path"] in route_paths()
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    assert targets == {f"{name}:{serve_port(services[name])}" for name in REPLICAS}
    rule_files = [p for pattern in config["rule_files"] for p in config_path.parent.glob(pattern)]
    assert (DEPLOY / "prometheus" / "rules" / "wa-outbound.yml").resolve() in rule_files


def test_grafana_loads_the_dashboard_from_the_provisioned_prometheus(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    provisioning = host_path(grafana, "/etc/grafana/provisioning")
    datasources = load_yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    (source,) = datasources
    assert source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in services

    (provider,) = load_yaml(provisioning / "dashboards" / "wa-outbound.yaml")["providers"]
    folder = provider["options"]["path"]
    dashboard = host_path(grafana, f"{folder}/wa-outbound.json")
    assert dashboard == (DEPLOY / "grafana-dashboard.json").resolve()
    assert dashboard.is_file()
