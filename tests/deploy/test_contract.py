"""The deployment files agree with the code they deploy (DESIGN.md's names, the node's
routes, its settings and identity modes), read without Docker or Kubernetes."""

from __future__ import annotations

import ast
import inspect
import os
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from django.urls import Resolver404, resolve

from cluster import identity
from cluster.management.commands import node as node_command
from etl.config import Settings
from etl.exceptions import ConfigError
from tests.deploy import specs

PACKAGES = ("etl", "cluster", "ingest", "aggregates")
# Read by the interpreter or pip inside the image, not by shardetl.
INTERPRETER_ENV = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_DISABLE_PIP_VERSION_CHECK"}
SECRETS = {"DATABASE_URL", "DJANGO_SECRET_KEY"}
SECRET_EXAMPLE = specs.K8S / "secret.example.yaml"
TEST_SECRETS = {
    "shardetl": {
        "DATABASE_URL": "postgresql://shardetl:pw@db.internal:5432/shardetl",
        "DJANGO_SECRET_KEY": "contract-test-key",
    }
}


def _project_names() -> set[str]:
    """Every upper-case string literal in the project's code: the env names it can read."""
    names: set[str] = set()
    for package in PACKAGES:
        for path in (specs.ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and re.fullmatch(r"[A-Z][A-Z0-9_]*", node.value)
                ):
                    names.add(node.value)
    return names


def _statefulset() -> dict[str, Any]:
    return specs.k8s_find("StatefulSet", "shardetl")


