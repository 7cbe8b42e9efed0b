"""Static checks of the automation: actionlint, hadolint, shellcheck, yamllint, `docker compose config`,
and the workflows' shape (triggers, job chain, permissions, pinned actions, secrets only from secrets)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, VENV_BIN

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
SHELL_SCRIPTS = sorted((REPO_ROOT / "deploy").glob("*.sh"))
YAML_FILES = [
    *sorted(WORKFLOWS.glob("*.yml")),
    REPO_ROOT / "docker-compose.yml",
    REPO_ROOT / "deploy" / "docker-compose.yml",
    REPO_ROOT / "dvc.yaml",
    REPO_ROOT / "params.yaml",
]


def tool(name: str) -> str:
    path = VENV_BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not installed: `make setup-dev` installs requirements-dev.txt")
    return str(path)


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)


def workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def test_actionlint_passes_on_the_workflows() -> None:
    # actionlint also runs shellcheck on every `run:` script when shellcheck is on PATH.
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": str(REPO_ROOT)}
    result = run(tool("actionlint"), *map(str, sorted(WORKFLOWS.glob("*.yml"))), env=env)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ needs.nope.outputs.x }}\n"
    )
    result = run(tool("actionlint"), str(broken))
    assert result.returncode != 0 and "nope" in result.stdout


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "deploy/mlflow/Dockerfile"])
def test_hadolint_passes_on_the_dockerfiles(dockerfile: str) -> None:
    result = run(tool("hadolint"), str(REPO_ROOT / dockerfile))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_passes(script: Path) -> None:
    result = run(tool("shellcheck"), "--severity=style", str(script))
    assert result.returncode == 0, result.stdout + result.stderr
    assert script.stat().st_mode & 0o111, f"{script.name} is not executable"


def test_shell_scripts_are_all_checked() -> None:
    names = {path.name for path in SHELL_SCRIPTS}
    assert {"deploy.sh", "require-env.sh", "remote-deploy.sh", "ci-local.sh", "local-docker.sh", "pipeline.sh"} <= names


def test_yamllint_passes() -> None:
    result = run(tool("yamllint"), "--config-file", str(REPO_ROOT / ".yamllint"), *map(str, YAML_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_host_compose_file_resolves_with_the_image_from_the_environment() -> None:
    env = {"PATH": "/usr/bin:/bin", "SPAMFILTER_IMAGE": "someone/spamfilter-api:abc123"}
    compose = REPO_ROOT / "deploy" / "docker-compose.yml"
    result = run(
        tool("docker-compose"), "--project-directory", str(compose.parent), "-f", str(compose), "config", env=env
    )
    assert result.returncode == 0 and "error" not in result.stderr.lower(), result.stderr
    api = yaml.safe_load(result.stdout)["services"]["api"]
    assert api["image"] == "someone/spamfilter-api:abc123"
    assert api["restart"] == "unless-stopped"
    assert "/ready" in " ".join(api["healthcheck"]["test"])
    assert api["logging"]["driver"] == "json-file"
    assert {"max-size", "max-file"} <= api["logging"]["options"].keys()
    assert api["ports"][0]["target"] == 8000


def test_host_compose_file_refuses_to_resolve_without_the_image() -> None:
    compose = REPO_ROOT / "deploy" / "docker-compose.yml"
    result = run(tool("docker-compose"), "-f", str(compose), "config", env={"PATH": "/usr/bin:/bin"})
    # This compose CLI exits 0 even when interpolation fails: the message and the empty output tell.
    assert result.stdout.strip() == ""
    assert "SPAMFILTER_IMAGE" in result.stderr


def test_stack_compose_file_resolves() -> None:
    env = {"PATH": "/usr/bin:/bin", "MINIO_ROOT_USER": "u", "MINIO_ROOT_PASSWORD": "p", "POSTGRES_PASSWORD": "p"}
    result = run(tool("docker-compose"), "-f", str(REPO_ROOT / "docker-compose.yml"), "config", env=env)
    assert result.returncode == 0 and result.stdout.strip() and "error" not in result.stderr.lower(), result.stderr


def test_pipeline_workflow_triggers_chain_and_permissions() -> None:
    flow = workflow("pipeline.yml")
    triggers = flow[True] if True in flow else flow["on"]  # YAML 1.1 reads `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["schedule"] == [{"cron": "0 0 * * *"}]
    assert triggers["workflow_dispatch"]["inputs"]["force_retrain"]["type"] == "boolean"
    assert flow["permissions"] == {"contents": "read"}
    assert flow["concurrency"]["group"] and flow["concurrency"]["cancel-in-progress"] is False
    jobs = flow["jobs"]
    assert list(jobs) == ["monitor", "retrain", "build-push", "deploy"]
    assert "retrain_needed" in jobs["monitor"]["outputs"]
    assert jobs["retrain"]["needs"] == "monitor" and "retrain_needed == 'true'" in jobs["retrain"]["if"]
    assert "deploy_needed" in jobs["retrain"]["outputs"]
    assert "deploy_needed == 'true'" in jobs["build-push"]["if"]
    assert set(jobs["deploy"]["needs"]) == {"retrain", "build-push"}
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    # Every channel goes through the same per-channel steps that `make ci-local` runs.
    assert "deploy/pipeline.sh monitor" in runs["monitor"]
    assert "deploy/pipeline.sh retrain" in runs["retrain"] and "deploy/pipeline.sh record" in runs["retrain"]
    assert "deploy/pipeline.sh export" in runs["build-push"]
    monitor_step = next(step for step in jobs["monitor"]["steps"] if step.get("id") == "monitor")
    assert (
        "inputs.force_retrain" in monitor_step["env"]["FORCE_RETRAIN"] and monitor_step["env"]["MONITOR_PULL"] == "true"
    )
    assert "{channel}" in monitor_step["env"]["MONITOR_ARGS"]
    # One channel's failure does not cancel the others' chain: the next jobs run unless the run was cancelled.
    for name in ("retrain", "build-push", "deploy"):
        assert jobs[name]["if"].startswith("${{ !cancelled() &&"), name
    assert "needs.build-push.result == 'success'" in jobs["deploy"]["if"]
    deploy_steps = runs["deploy"]
    deploy_at = deploy_steps.index("make deploy-ec2")
    promote_at = deploy_steps.index("deploy/pipeline.sh promote")
    assert deploy_at < promote_at, "promotion only after the deploy's health check passed"
    assert "if" not in jobs["deploy"]["steps"][promote_at], "promote runs only when every step before succeeded"
    assert "promote_channels" in jobs["deploy"]["env"]["PROMOTE_CHANNELS"]
    assert "expected_versions" in jobs["deploy"]["env"]["EXPECTED_VERSIONS"]
    build = next(step for step in jobs["build-push"]["steps"] if step.get("uses", "").startswith("docker/build-push"))
    tags = build["with"]["tags"]
    assert "github.sha" in tags and "models_tag" in tags and ":latest" in tags


def test_only_the_retrain_job_may_write_and_it_opens_a_pull_request_with_cml() -> None:
    jobs = workflow("pipeline.yml")["jobs"]
    writers = {name: job["permissions"] for name, job in jobs.items() if "permissions" in job}
    assert writers == {"retrain": {"contents": "write", "pull-requests": "write"}}
    steps = jobs["retrain"]["steps"]
    cml = next(i for i, step in enumerate(steps) if step.get("uses") == "iterative/setup-cml@v2")
    record = next(i for i, step in enumerate(steps) if step.get("run") == "deploy/pipeline.sh record")
    assert cml < record
    env = steps[record]["env"]
    assert env["RECORD_WITH"] == "cml" and env["REPO_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    assert "trained_channels" in env["RECORD_CHANNELS"] and "trained_channels" in steps[record]["if"]
    script = (REPO_ROOT / "deploy" / "pipeline.sh").read_text(encoding="utf-8")
    assert 'cml pr create --title "$title" --body "$body" --message "$title" "${paths[@]}"' in script
    upload = next(step for step in steps if step.get("uses") == "actions/upload-artifact@v4")
    assert "dvc.lock" in upload["with"]["path"] and "reports/*/gate.json" in upload["with"]["path"]


def test_each_job_first_checks_its_secrets() -> None:
    for name in ("pipeline.yml", "pr-report.yml"):
        for job_name, job in workflow(name)["jobs"].items():
            steps = job["steps"]
            first_run = next(step for step in steps if "run" in step)
            assert first_run["run"].startswith("deploy/require-env.sh"), f"{name}:{job_name}"
            secrets = set(re.findall(r"secrets\.([A-Z0-9_]+)", yaml.safe_dump(job.get("env", {}))))
            secrets.discard("PREDICTION_LOG_URL")  # optional: the monitor reads data/new/sms without it
            secrets.discard("EC2_KNOWN_HOSTS")  # optional: pins the host key
            assert secrets <= set(first_run["run"].split()), f"{name}:{job_name} does not check {secrets}"


def test_workflows_pin_action_versions_and_take_credentials_only_from_secrets() -> None:
    for path in WORKFLOWS.glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        for action in re.findall(r"uses:\s*(\S+)", text):
            assert re.search(r"@v\d+$", action), f"{path.name}: {action} is not pinned to a major version"
        for line in text.splitlines():
            if re.search(r"(TOKEN|PASSWORD|SECRET|KEY)\w*:\s", line) and "${{" not in line:
                pytest.fail(f"{path.name}: credential not from secrets: {line.strip()}")


def test_pr_report_posts_one_updated_comment_with_cml() -> None:
    flow = workflow("pr-report.yml")
    assert flow["permissions"] == {"contents": "read", "pull-requests": "write"}
    steps = flow["jobs"]["report"]["steps"]
    assert any(step.get("uses") == "iterative/setup-cml@v2" for step in steps)
    runs = [step.get("run", "") for step in steps]
    assert any(re.match(r"make .*\brepro\b", r) for r in runs) and any("make report" in r for r in runs)
    assert any(r.startswith("cml comment update") and "report.md" in r for r in runs)
    # Every channel's champion, judged in the report of every channel.
    assert "make export-all BUNDLE=champions" in runs
    assert any("make report CHAMPION_BUNDLES=champions" in r for r in runs)
    pipeline = next(step for step in steps if re.match(r"make .*\brepro\b", step.get("run", "")))
    assert pipeline["env"]["MLFLOW_TRACKING_URI"].startswith("sqlite:"), "a PR must not register in the team store"
