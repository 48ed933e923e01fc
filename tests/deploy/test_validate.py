"""Offline schema validation of the Kubernetes manifests and the compose file.

Both tools ship their schemas (kubernetes-validate: the Kubernetes OpenAPI schemas per
minor version; check-jsonschema: a vendored Compose Specification), so nothing here needs
a network, a cluster or a Docker engine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy import specs

# The Kubernetes minor the manifests are checked against: the newest one the pinned
# kubernetes-validate (>=1.37, pyproject's dev extra) bundles. The APIs used (apps/v1,
# batch/v1, policy/v1, v1) are all GA for years, so older clusters accept them too.
KUBERNETES_VERSION = "1.37.0"
BIN = Path(sys.executable).parent


def _kubernetes_validate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(BIN / "kubernetes-validate"),
            "--strict",
            "--kubernetes-version",
            KUBERNETES_VERSION,
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _all_manifests() -> list[Path]:
    """What `kubectl apply -k k8s/dev/` renders (k8s/ included), plus the Secret example."""
    files = specs.kustomize_files(specs.K8S / "dev")
    return [*files, specs.K8S / "secret.example.yaml"]


def test_every_manifest_is_valid_for_kubernetes_strict() -> None:
    files = _all_manifests()
    documents = sum(len(specs.yaml_documents(path)) for path in files)
    result = _kubernetes_validate(*files)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # An unknown kind or apiVersion is only a warning with exit status 0: refuse it too.
    assert "WARN" not in output, output
    assert "ERROR" not in output, output
    assert output.count("passed for resource") == documents, output
    assert f"against version {KUBERNETES_VERSION.rsplit('.', 1)[0]}" in output


def test_kubernetes_validate_rejects_a_misspelt_field(tmp_path: Path) -> None:
    text = (specs.K8S / "statefulset.yaml").read_text()
    broken = tmp_path / "statefulset.yaml"
    broken.write_text(text.replace("readinessProbe:", "readynessProbe:"))
    result = _kubernetes_validate(broken)
    assert result.returncode != 0
    assert "readynessProbe" in result.stdout + result.stderr


def test_compose_file_matches_the_compose_specification() -> None:
    result = _check_compose(specs.COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_schema_rejects_a_misspelt_key(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(specs.COMPOSE.read_text().replace("stop_grace_period:", "stop_grace:"))
    result = _check_compose(broken)
    assert result.returncode != 0
    assert "stop_grace" in result.stdout + result.stderr


@pytest.mark.parametrize("directory", [specs.K8S, specs.K8S / "dev"])
def test_kustomization_lists_every_manifest_and_no_secret(directory: Path) -> None:
    listed = {
        (directory / entry).resolve() for entry in specs.kustomization(directory)["resources"]
    }
    on_disk = {
        path.resolve()
        for path in directory.glob("*.yaml")
        if path.name != "kustomization.yaml" and not path.name.endswith(".example.yaml")
    }
    assert on_disk <= listed, on_disk - listed
    assert all(path.exists() for path in listed)
    kinds = {r["kind"] for r in specs.k8s_resources(directory)}
    assert "Secret" not in kinds  # real secrets are created out of band
