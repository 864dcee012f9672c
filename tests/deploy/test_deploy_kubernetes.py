"""deploy/kubernetes/: every manifest valid by the Kubernetes JSON schemas (strict: an unknown
field fails), and consistent with the service: probe paths and ports, image and commands,
settings names, shutdown timing, and selectors that find the pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from deploy_kit import (
    KUBERNETES,
    dockerfile_uid,
    load_documents,
    load_yaml,
    route_paths,
    setting_names,
    settings_from_env,
    shutdown_budget_s,
)
from helpers import TEST_SECRET_KEY

# The oldest Kubernetes release the manifests are meant for, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
SECRET_TEMPLATE = "secret.template.yaml"


def manifests() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml")


@pytest.fixture(scope="module")
def kit() -> dict[str, dict[str, Any]]:
    """Every resource of the kit by kind (one of each)."""
    resources: dict[str, dict[str, Any]] = {}
    for path in manifests():
        for document in load_documents(path):
            assert document["kind"] not in resources, document["kind"]
            resources[document["kind"]] = document
    return resources


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def container(resource: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = pod_spec(resource)["containers"]
    (only,) = containers
    return only


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifests(), ids=lambda path: path.name)
def test_the_manifest_is_valid_by_the_kubernetes_schema(path: Path, version: str) -> None:
    documents = load_documents(path)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_the_schema_check_refuses_a_misspelt_field(kit: dict[str, dict[str, Any]]) -> None:
    deployment = kit["Deployment"]
    broken = {**container(deployment), "readinesProbe": {}}
    spec = {**pod_spec(deployment), "containers": [broken]}
    template = {**deployment["spec"]["template"], "spec": spec}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(
            {**deployment, "spec": {**deployment["spec"], "template": template}},
            kubernetes_validate.latest_version(),
            strict=True,
        )


def test_the_kustomization_applies_everything_but_the_secret_template() -> None:
    listed = load_yaml(KUBERNETES / "kustomization.yaml")["resources"]
    assert sorted(listed) == sorted(p.name for p in manifests() if p.name != SECRET_TEMPLATE)


def test_the_kustomization_sets_the_image_of_the_replicas_and_the_migration(
    kit: dict[str, dict[str, Any]],
) -> None:
    (image,) = load_yaml(KUBERNETES / "kustomization.yaml")["images"]
    for kind in ("Deployment", "Job"):
        assert container(kit[kind])["image"].partition(":")[0] == image["name"]


def test_two_replicas_serve_without_migrating(kit: dict[str, dict[str, Any]]) -> None:
    deployment = kit["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    server = container(deployment)
    assert server["command"] == ["wa-outbound"]
    args = server["args"]
    assert args[0] == "serve"
    assert "--no-migrate" in args
    assert args[args.index("--host") + 1] == "0.0.0.0"
    (port,) = server["ports"]
    assert str(port["containerPort"]) == args[args.index("--port") + 1]


def test_the_migration_job_runs_migrate_with_the_replicas_image_and_settings(
    kit: dict[str, dict[str, Any]],
) -> None:
    job, server = container(kit["Job"]), container(kit["Deployment"])
    assert job["command"] == ["wa-outbound"]
    assert job["args"] == ["migrate"]
    assert job["image"] == server["image"]
    assert job["envFrom"] == server["envFrom"]
    assert pod_spec(kit["Job"])["restartPolicy"] == "Never"


def test_the_probes_ask_the_service_s_health_paths_on_its_port(
    kit: dict[str, dict[str, Any]],
) -> None:
    server = container(kit["Deployment"])
    (port,) = server["ports"]
    probes = {
        kind: server[kind]["httpGet"]
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes["readinessProbe"]["path"] == "/health/ready"
    assert probes["livenessProbe"]["path"] == "/health/live"
    for probe in probes.values():
        assert probe["path"] in route_paths()
        assert probe["port"] in (port["name"], port["containerPort"])
    # The readiness endpoint pings the database for up to 2 s: the probe must wait longer.
    assert server["readinessProbe"]["timeoutSeconds"] > 2


def test_the_service_and_the_budget_select_the_replicas(kit: dict[str, dict[str, Any]]) -> None:
    labels = kit["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kit["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert kit["Service"]["spec"]["selector"].items() <= labels.items()
    assert kit["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # The migration's pod is not a replica: neither the Service nor the budget may pick it.
    job_labels = kit["Job"]["spec"]["template"]["metadata"]["labels"]
    assert not kit["Service"]["spec"]["selector"].items() <= job_labels.items()
    (port,) = container(kit["Deployment"])["ports"]
    (service_port,) = kit["Service"]["spec"]["ports"]
    assert service_port["targetPort"] in (port["name"], port["containerPort"])
    assert (
        kit["PodDisruptionBudget"]["spec"]["minAvailable"] < kit["Deployment"]["spec"]["replicas"]
    )


def test_a_replica_has_time_to_finish_its_sends_before_it_is_killed(
    kit: dict[str, dict[str, Any]],
) -> None:
    grace_s = float(kit["ConfigMap"]["data"]["WA_SHUTDOWN_GRACE_SECONDS"])
    pre_stop = container(kit["Deployment"])["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    budget_s = float(pre_stop[1]) + shutdown_budget_s(grace_s)
    assert pod_spec(kit["Deployment"])["terminationGracePeriodSeconds"] >= budget_s


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_pods_run_as_the_image_s_unprivileged_user(
    kit: dict[str, dict[str, Any]], kind: str
) -> None:
    pod = pod_spec(kit[kind])["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert pod["runAsUser"] == dockerfile_uid() != 0
    own = container(kit[kind])["securityContext"]
    assert own["allowPrivilegeEscalation"] is False
    assert own["readOnlyRootFilesystem"] is True
    assert own["capabilities"]["drop"] == ["ALL"]
    assert pod_spec(kit[kind])["automountServiceAccountToken"] is False


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_the_pods_request_memory_under_their_limit(
    kit: dict[str, dict[str, Any]], kind: str
) -> None:
    resources = container(kit[kind])["resources"]
    units = {"Mi": 2**20, "Gi": 2**30}

    def size_bytes(text: str) -> int:
        return int(text[:-2]) * units[text[-2:]]

    assert resources["requests"]["cpu"]
    assert size_bytes(resources["requests"]["memory"]) <= size_bytes(resources["limits"]["memory"])


def test_the_settings_come_from_the_kit_s_config_map_and_secret(
    kit: dict[str, dict[str, Any]],
) -> None:
    sources = {
        source.get("configMapRef", source.get("secretRef"))["name"]
        for source in container(kit["Deployment"])["envFrom"]
    }
    assert sources == {kit["ConfigMap"]["metadata"]["name"], kit["Secret"]["metadata"]["name"]}


def test_the_config_map_and_secret_name_only_settings_the_service_knows(
    kit: dict[str, dict[str, Any]],
) -> None:
    names = set(kit["ConfigMap"]["data"]) | set(kit["Secret"]["stringData"])
    assert names - setting_names() == set()
    assert set(kit["ConfigMap"]["data"]) & set(kit["Secret"]["stringData"]) == set()


def test_the_secret_template_holds_placeholders_only(kit: dict[str, dict[str, Any]]) -> None:
    for name, value in kit["Secret"]["stringData"].items():
        # Empty, or a URL to a placeholder host whose password, if any, is a placeholder too.
        assert value == "" or ".example.internal" in value, name
        if "@" in value:
            assert value.partition("://")[2].partition("@")[0].endswith(":REPLACE_ME"), name


def test_the_filled_in_templates_give_settings_the_service_accepts(
    kit: dict[str, dict[str, Any]],
) -> None:
    env = {**kit["ConfigMap"]["data"], **kit["Secret"]["stringData"]}
    with pytest.raises(ValueError, match="WA_PROVIDER=cloud needs"):
        settings_from_env(env)  # as shipped: cloud without its credentials refuses to start
    filled = {
        **env,
        "WA_PHONE_NUMBER_ID": "1234567890",
        "WA_ACCESS_TOKEN": "token",
        "WA_APP_SECRET": "secret",
    }
    with pytest.raises(ValueError, match="WA_SECRET_KEYS"):
        settings_from_env(filled)  # stored tokens would be kept in clear
    filled["WA_SECRET_KEYS"] = TEST_SECRET_KEY
    settings = settings_from_env(filled)
    assert settings.provider == "cloud"
    assert settings.is_postgres
    assert settings.shutdown_grace_seconds == 10
