"""deploy/k8s: the kustomize base and the production overlay render with `kubectl kustomize`, validate
offline against the Kubernetes JSON schemas (kubernetes-validate's bundled schemas, strict: an unknown field
fails), and give the API what it needs: probes on /ready and /health, the image's non-root user, a read-only
root filesystem with writable run and tmp directories, settings from a ConfigMap and keys from a Secret that
the API's own settings accept, both channels on registry aliases with polling, the autoscaler, the disruption
budget and, in the overlay, the spamd port.

And the pod's filesystem for real: the API runs with the rendered environment in a mount namespace whose
root filesystem is read-only except the run and tmp directories the Deployment mounts, serves from the
registry alias, follows a promotion by polling, reloads every worker and logs to PostgreSQL."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.settings import ApiSettings
from spamfilter.config import Settings, TrainParams
from spamfilter.registry.versions import parse_models_uri
from tests.api.conftest import (
    DOCKERFILE,
    INPUT_EXAMPLE,
    Server,
    dockerfile_instructions,
    free_port,
    held_out_metrics,
    image_command_and_env,
    train_model,
)
from tests.conftest import REPO_ROOT, VENV_BIN, wait_for_http

K8S = REPO_ROOT / "deploy" / "k8s"
BASE = K8S / "base"
PRODUCTION = K8S / "overlays" / "production"
SECRETS_FILE = "secrets.env"
SECRETS_EXAMPLE = "secrets.env.example"
SECRET_NAME = "spamfilter-api-secrets"
# MLflow's own client variables: the API reads them through mlflow, not through its settings.
MLFLOW_CLIENT_VARIABLES = {"MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"}

Manifest = dict[str, Any]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is not installed: CI renders deploy/k8s with `kubectl kustomize`")
        pytest.skip("kubectl (with kustomize 5) is not installed: deploy/k8s cannot be rendered here")
    return path


def render(directory: Path) -> list[Manifest]:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return [document for document in yaml.safe_load_all(result.stdout) if document]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines as kustomize reads them (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value
    return pairs


@pytest.fixture(scope="module")
def base() -> list[Manifest]:
    return render(BASE)


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> list[Manifest]:
    """The overlay as an operator renders it: on a copy of deploy/k8s with secrets.env written from the example."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns(SECRETS_FILE))
    overlay = copy / PRODUCTION.relative_to(K8S)
    shutil.copy(overlay / SECRETS_EXAMPLE, overlay / SECRETS_FILE)
    return render(overlay)


