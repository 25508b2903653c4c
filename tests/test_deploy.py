"""Deployment artefacts refer to things that exist (the Dockerfile cannot be built here, so check it)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml  # kubernetes-validate brings PyYAML

from archiver.cli import build_parser

ROOT = Path(__file__).parents[1]


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


def test_kubernetes_manifests_fit_together() -> None:
    folder = ROOT / "deploy" / "kubernetes"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    docs = {name: yaml.safe_load((folder / name).read_text()) for name in kustomization["resources"]}
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
    secret_keys = set(docs["secret.yaml"]["stringData"])
    assert {Path(env["RC_JWT_FILE"]).name, Path(env["RC_CLIENT_SECRET_FILE"]).name} <= secret_keys
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["spool"] and "persistentVolumeClaim" in volumes["state"]
    settings = docs["configmap.yaml"]["data"]
    assert settings["RC_ARCHIVER_STATE_PATH"].startswith(mounts["state"])
    assert settings["RC_ARCHIVER_SPOOL_DIR"].startswith(mounts["spool"])
