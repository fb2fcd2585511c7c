"""Offline checks of the deployment files: deploy/compose.yaml, deploy/k8s/*.yaml and deploy/Dockerfile.

No Docker or cluster needed: every YAML document is parsed with PyYAML and its structure checked against what
the runtime expects (the CLI roles, the VIGIE_* settings, the probes, the image).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"

# Every process a deployment may start: `vigie <role…>`.
CLI_ROLES = {
    ("producer",),
    ("streams", "worker"),
    ("notifier", "--channel", "webhook"),
    ("notifier", "--channel", "slack"),
    ("api",),
}
IMAGE_EXTRAS = {"kafka", "redis", "telegram", "rocksdb", "fast"}
SHARED_SETTINGS = {
    "VIGIE_BUS": "kafka://",
    "VIGIE_STORE": "redis://",
    "VIGIE_SOURCES": "ods+https://",
}

Doc = dict[str, Any]


def load_all(path: Path) -> list[Doc]:
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc is not None]


def k8s_docs() -> list[Doc]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_all(path)]


def of_kind(kind: str) -> list[Doc]:
    return [doc for doc in k8s_docs() if doc["kind"] == kind]


def one(kind: str, name: str) -> Doc:
    (doc,) = [doc for doc in of_kind(kind) if doc["metadata"]["name"] == name]
    return doc


def container(deployment: Doc) -> Doc:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def role_of(args: list[str]) -> tuple[str, ...]:
    """The CLI role of a container's args / a compose command (`vigie` itself is the image's entrypoint)."""
    words = tuple(args[1:] if args and args[0] == "vigie" else args)
    assert words in CLI_ROLES, f"{words} is not a vigie role"
    return words


def healthcheck_role(role: tuple[str, ...]) -> list[str]:
    """`vigie healthcheck --role <first word of the role>`: producer, streams, notifier."""
    return ["vigie", "healthcheck", "--role", role[0]]


# --- every file parses -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", [COMPOSE, *sorted(K8S.glob("*.yaml"))], ids=lambda path: path.name)
def test_yaml_parses_into_mappings(path: Path) -> None:
    docs = load_all(path)

    assert docs
    assert all(isinstance(doc, dict) for doc in docs)


def test_k8s_objects_are_namespace_less_and_named() -> None:
    for doc in k8s_docs():
        assert {"apiVersion", "kind"} <= doc.keys()
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"].startswith("vigie")
            assert "namespace" not in doc["metadata"]


def test_kustomization_lists_every_manifest() -> None:
    (kustomization,) = of_kind("Kustomization")
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}

    assert sorted(kustomization["resources"]) == sorted(files)


# --- Kubernetes ------------------------------------------------------------------------------------------


def test_configmap_holds_the_shared_settings() -> None:
    data = one("ConfigMap", "vigie-config")["data"]

    for key, prefix in SHARED_SETTINGS.items():
        assert data[key].startswith(prefix)
    assert all(isinstance(value, str) for value in data.values())


def test_secret_holds_only_placeholders() -> None:
    secret = one("Secret", "vigie-secrets")

    assert set(secret["stringData"]) == {"SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"}
    assert set(secret["stringData"].values()) == {"REPLACE_ME"}


def test_one_deployment_per_role() -> None:
    roles = [role_of(container(deployment)["args"]) for deployment in of_kind("Deployment")]

    assert sorted(roles) == sorted(CLI_ROLES)


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda doc: doc["metadata"]["name"])
def test_deployment_structure(deployment: Doc) -> None:
    spec = deployment["spec"]
    main = container(deployment)

    assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
    assert main["image"]
    assert {"configMapRef": {"name": "vigie-config"}} in main["envFrom"]
    assert {"secretRef": {"name": "vigie-secrets"}} in main["envFrom"]
    assert {"cpu", "memory"} <= main["resources"]["requests"].keys()
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


@pytest.mark.parametrize("deployment", of_kind("Deployment"), ids=lambda doc: doc["metadata"]["name"])
def test_deployment_probes(deployment: Doc) -> None:
    main = container(deployment)
    role = role_of(main["args"])
    liveness, readiness = main["livenessProbe"], main["readinessProbe"]

    if role == ("api",):
        assert (liveness["httpGet"]["path"], readiness["httpGet"]["path"]) == ("/healthz", "/readyz")
        ports = {port["name"]: port["containerPort"] for port in main["ports"]}
        assert {liveness["httpGet"]["port"], readiness["httpGet"]["port"]} <= {"http", 8080}
        assert ports["http"] == 8080
    else:
        assert liveness["exec"]["command"] == readiness["exec"]["command"] == healthcheck_role(role)


def test_api_service_reaches_the_api_pods() -> None:
    service = one("Service", "vigie-api")["spec"]
    api = one("Deployment", "vigie-api")
    (port,) = service["ports"]

    assert service["selector"].items() <= api["spec"]["template"]["metadata"]["labels"].items()
    assert port["targetPort"] in {"http", 8080}


# --- compose ---------------------------------------------------------------------------------------------


def compose_services() -> dict[str, Doc]:
    (compose,) = load_all(COMPOSE)
    services: dict[str, Doc] = compose["services"]
    return services


def vigie_services() -> dict[str, Doc]:
    return {
        name: service for name, service in compose_services().items() if "command" in service and "build" in service
    }


def test_compose_infrastructure_images() -> None:
    services = compose_services()

    assert services["kafka"]["image"] == "apache/kafka:4.0.0"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["redis"]["image"] == "redis:7"
    assert {"healthcheck"} <= services["kafka"].keys() & services["redis"].keys()


def test_compose_runs_every_role_from_the_built_image() -> None:
    services = vigie_services()

    assert sorted(role_of(service["command"]) for service in services.values()) == sorted(CLI_ROLES)
    for service in services.values():
        build = service["build"]
        assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
        assert service["image"] == "vigie:local"


@pytest.mark.parametrize("name", sorted(vigie_services()))
def test_compose_role_service(name: str) -> None:
    services = compose_services()
    service = services[name]
    environment = service["environment"]

    assert environment["VIGIE_BUS"] == "kafka://kafka:9092"
    assert environment["VIGIE_STORE"] == "redis://redis:6379/0"
    assert environment["VIGIE_SOURCES"] == "ods+https://dgal.opendatasoft.com/export_alimconfiance"
    assert set(service["depends_on"]) <= services.keys()
    assert service["healthcheck"]["test"]


def test_compose_scales_the_streams_workers() -> None:
    (worker,) = [s for s in vigie_services().values() if role_of(s["command"]) == ("streams", "worker")]

    assert worker["deploy"]["replicas"] == 2


# --- Dockerfile ------------------------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    lines = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    pairs = [line.strip().split(maxsplit=1) for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return [(pair[0].upper(), pair[1] if len(pair) > 1 else "") for pair in pairs]


def test_dockerfile_image() -> None:
    instructions = dockerfile_instructions()
    final_stage = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]

    assert {arg.split()[0] for op, arg in instructions if op == "FROM"} == {"python:3.11-slim"}
    assert ("ENTRYPOINT", '["vigie"]') in final_stage
    (user,) = [arg for op, arg in final_stage if op == "USER"]
    assert user.split(":")[0] not in {"root", "0"}


def test_dockerfile_installs_declared_extras() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    (install,) = [arg for op, arg in dockerfile_instructions() if op == "RUN" and "pip install" in arg]
    extras = set(install.split("[", 1)[1].split("]", 1)[0].split(","))

    assert extras == IMAGE_EXTRAS
    assert extras <= declared.keys()
