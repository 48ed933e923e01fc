"""The deployment files read the way Docker, Compose and the kubelet read them.

The contract tests (``tests/deploy``) and the topology test (``tests/cluster``) start
from what these functions return, so a node started by a test sees the same command line
and environment as a container started from the files.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
COMPOSE = ROOT / "deploy" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
K8S = ROOT / "k8s"
IMAGE = "shardetl"  # the image name every shardetl workload runs (tag aside)

P = ParamSpec("P")
T = TypeVar("T")


def _read_once(parse: Callable[P, T]) -> Callable[P, T]:
    """``parse``, reading and parsing each file once per session.

    Every call still returns its own copy: a test that changes what it was given changes
    nothing another test sees.
    """
    cached = cast(Callable[P, T], functools.cache(parse))  # the arguments are paths: hashable

    @functools.wraps(parse)
    def fresh(*args: P.args, **kwargs: P.kwargs) -> T:
        return copy.deepcopy(cached(*args, **kwargs))

    return fresh


# --- Dockerfile -------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage: its instructions, as (KEYWORD, arguments) pairs."""

    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str | None:
        found = self.all(keyword)
        return found[-1] if found else None

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for args in self.all("ENV"):
            for word in shlex.split(args):
                name, _, value = word.partition("=")
                env[name] = value
        return env

    def exec_form(self, keyword: str) -> list[str]:
        """ENTRYPOINT/CMD in JSON (exec) form; the shell form is refused."""
        args = self.last(keyword)
        assert args is not None, f"no {keyword}"
        value = json.loads(args)
        assert isinstance(value, list), f"{keyword} must use the exec (JSON) form"
        return [str(part) for part in value]


@_read_once
def dockerfile_stages(path: Path = DOCKERFILE) -> list[Stage]:
    """The Dockerfile's stages, comments dropped and continuation lines joined."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    logical = re.sub(r"\\\n", " ", "\n".join(lines))
    stages: list[Stage] = []
    for line in logical.splitlines():
        if not line.strip():
            continue
        keyword, _, args = line.strip().partition(" ")
        keyword, args = keyword.upper(), " ".join(args.split())
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append((keyword, args))
    return stages


def image_argv(args: list[str] | None = None) -> list[str]:
    """The process a container of the image runs: ENTRYPOINT + (``args`` or CMD)."""
    final = dockerfile_stages()[-1]
    return [*final.exec_form("ENTRYPOINT"), *(final.exec_form("CMD") if args is None else args)]


# --- YAML -------------------------------------------------------------------------------


@_read_once
def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@_read_once
def kustomization(directory: Path = K8S) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((directory / "kustomization.yaml").read_text())
    return loaded


def kustomize_files(directory: Path = K8S) -> list[Path]:
    """The manifest files a kustomization renders, bases (directories) included."""
    files: list[Path] = []
    for entry in kustomization(directory)["resources"]:
        target = (directory / entry).resolve()
        files.extend(kustomize_files(target) if target.is_dir() else [target])
    return files


def k8s_resources(directory: Path = K8S) -> list[dict[str, Any]]:
    return [doc for path in kustomize_files(directory) for doc in yaml_documents(path)]


def k8s_find(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        r
        for r in k8s_resources()
        if r["kind"] == kind and (name is None or r["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_template(resource: dict[str, Any]) -> dict[str, Any]:
    """The pod template of a StatefulSet, Deployment, Job or CronJob."""
    spec = resource["spec"]
    if resource["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    template: dict[str, Any] = spec["template"]
    return template


def workloads() -> Iterator[dict[str, Any]]:
    kinds = {"StatefulSet", "Deployment", "DaemonSet", "Job", "CronJob"}
    return (r for r in k8s_resources() if r["kind"] in kinds)


def shardetl_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    containers = [*pod_spec.get("initContainers", []), *pod_spec["containers"]]
    return [c for c in containers if c["image"].split(":")[0] == IMAGE]


_K8S_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def k8s_expand(value: str, env: Mapping[str, str]) -> str:
    """``$(VAR)`` references as the kubelet expands them (unknown ones stay as written)."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        return env.get(match[1], match[0])

    return _K8S_REF.sub(one, value)