def one(manifests: list[Manifest], kind: str) -> Manifest:
    found = [manifest for manifest in manifests if manifest["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def api_container(manifests: list[Manifest]) -> Manifest:
    containers = one(manifests, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [container["name"] for container in containers] == ["api"]
    container: Manifest = containers[0]
    return container


def container_port(container: Manifest, port: str | int) -> int:
    """A probe's or Service's port (a name or a number) as the container port number it reaches."""
    numbers = {entry["name"]: entry["containerPort"] for entry in container.get("ports", [])}
    if isinstance(port, int):
        assert port in numbers.values(), f"port {port} is not one of the container's {numbers}"
        return port
    assert port in numbers, f"port {port!r} is not one of the container's {numbers}"
    return numbers[port]


def pod_environment(manifests: list[Manifest], secret_values: dict[str, str] | None = None) -> dict[str, str]:
    """The API container's environment: its ConfigMap and Secret (envFrom, in order) then its `env`, which
    wins. `secret_values` stands for a Secret the manifests reference but do not contain."""
    container = api_container(manifests)
    environment: dict[str, str] = {}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            environment.update(named(manifests, "ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            name = source["secretRef"]["name"]
            secrets = [m for m in manifests if m["kind"] == "Secret" and m["metadata"]["name"] == name]
            if secrets:
                data = secrets[0].get("data", {})
                environment.update({key: base64.b64decode(value).decode() for key, value in data.items()})
            else:
                assert secret_values is not None, f"Secret {name} is neither rendered nor stood in for"
                environment.update(secret_values)
    environment.update({entry["name"]: entry["value"] for entry in container.get("env", [])})
    return environment


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    found = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name!r} is referenced but rendered {len(found)} times"
    return found[0]


def api_settings(environment: dict[str, str]) -> ApiSettings:
    """The settings the API would read from this environment (unknown names are caught separately)."""
    return ApiSettings(_env_file=None, **environment)  # type: ignore[call-arg]


def known_variables() -> set[str]:
    names = {field.alias for field in ApiSettings.model_fields.values() if field.alias}
    names |= {field.alias for field in Settings.model_fields.values() if field.alias}
    return names | MLFLOW_CLIENT_VARIABLES


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity (`500m`, `2`, `512Mi`, `1G`) as a number of cores or bytes."""
    match = re.fullmatch(r"([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?", str(value))
    assert match, f"not a resource quantity: {value!r}"
    scale = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
    return float(match.group(1)) * scale.get(match.group(2) or "", 1)


def image_user() -> tuple[int, int]:
    """The uid and gid of the Dockerfile's final USER (numeric, as the Dockerfile writes it)."""
    users = [args for name, args in dockerfile_instructions(DOCKERFILE) if name == "USER"]
    uid, _, gid = users[-1].partition(":")
    return int(uid), int(gid or uid)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Any attempt to open a connection or resolve a name fails the test: validation must work offline."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    yield


# --- schemas ---------------------------------------------------------------------------------------------


def schema_versions() -> tuple[str, str]:
    """The oldest and newest Kubernetes versions whose schemas kubernetes-validate ships."""
    try:
        from kubernetes_validate import utils
    except ImportError:
        pytest.fail("kubernetes-validate (PyPI, in requirements-dev.txt) is not installed")
    versions = utils.all_versions()
    return versions[0], versions[-1]


def schema_failures(manifests: list[Manifest]) -> list[str]:
    from kubernetes_validate import utils

    failures = []
    for version in schema_versions():
        for manifest in manifests:
            where = f"{manifest['kind']}/{manifest['metadata']['name']} against {version}"
            try:
                utils.validate(manifest, version, strict=True)
            except utils.ValidationError as error:
                failures.append(f"{where}: {'.'.join(map(str, error.path))}: {error.message}")
            except utils.SchemaNotFoundError as error:
                failures.append(f"{where}: {error.message}")
    return failures


@pytest.mark.usefixtures("no_network")
def test_base_and_overlay_validate_offline_against_the_kubernetes_schemas(
    base: list[Manifest], production: list[Manifest]
) -> None:
    assert schema_failures(base) == []
    assert schema_failures(production) == []


@pytest.mark.usefixtures("no_network")
def test_the_schema_check_rejects_a_misspelled_field(base: list[Manifest]) -> None:
    deployment = yaml.safe_load(yaml.safe_dump(one(base, "Deployment")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    failures = schema_failures([deployment])
    assert failures and all("readinesProbe" in failure for failure in failures)


# --- the base --------------------------------------------------------------------------------------------


def test_base_renders_the_api_and_leaves_the_secret_to_the_overlay(base: list[Manifest]) -> None:
    assert sorted(manifest["kind"] for manifest in base) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
    ]
    # No Secret in the base: a pod whose Secret nobody provided does not start, rather than serve with
    # placeholder keys; the Deployment still reads its keys from it.
    sources = api_container(base)["envFrom"]
    assert {"secretRef": {"name": SECRET_NAME}} in sources
    assert "replicas" not in one(base, "Deployment")["spec"], "the HorizontalPodAutoscaler owns the replica count"


@pytest.mark.parametrize("variant", ["base", "production"])
def test_probes_reach_the_api_port(variant: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    container = api_container(manifests)
    api_port = int(api_settings(pod_environment(manifests, read_env_file(PRODUCTION / SECRETS_EXAMPLE))).port)
    expected = {"startupProbe": "/ready", "readinessProbe": "/ready", "livenessProbe": "/health"}
    for probe_name, path in expected.items():
        probe = container[probe_name]["httpGet"]
        assert probe["path"] == path, probe_name
        assert container_port(container, probe["port"]) == api_port, probe_name
    startup = container["startupProbe"]
    # Loading both models from the registry (download, unpickle, checks) must not be cut short.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120
    liveness = container["livenessProbe"]
    assert liveness["timeoutSeconds"] >= 2 and liveness["failureThreshold"] >= 3


@pytest.mark.parametrize("variant", ["base", "production"])
def test_pods_run_as_the_image_user_on_a_read_only_root_with_writable_run_and_tmp(
    variant: str, request: pytest.FixtureRequest
) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    pod = one(manifests, "Deployment")["spec"]["template"]["spec"]
    container = api_container(manifests)
    uid, gid = image_user()
    for context in (pod["securityContext"], container["securityContext"]):
        assert context["runAsNonRoot"] is True
        assert (context["runAsUser"], context["runAsGroup"]) == (uid, gid)
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert pod["automountServiceAccountToken"] is False

    run_dir = api_settings(pod_environment(manifests, read_env_file(PRODUCTION / SECRETS_EXAMPLE))).run_dir
    assert run_dir, "API_RUN_DIR must name the writable run directory"
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
    for path in (run_dir, "/tmp"):
        assert path in mounts, f"{path} must be a mounted volume (the root filesystem is read-only)"
        assert not mounts[path].get("readOnly", False)
        volume = volumes[mounts[path]["name"]]
        assert "emptyDir" in volume and volume["emptyDir"].get("sizeLimit"), f"{path}: a size-limited emptyDir"


@pytest.mark.parametrize("variant", ["base", "production"])
def test_resources_are_requested_and_limited(variant: str, request: pytest.FixtureRequest) -> None:
    resources = api_container(request.getfixturevalue(variant))["resources"]
    for resource in ("cpu", "memory"):
        request_value = quantity(resources["requests"][resource])
        assert 0 < request_value <= quantity(resources["limits"][resource]), resource
    # The run directory is memory-backed; two workers' models need well over this.
    assert quantity(resources["requests"]["memory"]) >= 256 * 2**20


def test_settings_come_from_the_config_map_and_keys_from_the_secret(base: list[Manifest]) -> None:
    container = api_container(base)
    config_map = one(base, "ConfigMap")
    assert container["envFrom"][0] == {"configMapRef": {"name": config_map["metadata"]["name"]}}
    settings_keys = set(config_map["data"])
    secret_keys = set(read_env_file(PRODUCTION / SECRETS_EXAMPLE))
    assert {"API_KEY", "ADMIN_API_KEY", "PREDICTION_LOG_URL"} <= secret_keys
    assert not settings_keys & {"API_KEY", "ADMIN_API_KEY", "PREDICTION_LOG_URL"}, "keys belong in the Secret"
    # Every name is one the API reads: a misspelt one would be silently ignored (the settings allow extras).
    environment = pod_environment(base, read_env_file(PRODUCTION / SECRETS_EXAMPLE))
    unknown = set(environment) - known_variables()
    assert not unknown, f"not settings of the API: {sorted(unknown)}"


@pytest.mark.parametrize("variant", ["base", "production"])
def test_both_channels_follow_their_champion_alias_with_polling(variant: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    settings = api_settings(pod_environment(manifests, read_env_file(PRODUCTION / SECRETS_EXAMPLE)))
    sources = settings.model_sources()
    assert set(sources) == {"sms", "email"}, "both channels are served by the same pods"
    registered = Settings(_env_file=None)  # type: ignore[call-arg]
    expected_names = {"sms": registered.registered_model, "email": registered.email_registered_model}
    for channel, uri in sources.items():
        name, alias, version = parse_models_uri(uri)
        assert (name, alias, version) == (expected_names[channel], "champion", None), uri
    assert settings.model_poll_interval > 0, "without polling a promotion would not reach running pods"
    assert settings.workers >= 1


@pytest.mark.parametrize("variant", ["base", "production"])
def test_the_prediction_log_is_postgresql(variant: str, request: pytest.FixtureRequest) -> None:
    from sqlalchemy.engine import make_url

    manifests: list[Manifest] = request.getfixturevalue(variant)
    settings = api_settings(pod_environment(manifests, read_env_file(PRODUCTION / SECRETS_EXAMPLE)))
    # One database for every pod: SQLite on a pod's emptyDir would split the log per pod and lose it.
    assert make_url(settings.prediction_log_url).get_backend_name() == "postgresql"


@pytest.mark.parametrize("variant", ["base", "production"])
def test_service_autoscaler_and_budget_select_the_api_pods(variant: str, request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(variant)
    deployment = one(manifests, "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    service = one(manifests, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    http = [port for port in service["spec"]["ports"] if port["name"] == "http"]
    assert len(http) == 1 and container_port(api_container(manifests), http[0]["targetPort"]) == 8000

    budget = one(manifests, "PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()

    autoscaler = one(manifests, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert autoscaler["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]
    # The budget never blocks every drain: more pods than it must keep.
    assert autoscaler["spec"]["minReplicas"] > budget["spec"]["minAvailable"]
    assert autoscaler["spec"]["maxReplicas"] > autoscaler["spec"]["minReplicas"]

    spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {constraint["topologyKey"] for constraint in spread} >= {"kubernetes.io/hostname"}
    assert all(c["labelSelector"]["matchLabels"].items() <= pod_labels.items() for c in spread)


def test_the_base_has_no_spamd_port(base: list[Manifest]) -> None:
    container = api_container(base)
    assert [port["name"] for port in container["ports"]] == ["http"]
    assert api_settings(pod_environment(base, read_env_file(PRODUCTION / SECRETS_EXAMPLE))).spamd_port is None
    assert [port["name"] for port in one(base, "Service")["spec"]["ports"]] == ["http"]


# --- the production overlay ------------------------------------------------------------------------------


def test_overlay_sets_namespace_image_replicas_resources_and_tracking_server(
    base: list[Manifest], production: list[Manifest]
) -> None:
    assert {manifest["metadata"].get("namespace") for manifest in production} == {"spamfilter"}
    image = api_container(production)["image"]
    repository, _, tag = image.rpartition(":")
    assert repository.endswith("/spamfilter-api") and tag and tag != "latest", image

    base_environment = pod_environment(base, read_env_file(PRODUCTION / SECRETS_EXAMPLE))
    environment = pod_environment(production)
    assert environment["MLFLOW_TRACKING_URI"] != base_environment["MLFLOW_TRACKING_URI"]
    assert environment["MLFLOW_TRACKING_URI"].startswith("https://")
    assert int(environment["WORKERS"]) != int(base_environment["WORKERS"])

    autoscaler, base_autoscaler = one(production, "HorizontalPodAutoscaler"), one(base, "HorizontalPodAutoscaler")
    assert autoscaler["spec"]["minReplicas"] > base_autoscaler["spec"]["minReplicas"]
    requests, base_requests = api_container(production)["resources"], api_container(base)["resources"]
    assert quantity(requests["requests"]["cpu"]) > quantity(base_requests["requests"]["cpu"])


def test_overlay_generates_the_secret_from_its_git_ignored_env_file(production: list[Manifest]) -> None:
    secret_refs = [
        source["secretRef"]["name"] for source in api_container(production)["envFrom"] if "secretRef" in source
    ]
    assert len(secret_refs) == 1 and secret_refs[0].startswith(f"{SECRET_NAME}-"), "a generated, hashed name"
    secret = named(production, "Secret", secret_refs[0])
    decoded = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    assert decoded == read_env_file(PRODUCTION / SECRETS_EXAMPLE)

    ignored = subprocess.run(
        ["git", "check-ignore", "--quiet", str(PRODUCTION / SECRETS_FILE)], cwd=REPO_ROOT, check=False
    )
    assert ignored.returncode == 0, f"{PRODUCTION / SECRETS_FILE} must be git-ignored"


def test_overlay_refuses_to_render_without_its_secrets_file(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns(SECRETS_FILE))
    result = subprocess.run(
        [kubectl(), "kustomize", str(copy / PRODUCTION.relative_to(K8S))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and SECRETS_FILE in result.stderr, result.stderr


def test_overlay_exposes_the_spamd_port(production: list[Manifest]) -> None:
    container = api_container(production)
    settings = api_settings(pod_environment(production))
    assert settings.spamd_port is not None
    assert container_port(container, "spamd") == settings.spamd_port
    # The container has no capabilities: it cannot bind below 1024.
    assert settings.spamd_port >= 1024
    assert container_port(container, "http") == settings.port
    ports = {port["name"]: port for port in one(production, "Service")["spec"]["ports"]}
    assert set(ports) == {"http", "spamd"}
    assert container_port(container, ports["spamd"]["targetPort"]) == settings.spamd_port
    assert ports["spamd"]["port"] == 783, "spamc's default port"


def test_manifests_are_yamllint_clean() -> None:
    manifests = sorted(str(path) for path in K8S.rglob("*.yaml"))
    assert manifests
    result = subprocess.run(
        [str(VENV_BIN / "yamllint"), "--strict", "--config-file", str(REPO_ROOT / ".yamllint"), *manifests],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the pod's filesystem --------------------------------------------------------------------------------

# Run as root in a private mount namespace: bind the writable directories onto themselves (their own mounts,
# read-write), remount every other ordinary mount read-only (`bind`: this namespace's mount only, never the
# filesystem itself), check that the working directory refuses writes, then become the API. /proc, /sys
# and /dev (with /dev/shm) stay as a container runtime gives them.
READ_ONLY_ROOT = r"""
set -eu
writable=""
while [ "$1" != "--" ]; do mount --bind "$1" "$1"; writable="$writable $1"; shift; done
shift
awk '{ print $5, $6 }' /proc/self/mountinfo | while read -r point options; do
  case "$point" in /proc|/proc/*|/sys|/sys/*|/dev|/dev/*) continue ;; esac
  case "$options" in ro|ro,*) continue ;; esac
  for dir in $writable; do [ "$point" = "$dir" ] && continue 2; done
  mount -o remount,bind,ro "$point"
done
if touch .write-probe 2>/dev/null; then echo "the root filesystem is still writable" >&2; exit 97; fi
exec "$@"
"""


def read_only_root_available() -> str | None:
    """Why the API cannot be run on a read-only root here, or None."""
    if os.geteuid() != 0:
        return "making a read-only root in a mount namespace needs root"
    missing = [tool for tool in ("unshare", "mount") if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} not found"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"unshare --mount fails here: {probe.stderr.strip()}"


@pytest.fixture
def tracking_server(tmp_path: Path) -> Iterator[Settings]:
    """`mlflow server` on loopback (SQLite store, artifacts proxied from a local directory) holding two
    versions of spam-classifier, @champion on 1: the pods' tracking server, outside the pod's filesystem."""
    from spamfilter.registry import tracking

    root = tmp_path / "mlflow-server"
    root.mkdir()
    port = free_port()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_"))}
    with (root / "server.log").open("wb") as log_file:
        process = subprocess.Popen(
            [
                str(VENV_BIN / "mlflow"),
                "server",
                "--backend-store-uri",
                f"sqlite:///{root / 'mlflow.db'}",
                "--artifacts-destination",
                str(root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the server runs its workers as children
        )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_http(f"{url}/health", timeout=240)  # a loaded CI machine starts it slowly
        settings = Settings(_env_file=None, MLFLOW_TRACKING_URI=url)  # type: ignore[call-arg]
        for model in (train_model(), train_model(TrainParams(model="mnb"))):
            run = tracking.log_training_run(
                settings,
                model,
                params={"train.model": "x"},
                tags={"data_raw_md5": "a" * 32, "data_rows": "200"},
                input_example=INPUT_EXAMPLE,
            )
            tracking.log_evaluation(settings, run.run_id, held_out_metrics(model), artifacts=[])
        tracking.set_alias(settings, "champion", "1")
        yield settings
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.mark.slow
def test_the_api_serves_on_the_pods_read_only_root_with_only_run_and_tmp_writable(
    base: list[Manifest], tracking_server: Settings, postgres_url: str, tmp_path: Path
) -> None:
    from spamfilter.monitoring import predlog
    from spamfilter.registry import tracking

    reason = read_only_root_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}: CI runs the API on a read-only root (CI runs as root)")
        pytest.skip(reason)

    app_dir, run_dir, pod_tmp, home = (tmp_path / name for name in ("app", "run", "tmp", "home"))
    for directory in (app_dir, run_dir, pod_tmp, home):
        directory.mkdir()
    secrets = read_env_file(PRODUCTION / SECRETS_EXAMPLE)
    pod_env = pod_environment(base, secrets)
    mounts = {mount["mountPath"] for mount in api_container(base)["volumeMounts"]}
    assert mounts == {pod_env["API_RUN_DIR"], "/tmp"}, "the test makes writable exactly what the pod mounts"

    port = free_port()
    command, image_env = image_command_and_env()
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "SPAM_", "API_"))}
    environment.update({key: value for key, value in image_env.items() if key != "PATH"})
    environment.update(pod_env)
    environment.update(
        {
            # The pod's mounts, at this test's paths: the run emptyDir, and /tmp (here TMPDIR; the real /tmp is
            # read-only in the namespace, so a library writing to /tmp regardless would fail here too).
            "API_RUN_DIR": str(run_dir),
            "TMPDIR": str(pod_tmp),
            "HOME": str(home),
            # Services outside the pod: the tracking server and PostgreSQL. It has no e-mail model registered.
            "MLFLOW_TRACKING_URI": tracking_server.mlflow_tracking_uri,
            "PREDICTION_LOG_URL": postgres_url,
            "EMAIL_MODEL_URI": "",
            "MODEL_POLL_INTERVAL": "1",
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "PYTHONPATH": str(REPO_ROOT),
        }
    )
    writable = [str(run_dir), str(pod_tmp)]
    launcher = ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", READ_ONLY_ROOT, "sh"]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [*launcher, *writable, "--", sys.executable, *command[1:]],
            cwd=app_dir,
            env=environment,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log_path, environment, app_dir)
    try:
        server.wait_ready(timeout=240)
        api_key = {"X-API-Key": secrets["API_KEY"]}
        with server.client() as client:
            answer = client.post("/predict", json={"text": "Free entry! Text WIN to 80086 now"}, headers=api_key)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == "1"

            # A promotion reaches the pod by polling the alias: a download into tmp, a swap in every worker.
            tracking.set_alias(tracking_server, "champion", "2")
            versions: set[str] = set()
            deadline = time.monotonic() + 120
            while versions != {"2"} and time.monotonic() < deadline:
                time.sleep(0.5)
                versions = {httpx.get(f"{server.url}/model", timeout=5).json()["version"] for _ in range(8)}
            assert versions == {"2"}, server.log_text()

            # An admin reload reaches the other workers through the run directory.
            reloaded = client.post("/admin/reload", headers={"X-API-Key": secrets["ADMIN_API_KEY"]})
            assert reloaded.status_code == 200, reloaded.text
            assert client.get("/metrics").status_code == 200
        assert (run_dir / "reload-request").is_file()
        assert list((run_dir / "prometheus").glob("*.db")), "the workers' Prometheus files live in the run dir"

        engine = predlog.connect(postgres_url)
        try:
            deadline = time.monotonic() + 30
            while not (logged := predlog.read_predictions(engine).records) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            engine.dispose()
        assert [record.id for record in logged] == [answer.json()["prediction_id"]]
    finally:
        server.stop()
    # No worker met a refused write along the way (a failed reload would keep serving and only log it).
    assert "Read-only file system" not in server.log_text()