def _node_container() -> dict[str, Any]:
    containers = specs.pod_template(_statefulset())["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _pod_env(ordinal: int, pod_ip: str = "10.1.2.3") -> dict[str, str]:
    name = f"{_statefulset()['metadata']['name']}-{ordinal}"
    env = specs.k8s_container_env(
        _node_container(),
        fields={"metadata.name": name, "status.podIP": pod_ip, "metadata.namespace": "default"},
        config_maps=specs.k8s_config_maps(),
        secrets=TEST_SECRETS,
    )
    # The image's ENV, then what the kubelet sets: HOSTNAME is the pod's name.
    return {**specs.dockerfile_stages()[-1].env, **env, "HOSTNAME": name}


def _compose_variables() -> dict[str, str]:
    return {
        **specs.dotenv(),
        "POSTGRES_PASSWORD": "0123abcd",
        "DJANGO_SECRET_KEY": "contract-test-key",
    }


def _settings(env: dict[str, str]) -> Settings:
    with mock.patch.dict(os.environ, env, clear=True):
        return Settings.from_env()


def _identity(env: dict[str, str]) -> identity.Identity:
    with mock.patch.dict(os.environ, env, clear=True):
        return identity.resolve(Settings.from_env())


def _seconds(duration: str | int) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", str(duration))
    assert match, duration
    return int(match[1]) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[match[2]]


def _uvicorn_graceful_seconds() -> int:
    """How long ``etl node`` lets uvicorn close connections before the runtime drains."""
    found = re.search(r"timeout_graceful_shutdown=(\d+)", inspect.getsource(node_command))
    assert found, "etl node no longer sets uvicorn's timeout_graceful_shutdown"
    return int(found[1])


def _k8s_shardetl_containers() -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for workload in specs.workloads():
        spec = specs.pod_template(workload)["spec"]
        for container in specs.shardetl_containers(spec):
            yield workload, container


# --- routes and probes ------------------------------------------------------------------


def _route_exists(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def test_probe_paths_are_node_routes() -> None:
    container = _node_container()
    paths = {
        probe: container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert all(_route_exists(path) for path in paths.values())
    assert not _route_exists("/no-such-probe")  # resolve() does refuse unknown paths


def test_probe_and_service_ports_are_the_port_the_node_listens_on() -> None:
    container = _node_container()
    port = int(specs.option(container["args"], "--port"))
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        target = container[probe]["httpGet"]["port"]
        assert ports.get(target, target) == port
    for service in (r for r in specs.k8s_resources() if r["kind"] == "Service"):
        for service_port in service["spec"]["ports"]:
            target = service_port["targetPort"]
            assert ports.get(target, target) == port, service["metadata"]["name"]
    assert container["args"] == ["node", "--host", "0.0.0.0", "--port", str(port)]
    assert specs.image_argv(container["args"]) == specs.image_argv()  # the image's default


def test_dockerfile_final_stage_is_non_root_without_compilers_with_a_healthcheck() -> None:
    stages = specs.dockerfile_stages()
    assert len(stages) >= 2
    builder, final = stages[0], stages[-1]
    assert final.base.startswith("python:")
    assert "slim" in final.base
    assert any("pip wheel" in args for args in builder.all("RUN"))
    final_text = " ".join(args for _, args in final.instructions)
    for tool in ("build-essential", "gcc", "g++", "make ", "curl"):
        assert tool not in final_text, f"{tool} in the final stage"
    assert "--no-index" in final_text  # installs the builder's wheels, nothing else
    user = final.last("USER")
    assert user is not None
    uid = user.partition(":")[0]
    assert uid.isdigit(), "USER must be numeric: runAsNonRoot cannot check a name"
    assert int(uid) > 0
    healthcheck = final.last("HEALTHCHECK")
    assert healthcheck is not None
    url = re.search(r"http://127\.0\.0\.1:(\d+)(/\w+)", healthcheck)
    assert url, healthcheck
    argv = specs.image_argv()
    assert argv == ["etl", "node", "--host", "0.0.0.0", "--port", url[1]]
    assert url[2] == "/healthz"
    assert _route_exists(url[2])
    assert final.last("EXPOSE") == url[1]
    assert final.env["ETL_VAR_DIR"].startswith("/")


def test_pods_run_as_the_image_user_restricted() -> None:
    uid, _, gid = (specs.dockerfile_stages()[-1].last("USER") or "").partition(":")
    var_dir = specs.dockerfile_stages()[-1].env["ETL_VAR_DIR"]
    seen = 0
    for workload in specs.workloads():
        spec = specs.pod_template(workload)["spec"]
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert (str(pod["runAsUser"]), str(pod["runAsGroup"])) == (uid, gid)
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec.get("automountServiceAccountToken") is False
        empty_dirs = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for container in specs.shardetl_containers(spec):
            seen += 1
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx["readOnlyRootFilesystem"] is True
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert {"requests", "limits"} <= set(container["resources"])
            assert "memory" in container["resources"]["limits"]
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert mounts.get("/tmp") in empty_dirs, container["name"]
    assert seen >= 4  # init + node, migrate, aggregate
    mounts = {m["mountPath"]: m["name"] for m in _node_container()["volumeMounts"]}
    node_empty_dirs = {
        v["name"] for v in specs.pod_template(_statefulset())["spec"]["volumes"] if "emptyDir" in v
    }
    assert mounts.get(var_dir) in node_empty_dirs  # ETL_VAR_DIR is writable


# --- identity ---------------------------------------------------------------------------


def test_statefulset_replicas_and_etl_node_count_are_a_pair() -> None:
    sts = _statefulset()
    replicas = sts["spec"]["replicas"]
    assert replicas >= 2
    for ordinal in range(replicas):
        env = _pod_env(ordinal)
        assert env["ETL_NODE_COUNT"] == str(replicas)
        assert "ETL_SERVER_ID" not in env
        assert env.get("ETL_MEMBERSHIP", "static") == "static"


def test_the_node_parses_its_slot_from_the_pod_name() -> None:
    sts = _statefulset()
    replicas = sts["spec"]["replicas"]
    for ordinal in range(replicas):
        env = _pod_env(ordinal)
        pod = f"{sts['metadata']['name']}-{ordinal}"
        assert identity.statefulset_ordinal(pod) == ordinal
        settings = _settings(env)
        assert settings.node_name == pod  # stable across restarts of the pod
        assert _identity(env) == identity.Identity(
            slot=ordinal, node_count=replicas, mode="statefulset"
        )
    # One pod more than ETL_NODE_COUNT (replicas raised alone) refuses to start.
    with pytest.raises(ConfigError, match="outside"):
        _identity(_pod_env(replicas))


def test_compose_nodes_use_dynamic_membership() -> None:
    config = specs.compose(_compose_variables())
    node = config["services"]["node"]
    env = {**specs.dockerfile_stages()[-1].env, **specs.compose_env(node)}
    assert _identity(env).mode == "dynamic"
    assert node["deploy"]["replicas"] >= 2


def test_grace_periods_outlast_the_drain() -> None:
    drain = _settings(_pod_env(0)).drain_seconds
    needed = _uvicorn_graceful_seconds() + drain
    assert specs.pod_template(_statefulset())["spec"]["terminationGracePeriodSeconds"] > needed
    config = specs.compose(_compose_variables())
    env = specs.compose_env(config["services"]["node"])
    compose_drain = _settings({**specs.dockerfile_stages()[-1].env, **env}).drain_seconds
    needed = _uvicorn_graceful_seconds() + compose_drain
    assert _seconds(config["services"]["node"]["stop_grace_period"]) > needed


# --- environment ------------------------------------------------------------------------


def test_every_env_name_is_one_the_project_reads() -> None:
    known = _project_names() | INTERPRETER_ENV
    used: dict[str, set[str]] = {}
    for workload, container in _k8s_shardetl_containers():
        names = {var["name"] for var in container.get("env", [])}
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                names |= set(specs.k8s_config_maps()[source["configMapRef"]["name"]])
            if "secretRef" in source:  # the keys the Secret example documents
                names |= set(specs.yaml_documents(SECRET_EXAMPLE)[0]["stringData"])
        # A name that only feeds another's $(NAME) expansion is the kubelet's, not ours.
        helpers = {
            ref
            for var in container.get("env", [])
            for ref in specs.k8s_references(str(var.get("value", "")))
            if ref != var["name"]
        } - known
        where = f"k8s {workload['metadata']['name']}/{container['name']}"
        used[where] = names - helpers
    for name, service in specs.shardetl_services(specs.compose(_compose_variables())).items():
        used[f"compose {name}"] = set(specs.compose_env(service))
    used["Dockerfile"] = set(specs.dockerfile_stages()[-1].env)
    unknown = {where: sorted(names - known) for where, names in used.items() if names - known}
    assert not unknown, f"env names shardetl never reads: {unknown}"
    assert "ETL_NODE_COUNT" in used["k8s shardetl/node"]  # the check does see names


def test_no_deployment_turns_debug_on_and_hosts_are_allowed() -> None:
    envs = [_pod_env(0, pod_ip="10.1.2.3")]
    config = specs.compose(_compose_variables())
    envs += [specs.compose_env(s) for s in specs.shardetl_services(config).values()]
    for env in envs:
        assert env.get("DJANGO_DEBUG", "") in {"", "0", "false", "off"}
    hosts = envs[0]["DJANGO_ALLOWED_HOSTS"].split(",")
    # kubelet probes and Prometheus address the pod by IP; the Service by its name.
    assert "10.1.2.3" in hosts
    assert "shardetl-graphql" in hosts
    assert not any("$(" in host for host in hosts)
    node_hosts = specs.compose_env(config["services"]["node"])["DJANGO_ALLOWED_HOSTS"]
    assert {"127.0.0.1", "localhost"} <= set(node_hosts.split(","))  # healthcheck, proxy


def test_secrets_come_from_secrets_never_from_literals() -> None:
    example = specs.yaml_documents(SECRET_EXAMPLE)[0]
    for workload, container in _k8s_shardetl_containers():
        for var in container.get("env", []):
            if var["name"] in SECRETS:
                ref = var["valueFrom"]["secretKeyRef"]
                assert ref["name"] == example["metadata"]["name"]
                assert ref["key"] in example["stringData"], workload["metadata"]["name"]
    for data in specs.k8s_config_maps().values():
        assert not SECRETS & set(data)
    assert all("CHANGE-ME" in value for value in example["stringData"].values())
    raw = specs.compose_raw()
    for service in specs.shardetl_services(raw).values():
        env = specs.compose_env(service)
        if "DJANGO_SECRET_KEY" in env:
            assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:\?[^}]*\}", env["DJANGO_SECRET_KEY"])
        if "DATABASE_URL" in env:
            assert ":${POSTGRES_PASSWORD:?" in env["DATABASE_URL"]
    postgres = raw["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert postgres.startswith("${POSTGRES_PASSWORD:?")


def test_env_example_documents_every_variable_and_holds_no_secret() -> None:
    example = specs.dotenv()
    assert specs.compose_variables(specs.COMPOSE.read_text()) <= set(example)
    assert example["POSTGRES_PASSWORD"] == example["DJANGO_SECRET_KEY"] == ""
    with pytest.raises(specs.MissingVariable, match=r"POSTGRES_PASSWORD|DJANGO_SECRET_KEY"):
        specs.compose(example)  # compose refuses to start until they are filled in
    config = specs.compose(_compose_variables())
    url = specs.compose_env(config["services"]["node"])["DATABASE_URL"]
    assert url == "postgresql://shardetl:0123abcd@postgres:5432/shardetl"


# --- wiring -----------------------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_services_and_budget_select_the_node_pods_only() -> None:
    sts = _statefulset()
    labels = specs.pod_template(sts)["metadata"]["labels"]
    assert _selects(sts["spec"]["selector"]["matchLabels"], labels)
    others = [
        specs.pod_template(w)["metadata"]["labels"]
        for w in specs.workloads()
        if w["kind"] in ("Job", "CronJob")
    ]
    assert len(others) == 2
    selectors = {
        f"Service {s['metadata']['name']}": s["spec"]["selector"]
        for s in specs.k8s_resources()
        if s["kind"] == "Service"
    }
    pdb = specs.k8s_find("PodDisruptionBudget")
    selectors["PodDisruptionBudget"] = pdb["spec"]["selector"]["matchLabels"]
    assert len(selectors) == 3
    for what, selector in selectors.items():
        assert _selects(selector, labels), what
        assert not any(_selects(selector, other) for other in others), what
    headless = specs.k8s_find("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    graphql = specs.k8s_find("Service", "shardetl-graphql")
    assert graphql["spec"]["type"] == "ClusterIP"
    assert sts["spec"]["podManagementPolicy"] == "Parallel"


def test_config_maps_and_images_referenced_exist() -> None:
    config_maps = specs.k8s_config_maps()
    images = set()
    for _workload, container in _k8s_shardetl_containers():
        images.add(container["image"])
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert source["configMapRef"]["name"] in config_maps
    assert len(images) == 1  # nodes, init, migrate and aggregate run one image
    image = images.pop()
    override = specs.kustomization()["images"]
    assert [entry["name"] for entry in override] == [specs.IMAGE]
    assert image == f"{specs.IMAGE}:{override[0]['newTag']}"


def test_migrate_job_and_aggregate_cronjob_run_the_commands() -> None:
    job = specs.k8s_find("Job", "shardetl-migrate")
    (migrate,) = specs.pod_template(job)["spec"]["containers"]
    assert specs.image_argv(migrate["args"]) == ["etl", "migrate"]
    cron = specs.k8s_find("CronJob", "shardetl-aggregate")
    (aggregate,) = specs.pod_template(cron)["spec"]["containers"]
    assert specs.image_argv(aggregate["args"])[:2] == ["etl", "aggregate"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (init,) = specs.pod_template(_statefulset())["spec"]["initContainers"]
    assert specs.image_argv(init["args"]) == ["etl", "migrate", "--check"]


def test_compose_wiring() -> None:
    config = specs.compose(_compose_variables())
    services = config["services"]
    postgres, migrate, node = services["postgres"], services["migrate"], services["node"]
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in config["volumes"]  # a named volume, not a host path
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert specs.image_argv(migrate["command"]) == ["etl", "migrate"]
    assert node["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert "ports" not in node  # a host port would break --scale
    port = specs.option(node["command"], "--port")
    assert node["expose"] == [port]
    assert f"http://node:{port}" in specs.NGINX_CONF.read_text()
    proxy = services["proxy"]
    assert proxy["ports"] == ["127.0.0.1:8000:8080"]
    assert "listen 8080;" in specs.NGINX_CONF.read_text()
    for name in ("upstream", "sources"):
        assert services[name]["profiles"] == ["demo"]
    up_port = specs.option(services["upstream"]["command"], "--port")
    assert services["sources"]["command"] == [
        "sources",
        "import",
        f"http://upstream:{up_port}/sources.jsonl",
    ]
    assert services["sources"]["depends_on"]["upstream"]["condition"] == "service_healthy"
    assert "aggregate" not in services  # the in-node cron aggregates (see the file's notes)


def test_every_package_file_the_image_needs_is_in_the_wheel() -> None:
    """The image installs a wheel: non-Python files reach it only as declared package data.

    Without setuptools-scm or a MANIFEST.in, setuptools puts only ``.py`` files and the
    ``package-data`` globs of pyproject.toml into the wheel.
    """
    pyproject = tomllib.loads((specs.ROOT / "pyproject.toml").read_text())
    declared = pyproject.get("tool", {}).get("setuptools", {}).get("package-data", {})
    missing = []
    for package in PACKAGES:
        for path in (specs.ROOT / package).rglob("*"):
            if not path.is_file() or path.suffix in {".py", ".pyc"} or "__pycache__" in path.parts:
                continue
            owner = path.parent
            while not (owner / "__init__.py").exists():
                owner = owner.parent
            dotted = ".".join(owner.relative_to(specs.ROOT).parts)
            globs = [*declared.get(dotted, []), *declared.get("*", [])]
            if not any(path in set(owner.glob(pattern)) for pattern in globs):
                missing.append(str(path.relative_to(specs.ROOT)))
    assert not missing, f"not in the wheel, so not in the image: {missing}"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = {
        line.strip()
        for line in (specs.ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "var", "tests", "**/.env"} <= ignored
    copied = [src for args in specs.dockerfile_stages()[0].all("COPY") for src in args.split()[:-1]]
    assert copied  # the build context the image needs is not ignored
    assert not any(Path(src).parts[0] in ignored for src in copied)
