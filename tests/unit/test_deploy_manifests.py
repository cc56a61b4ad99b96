"""The container images and Kubernetes manifests of deploy/, checked without Docker or a cluster.

No Docker engine or Kubernetes cluster runs where the tests do, so what can go wrong in these files
is checked where it can be: the Dockerfiles are linted (hadolint parses them as Docker does) and
their paths, users and entry point are checked against this repository; each Kustomize overlay is
rendered with `kubectl kustomize`, every document is validated against the Kubernetes JSON schemas
(kubernetes-validate, strict: a misspelt field fails), every Secret and ConfigMap a pod refers to
exists, no Secret value appears in a ConfigMap or a command line, every pod runs unprivileged with
resource limits, and every dripline service file the pods run passes `dl-serve --check`.
"""
from __future__ import annotations

import base64
import copy
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any, Iterator

import dockerfile
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKER = DEPLOY / "docker"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "cluster")
# the oldest Kubernetes the manifests are meant for, and the newest the validator knows
K8S_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
IMAGE = "dripline-python-pure"


def _tool(name: str) -> str:
    """Path of a command-line tool: next to this Python (a pip-installed one) or on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name!r} is not installed: the deploy/ checks need it "
                    + ("(kubectl from your distribution or the Kubernetes release; Helm is not needed)"
                       if name == "kubectl" else "(python3 -m pip install -e '.[test]')"))
    return found


# ------------------------------------------------------------------------------------ Dockerfiles

def _instructions(path: Path) -> tuple[dockerfile.Command, ...]:
    return dockerfile.parse_file(str(path))


def _arg_defaults(commands: tuple[dockerfile.Command, ...]) -> dict[str, str]:
    defaults = {}
    for c in commands:
        if c.cmd == "ARG" and "=" in c.value[0]:
            key, value = c.value[0].split("=", 1)
            defaults[key] = value.strip('"')
    return defaults


def _stages(commands: tuple[dockerfile.Command, ...]) -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for c in commands:
        if c.cmd == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(c)
    return stages


def _console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.plugin"])
def test_dockerfile_passes_hadolint(name: str) -> None:
    """hadolint parses the file as Docker does (an unknown instruction is an error) and flags the
    usual mistakes (pip cache kept in a layer, shell-form entry points ...)."""
    run = subprocess.run([_tool("hadolint"), "--no-color", "--failure-threshold", "warning",
                          str(DOCKER / name)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


def test_hadolint_refuses_a_broken_dockerfile(tmp_path: Path) -> None:
    """The check above can fail: a misspelt instruction is refused."""
    bad = tmp_path / "Dockerfile"
    bad.write_text((DOCKER / "Dockerfile").read_text().replace("WORKDIR /home/dripline",
                                                                "WORKDRI /home/dripline"))
    run = subprocess.run([_tool("hadolint"), "--no-color", str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode != 0
    assert "WORKDRI" in run.stdout + run.stderr or "unexpected" in run.stdout + run.stderr


def test_dripline_image_builds_from_this_tree_as_non_root_dl_serve() -> None:
    commands = _instructions(DOCKER / "Dockerfile")
    args = _arg_defaults(commands)
    stages = _stages(commands)
    assert len(stages) == 2, "a wheel-building stage and the final image"
    bases = [c.value[0] for c in commands if c.cmd == "FROM"]
    assert all(b.startswith("${PYTHON_IMAGE}") for b in bases)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert "DRIPLINE_SPEC" in {c.value[0].split("=")[0] for c in commands if c.cmd == "ARG"}

    # everything copied from the build context (the repository root) exists and is not ignored
    ignored = (ROOT / ".dockerignore").read_text()
    for c in commands:
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags):
            for source in c.value[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert f"!{source.rstrip('/')}" in ignored.replace("/\n", "\n"), (
                    f"COPY {source}: excluded by .dockerignore")

    final = stages[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    assert users, "the final image sets a user"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {users[-1]}: numeric and not root"
    assert any(c.cmd == "RUN" and f"--uid {uid}" in c.value[0] for c in final)

    entry = [c for c in final if c.cmd == "ENTRYPOINT"][-1]
    assert entry.json, "ENTRYPOINT in exec form, so dl-serve gets the signals (clean stop)"
    assert entry.value[0] in _console_scripts(), f"{entry.value[0]} is a console script"
    assert entry.value == ("dl-serve",)


def _healthcheck_command() -> list[str]:
    check = [c for c in _instructions(DOCKER / "Dockerfile") if c.cmd == "HEALTHCHECK"]
    assert len(check) == 1
    assert check[0].json and check[0].value[0] == "CMD"  # parser keeps CMD as the first word
    return list(check[0].value[1:])


def test_healthcheck_is_opt_in_and_fails_when_the_mesh_is_unreachable(tmp_path: Path) -> None:
    command = _healthcheck_command()
    (tmp_path / ".dripline_mesh.yaml").write_text(
        "broker: 127.0.0.1\nbroker_port: 1\nmax_connection_attempts: 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIPLINE_")}
    env["HOME"] = str(tmp_path)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    unset = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert unset.returncode == 0, unset.stderr
    env["DRIPLINE_HEALTHCHECK_ENDPOINT"] = "my_store"
    down = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode != 0, "unhealthy when the ping cannot reach the mesh"


def test_plugin_image_starts_from_the_dripline_image_and_keeps_its_user() -> None:
    commands = _instructions(DOCKER / "Dockerfile.plugin")
    args = _arg_defaults(commands)
    assert [c.value[0] for c in commands if c.cmd == "FROM"] == ["${DRIPLINE_IMAGE}"]
    assert args["DRIPLINE_IMAGE"].split(":")[0] == IMAGE
    base_user = [c.value[0] for c in _instructions(DOCKER / "Dockerfile") if c.cmd == "USER"][-1]
    users = [c.value[0] for c in commands if c.cmd == "USER"]
    assert users[-1] == base_user, "the plugin image runs as the dripline image's user"
    workdirs = [c.value[0] for c in commands if c.cmd == "WORKDIR"]
    assert "/usr/local/src/${PLUGIN_NAME}" in workdirs, "sources in a folder named per plugin"
    install = " ".join(c.value[0] for c in commands if c.cmd == "RUN")
    assert "--constraint" in install and "dripline==" in install, (
        "pip may not replace the installed dripline")


def test_dockerignore_keeps_the_context_to_what_the_image_needs() -> None:
    lines = [ln.strip() for ln in (ROOT / ".dockerignore").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*", "everything is excluded first, then the few paths the build copies"
    assert {"!pyproject.toml", "!README.md", "!src/"} <= set(lines)


# ------------------------------------------------------------------------- Kubernetes manifests

@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every overlay rendered by `kubectl kustomize`, from a copy of deploy/k8s in which the
    cluster overlay's credential files are made by its own helper script (they are never in the
    repository)."""
    kubectl = _tool("kubectl")
    copy_root = tmp_path_factory.mktemp("k8s") / "k8s"
    operator_files = K8S / "overlays" / "cluster" / "secrets"

    def skip_real_credentials(folder: str, names: list[str]) -> list[str]:
        """An operator's real credential files are neither copied nor used."""
        return [n for n in names if n.endswith(".env")] if Path(folder) == operator_files else []

    shutil.copytree(K8S, copy_root, ignore=skip_real_credentials)
    secrets = copy_root / "overlays" / "cluster" / "secrets"
    made = subprocess.run(["sh", str(secrets / "make-secrets.sh")], capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    out = {}
    for overlay in OVERLAYS:
        run = subprocess.run([kubectl, "kustomize", str(copy_root / "overlays" / overlay)],
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, f"kubectl kustomize overlays/{overlay}: {run.stderr}"
        out[overlay] = [d for d in yaml.safe_load_all(run.stdout) if d]
    return out


def _of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet", "Job"):
            yield f"{d['kind']}/{d['metadata']['name']}", d["spec"]["template"]["spec"]


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod.get("initContainers", [])) + list(pod["containers"])


def _config_data(docs: list[dict[str, Any]], generated_name: str) -> dict[str, str]:
    return _one(docs, "ConfigMap", generated_name)["data"]


def _secret_values(docs: list[dict[str, Any]]) -> dict[str, str]:
    """Every secret value (not user names) of the rendered Secrets, by secret/key."""
    values = {}
    for s in _of_kind(docs, "Secret"):
        data = {k: base64.b64decode(v).decode() for k, v in (s.get("data") or {}).items()}
        data.update(s.get("stringData") or {})
        for key, value in data.items():
            if key != "username":
                values[f"{s['metadata']['name']}/{key}"] = value
    return values


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_document_is_valid_kubernetes(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {d["kind"] for d in docs}
    assert {"StatefulSet", "Deployment", "Service", "ConfigMap", "Secret", "Job",
            "NetworkPolicy", "Namespace"} <= kinds
    for d in docs:
        for version in K8S_VERSIONS:
            kubernetes_validate.validate(d, version, strict=True)


def test_the_schema_check_can_fail(rendered: dict) -> None:
    deployment = copy.deepcopy(_one(rendered["dev"], "Deployment", "key-value-store"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, K8S_VERSIONS[0], strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_referenced_configmap_and_secret_exists(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    have = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for where, pod in _pod_specs(docs):
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert ("ConfigMap", volume["configMap"]["name"]) in have, (where, volume)
            if "secret" in volume:
                assert ("Secret", volume["secret"]["secretName"]) in have, (where, volume)
        for c in _containers(pod):
            for env in c.get("env", []):
                ref = env.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    name = ref["secretKeyRef"]["name"]
                    assert ("Secret", name) in have, (where, env["name"])
                    secret = _one(docs, "Secret", name)
                    assert ref["secretKeyRef"]["key"] in secret["data"], (where, env["name"])
                if "configMapKeyRef" in ref:
                    assert ("ConfigMap", ref["configMapKeyRef"]["name"]) in have, (where, env)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_in_a_configmap_or_a_command_line(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    secrets = _secret_values(docs)
    assert len(secrets) >= 8, "admin, cookie, four broker users, two database roles"
    visible = [(f"ConfigMap/{c['metadata']['name']}/{k}", v)
               for c in _of_kind(docs, "ConfigMap") for k, v in (c.get("data") or {}).items()]
    for where, pod in _pod_specs(docs):
        for c in _containers(pod):
            words = list(c.get("command", [])) + list(c.get("args", []))
            probe = c.get("readinessProbe", {}).get("exec", {}).get("command", [])
            visible.append((f"{where} {c['name']} command line", " ".join(words + probe)))
            for env in c.get("env", []):
                visible.append((f"{where} {c['name']} env {env['name']}", str(env.get("value", ""))))
                if re.search(r"PASS|SECRET|COOKIE|TOKEN", env["name"]) and not env["name"].endswith("_FILE"):
                    assert "secretKeyRef" in env.get("valueFrom", {}), (
                        f"{where}: {env['name']} must come from a Secret")
            assert "--password" not in words, f"{where}: a password on a command line shows in ps"
    for secret, value in secrets.items():
        assert len(value) >= 8, f"{secret}: too short to be a credential"
        for where, text in visible:
            assert value not in text, f"the value of Secret {secret} appears in {where}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_runs_unprivileged_with_resource_limits(rendered: dict, overlay: str) -> None:
    for where, pod in _pod_specs(rendered[overlay]):
        security = pod.get("securityContext", {})
        assert security.get("runAsNonRoot") is True, where
        assert security.get("runAsUser", 0) != 0, where
        assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
        assert pod.get("automountServiceAccountToken") is False, where
        for c in _containers(pod):
            sc = c.get("securityContext", {})
            assert sc.get("allowPrivilegeEscalation") is False, (where, c["name"])
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], (where, c["name"])
            for part in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c.get("resources", {}).get(part, {})), (
                    where, c["name"], part)


def _dl_serve_containers(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict, dict]]:
    for where, pod in _pod_specs(docs):
        for c in pod["containers"]:
            if c.get("command", [None])[0] == "dl-serve":
                yield where, pod, c


def _mounted_file(docs: list[dict[str, Any]], pod: dict, container: dict, path: str) -> str:
    """The content of the ConfigMap key that `path` is inside the container."""
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" not in volume:
            continue
        data = _config_data(docs, volume["configMap"]["name"])
        if "subPath" in mount and mount["mountPath"] == path:
            return data[mount["subPath"]]
        if "subPath" not in mount and path.startswith(mount["mountPath"].rstrip("/") + "/"):
            return data[path[len(mount["mountPath"].rstrip("/")) + 1:]]
    raise AssertionError(f"{path} is not a file of a mounted ConfigMap")


_CHECKED: dict[tuple[str, str], subprocess.CompletedProcess] = {}


def _dl_serve_check(jobs: list[tuple[str, str, Path]]) -> list[subprocess.CompletedProcess]:
    """`dl-serve --check -c FILE` for each (mesh file text, service file text, folder), with the
    mesh text as ~/.dripline_mesh.yaml; at once, and each distinct pair once per session."""
    dl_serve = _tool("dl-serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DRIPLINE_", "POSTGRES_"))}
    running = {}
    for mesh, text, home in jobs:
        if (mesh, text) in _CHECKED or (mesh, text) in running:
            continue
        home.mkdir(parents=True)
        (home / ".dripline_mesh.yaml").write_text(mesh)
        (home / "service.yaml").write_text(text)
        running[(mesh, text)] = subprocess.Popen(
            [dl_serve, "--check", "-c", str(home / "service.yaml")], env={**env, "HOME": str(home)},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for key, process in running.items():
        out, _ = process.communicate(timeout=120)
        _CHECKED[key] = subprocess.CompletedProcess(process.args, process.returncode, out)
    return [_CHECKED[(mesh, text)] for mesh, text, _ in jobs]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_files_pass_dl_serve_check(rendered: dict, overlay: str, tmp_path: Path) -> None:
    """Each dl-serve container's `-c` file, as mounted from its ConfigMap, with the mounted
    ~/.dripline_mesh.yaml as the home's mesh file: valid for `dl-serve --check`; and its
    readiness probe pings the service that file defines."""
    docs = rendered[overlay]
    jobs, wheres, names, run_files = [], [], set(), set()
    for where, pod, c in _dl_serve_containers(docs):
        args = c["args"]
        config_path = args[args.index("-c") + 1]
        run_files.add(Path(config_path).name)
        mesh = _mounted_file(docs, pod, c, "/home/dripline/.dripline_mesh.yaml")
        text = _mounted_file(docs, pod, c, config_path)
        jobs.append((mesh, text, tmp_path / where.replace("/", "_")))
        wheres.append(where)
        name = yaml.safe_load(text)["name"]
        names.add(name)
        probe = c["readinessProbe"]["exec"]["command"]
        assert probe[0] == "dl-agent" and probe[probe.index("cmd") + 1] == name, (where, probe)
    for where, check in zip(wheres, _dl_serve_check(jobs)):
        assert check.returncode == 0, f"{where}: {check.stdout}"
        assert "is valid" in check.stdout, f"{where}: {check.stdout}"
    assert names == {"my_store", "sensor_data_logger"}
    services = _one(docs, "ConfigMap", _generated(docs, "dripline-services"))["data"]
    assert run_files == set(services), "every service file of the ConfigMap is run by a pod"


def _generated(docs: list[dict[str, Any]], prefix: str) -> str:
    names = [d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"
             and re.fullmatch(rf"{re.escape(prefix)}-[a-z0-9]{{10}}", d["metadata"]["name"])]
    assert len(names) == 1, f"ConfigMap {prefix}: {names}"
    return names[0]


def test_broker_size_and_queue_type_per_overlay(rendered: dict) -> None:
    expected = {"dev": (1, "classic"), "cluster": (3, "quorum")}
    for overlay, (replicas, queue_type) in expected.items():
        docs = rendered[overlay]
        assert _one(docs, "StatefulSet", "rabbitmq")["spec"]["replicas"] == replicas
        conf = _config_data(docs, _generated(docs, "rabbitmq-config"))
        conf_files = "\n".join(v for k, v in conf.items() if k.endswith(".conf"))
        settings = dict(re.findall(r"^([\w.]+)\s*=\s*(.+?)\s*$", conf_files, re.M))
        assert settings["default_queue_type"] == queue_type, overlay
        assert settings["cluster_formation.peer_discovery_backend"] == "k8s", overlay
        assert "rabbitmq_peer_discovery_k8s" in conf["enabled_plugins"], overlay
        assert "default_pass" not in settings, "the admin password comes from a Secret"
    cluster = rendered["cluster"]
    assert _one(cluster, "PodDisruptionBudget", "rabbitmq")["spec"]["maxUnavailable"] == 1
    broker = _one(cluster, "StatefulSet", "rabbitmq")["spec"]["template"]["spec"]["containers"][0]
    assert "await_online_quorum_plus_one" in " ".join(broker["lifecycle"]["preStop"]["exec"]["command"])


def test_broker_users_script_names_the_services_and_endpoints_of_the_service_files() -> None:
    """Under the topic permissions of setup-users.sh a service may bind only the endpoint names
    listed there: the script and the service files must agree, or a service is refused at start."""
    script = (K8S / "base" / "rabbitmq" / "setup-users.sh").read_text()
    roles = {}
    for line in script.splitlines():
        words = line.split()
        if words and words[0] in ("service_role", "logger_role"):
            skip = 3 if words[0] == "service_role" else 4
            roles[words[2]] = (words[0], set(words[skip:]))
    files = {}
    for path in (K8S / "base" / "config").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        if "name" in config:
            files[config["name"]] = {e["name"] for e in config.get("endpoints", [])}
    assert set(roles) == set(files)
    for name, (role, endpoints) in roles.items():
        assert endpoints == files[name], name
    logger = yaml.safe_load((K8S / "base" / "config" / "sensor-logger.yaml").read_text())
    assert roles[logger["name"]][0] == "logger_role" and logger["durable_queue"] is True


def test_shell_scripts_parse() -> None:
    scripts = sorted(DEPLOY.rglob("*.sh"))
    assert len(scripts) >= 4
    for script in scripts:
        run = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, f"{script}: {run.stderr}"


def test_database_table_is_the_first_mesh_table() -> None:
    deployed = (K8S / "base" / "postgres" / "10_numeric_data.sql").read_text()
    example = (ROOT / "examples" / "first-mesh" / "postgres_init.d" / "10_numeric_data.sql").read_text()
    assert deployed == example


def test_cluster_credential_files_are_ignored_by_git() -> None:
    git = shutil.which("git")
    assert git is not None
    for name in ("broker-operator.env", "rabbitmq-erlang-cookie.env"):
        path = K8S / "overlays" / "cluster" / "secrets" / name
        run = subprocess.run([git, "-C", str(ROOT), "check-ignore", "-q", str(path)], timeout=30)
        assert run.returncode == 0, f"{path} would be committed"


# --------------------------------------------------------- broker users: script and security page

def _doc_rabbitmqctl_commands() -> list[list[str]]:
    """The `rabbitmqctl set_permissions` / `set_topic_permissions` commands of docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text().replace("\\\n", " ")
    return [shlex.split(line.strip()[2:]) for line in text.splitlines()
            if line.strip().startswith("$ rabbitmqctl set_")]


def test_users_script_applies_the_recipes_of_the_security_page(tmp_path: Path) -> None:
    """setup-users.sh run against a stand-in rabbitmqctl that records its calls: it sets exactly
    the permissions docs/security.md gives, and passwords go to standard input, never argv."""
    log = tmp_path / "calls.jsonl"
    shim = tmp_path / "bin" / "rabbitmqctl"
    shim.parent.mkdir()
    shim.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "stdin = sys.stdin.read() if {'add_user', 'change_password'} & set(sys.argv) else None\n"
        "with open(os.environ['CALLS'], 'a') as f:\n"
        "    f.write(json.dumps({'argv': sys.argv[1:], 'stdin': stdin}) + '\\n')\n")
    shim.chmod(0o755)
    secrets = tmp_path / "secrets"
    passwords = {}
    for secret, user in (("broker-my-store", "my_store"), ("broker-sensor-logger", "sensor_data_logger"),
                         ("broker-operator", "operator"), ("broker-monitor", "monitor")):
        (secrets / secret).mkdir(parents=True)
        (secrets / secret / "username").write_text(user)
        passwords[user] = f"pw of {user} 'with' $pecial chars"
        (secrets / secret / "password").write_text(passwords[user])
    env = {**os.environ, "PATH": f"{shim.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "CALLS": str(log), "SECRETS": str(secrets), "RABBITMQ_NODE": "rabbit@test",
           "RABBITMQCTL_OPTS": "--longnames"}
    run = subprocess.run(["sh", str(K8S / "base" / "rabbitmq" / "setup-users.sh")], env=env,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    applied = []
    for call in calls:
        argv = call["argv"]
        assert argv[:4] == ["--longnames", "--node", "rabbit@test", "--quiet"], argv
        command = argv[4:]
        for password in passwords.values():
            assert password not in " ".join(argv), "a password on rabbitmqctl's command line"
        if command[0] == "add_user":
            assert call["stdin"] == passwords[command[1]]
        if command[0] in ("set_permissions", "set_topic_permissions"):
            assert command[1:3] == ["--vhost", "/"]
            applied.append([command[0], "-p", "/", *command[3:]])
    assert {c["argv"][4] for c in calls} >= {"await_startup", "list_users", "add_user"}
    assert len(applied) == 9, "four users' permissions, five topic permissions"
    assert sorted(["rabbitmqctl", *c] for c in applied) == sorted(_doc_rabbitmqctl_commands())