def k8s_references(value: str) -> set[str]:
    return {m[1] for m in _K8S_REF.finditer(value) if m[1]}


def k8s_container_env(
    container: dict[str, Any],
    *,
    fields: Mapping[str, str],
    config_maps: Mapping[str, Mapping[str, str]],
    secrets: Mapping[str, Mapping[str, str]],
) -> dict[str, str]:
    """A container's environment: envFrom first, then env in order, ``$(VAR)`` expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(config_maps[source["configMapRef"]["name"]])
        if "secretRef" in source:
            env.update(secrets[source["secretRef"]["name"]])
    for var in container.get("env", []):
        name = var["name"]
        if "valueFrom" not in var:
            env[name] = k8s_expand(str(var.get("value", "")), env)
            continue
        origin = var["valueFrom"]
        if "fieldRef" in origin:
            env[name] = fields[origin["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in origin:
            env[name] = secrets[origin["secretKeyRef"]["name"]][origin["secretKeyRef"]["key"]]
        elif "configMapKeyRef" in origin:
            ref = origin["configMapKeyRef"]
            env[name] = config_maps[ref["name"]][ref["key"]]
        else:
            raise AssertionError(f"{name}: unsupported valueFrom {origin}")
    return env


def k8s_config_maps() -> dict[str, dict[str, str]]:
    return {
        r["metadata"]["name"]: {k: str(v) for k, v in r.get("data", {}).items()}
        for r in k8s_resources()
        if r["kind"] == "ConfigMap"
    }


# --- Compose ----------------------------------------------------------------------------


@_read_once
def dotenv(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """``KEY=value`` lines, as Compose reads its ``.env`` (comments and blanks skipped)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        values[name.strip()] = value.strip()
    return values


class MissingVariable(LookupError):
    """A ``${VAR:?message}`` whose variable is unset or empty: Compose refuses to run."""


_COMPOSE_REF = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:?error}``, ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"] or "", match["arg"] or ""
        current = variables.get(name)
        unset = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if unset else str(current)
        if op.endswith("?"):
            if unset:
                raise MissingVariable(f"{name}: {arg}")
            return str(current)
        if op.endswith("+"):
            return "" if unset else arg
        return current or ""

    return _COMPOSE_REF.sub(one, value)


def compose_variables(text: str) -> set[str]:
    return {m["braced"] or m["named"] for m in _COMPOSE_REF.finditer(text) if not m["escaped"]}


def _interpolate_tree(node: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, variables)
    if isinstance(node, list):
        return [_interpolate_tree(item, variables) for item in node]
    if isinstance(node, dict):
        return {key: _interpolate_tree(item, variables) for key, item in node.items()}
    return node


@_read_once
def compose_raw() -> dict[str, Any]:
    """The compose file as YAML (merge keys resolved), before interpolation."""
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose(variables: Mapping[str, str]) -> dict[str, Any]:
    """The compose file as ``docker compose config`` would see it with ``variables``."""
    resolved: dict[str, Any] = _interpolate_tree(compose_raw(), variables)
    return resolved


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` (mapping or list form) as strings."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    return {str(k): str(v) for k, v in raw.items() if v is not None}


def shardetl_services(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in config["services"].items()
        if str(service.get("image", "")).split(":")[0] == IMAGE
    }


# --- both -------------------------------------------------------------------------------


def option(argv: list[str], flag: str) -> str:
    """The value after ``flag`` (``--port 8000``) or in ``flag=value`` form."""
    for i, word in enumerate(argv):
        if word == flag:
            return argv[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {argv}")


def with_option(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``flag``'s value replaced (it must be there)."""
    option(argv, flag)
    out = list(argv)
    for i, word in enumerate(out):
        if word == flag:
            out[i + 1] = value
        elif word.startswith(flag + "="):
            out[i] = f"{flag}={value}"
    return out
