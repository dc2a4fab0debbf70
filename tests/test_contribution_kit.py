"""The contribution kit: the GitHub workflow and Dependabot configuration pass actionlint and
their published schemas (they cannot run here), pre-commit checks what `make lint` checks and
both agree on the tree and on a broken file, the version is written once and shown everywhere,
and the contributor documents point at things that exist."""

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command

from config.version import __version__

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def run(argv: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_workflow_passes_actionlint_and_the_workflow_schema():
    lint = run([str(BIN / "actionlint"), str(WORKFLOW)])
    assert lint.returncode == 0, lint.stdout + lint.stderr
    schema = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)])
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_a_broken_workflow_is_caught(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    text = WORKFLOW.read_text().replace("${{ github.ref }}", "${{ github.no_such_context }}", 1)
    broken.write_text(text.replace("runs-on: ubuntu-24.04", "runs_on: ubuntu-24.04", 1))
    lint = run([str(BIN / "actionlint"), str(broken)], cwd=tmp_path)
    assert lint.returncode != 0 and "no_such_context" in lint.stdout and "runs-on" in lint.stdout
    schema = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)])
    assert schema.returncode != 0


def test_workflow_runs_make_test_and_publishes_the_image_only_from_a_tested_tag():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "pull_request" in triggers and "v*.*.*" in triggers["push"]["tags"]
    test = workflow["jobs"]["test"]
    assert test["container"]["image"].startswith("python:3.11-bookworm")  # Debian, as .ci/services.sh expects
    steps = [step.get("run", "") for step in test["steps"]]
    assert any(step.strip() == "make test" for step in steps)
    assert any(step.get("uses", "").startswith("actions/cache@") for step in test["steps"])
    image = workflow["jobs"]["image"]
    assert image["needs"] == "test" and image["if"] == "startsWith(github.ref, 'refs/tags/v')"
    build = next(step for step in image["steps"] if step.get("uses", "").startswith("docker/build-push-action@"))
    assert build["with"]["file"] == "deploy/Dockerfile" and build["with"]["push"] is True
    assert (ROOT / build["with"]["file"]).exists()
    assert "config/version.py" in " ".join(step.get("run", "") for step in image["steps"])


def test_dependabot_covers_pip_actions_and_the_docker_base_image():
    path = ROOT / ".github" / "dependabot.yml"
    schema = run([str(BIN / "check-jsonschema"), "--builtin-schema", "vendor.dependabot", str(path)])
    assert schema.returncode == 0, schema.stdout + schema.stderr
    updates = {u["package-ecosystem"]: u["directory"] for u in yaml.safe_load(path.read_text())["updates"]}
    assert updates == {"pip": "/", "github-actions": "/", "docker": "/deploy"}
    assert (ROOT / "deploy" / "Dockerfile").exists() and (ROOT / "requirements.txt").exists()
    assert not (ROOT / "package.json").exists()  # no npm packages: the front end is vendored


def lint_commands() -> list[list[str]]:
    """The commands of the Makefile's lint recipe, as make runs them."""
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\nlint:", 1)[1].split("\n\n", 1)[0]
    return [line.strip().replace("$(VENV)", ".venv").split() for line in recipe.splitlines()[1:]]


def test_pre_commit_runs_each_make_lint_check():
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"]
    assert [repo["repo"] for repo in hooks] == ["local"]  # nothing is fetched when hooks run
    entries = [hook["entry"].split() for hook in hooks[0]["hooks"]]
    for command in lint_commands():
        tool_and_flags = [part for part in command if part != "."]
        assert any(entry[: len(tool_and_flags)] == tool_and_flags for entry in entries), command
    for entry in entries:
        assert (ROOT / entry[0]).exists() or shutil.which(entry[0]), entry[0]


@pytest.mark.slow
def test_pre_commit_and_make_lint_agree_on_the_tree_and_on_a_broken_file(tmp_path):
    pre_commit = str(BIN / "pre-commit")
    env_home = {"PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home")}
    lint = subprocess.run(["make", "--no-print-directory", "lint"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    hooks = subprocess.run([pre_commit, "run", "--all-files"], cwd=ROOT, capture_output=True, text=True,
                           timeout=600, env={**os.environ, **env_home})  # fmt: skip
    assert lint.returncode == 0, lint.stdout[-2000:] + lint.stderr[-2000:]
    assert hooks.returncode == 0, hooks.stdout[-3000:]

    # A small repository with our settings and one bad file: both refuse it, for the same reason.
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("pyproject.toml", ".pre-commit-config.yaml"):
        shutil.copy(ROOT / name, repo / name)
    (repo / ".venv").symlink_to(BIN.parent)
    (repo / "bad.py").write_text("import os\n\n\ndef f( x ):\n    return x\n")
    run(["git", "init", "-q"], cwd=repo)
    run(["git", "add", "bad.py", "pyproject.toml", ".pre-commit-config.yaml"], cwd=repo)
    ruff = next(command for command in lint_commands() if command[-2:] == ["check", "."])
    make_says = run(ruff, cwd=repo)
    hooks_say = subprocess.run([pre_commit, "run", "ruff-check", "--all-files"], cwd=repo, capture_output=True,
                               text=True, timeout=300, env={**os.environ, **env_home})  # fmt: skip
    assert make_says.returncode != 0 and hooks_say.returncode != 0
    assert "F401" in make_says.stdout and "F401" in hooks_say.stdout
    formatted = subprocess.run([pre_commit, "run", "ruff-format", "--all-files"], cwd=repo, capture_output=True,
                               text=True, timeout=300, env={**os.environ, **env_home})  # fmt: skip
    assert formatted.returncode != 0 and "bad.py" in formatted.stdout


def test_the_version_is_written_once_and_shown_everywhere(client, admin_user):
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "config.version.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__)
    assert f"## [{__version__}] - " in (ROOT / "CHANGELOG.md").read_text()

    assert client.get("/healthz").json() == {"status": "ok", "version": __version__}
    client.force_login(admin_user)
    assert f"Concierge {__version__}</p>" in client.get("/admin/").content.decode()
    assert client.get("/api/schema/?format=json").json()["info"]["version"] == __version__


def test_manage_py_version_prints_it(capsys):
    call_command("version")
    assert capsys.readouterr().out.strip() == __version__


def test_licence_and_contributor_documents():
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
    assert "MIT licence (`LICENSE`)" in (ROOT / "README.md").read_text()
    for name in ("CONTRIBUTING.md", "SECURITY.md", "CODE_OF_CONDUCT.md", ".github/PULL_REQUEST_TEMPLATE.md",
                 ".github/ISSUE_TEMPLATE/bug_report.md", ".github/ISSUE_TEMPLATE/feature_request.md"):  # fmt: skip
        assert (ROOT / name).read_text().strip(), name
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    # Every path, Makefile target and script the guide names exists, so the guide stays true.
    for path in set(re.findall(r"`((?:tests|bench|config|deploy|\.ci|\.github)/[\w./-]+)`", contributing)):
        assert (ROOT / path.rstrip("/")).exists(), path
    for target in re.findall(r"^make (\w[\w-]*)", contributing, re.MULTILINE):
        assert re.search(rf"^{target}:", (ROOT / "Makefile").read_text(), re.MULTILINE), target
    for path in re.findall(r"bash (\.ci/[\w.]+) (tests/[\w/.]+)?", contributing):
        assert all((ROOT / p).exists() for p in path if p), path
