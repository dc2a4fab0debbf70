"""The layout the README promises: apps import each other one way only, and no module grows
past the size a reader can hold."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APPS = ["tenancy", "knowledge", "tickets", "monitoring", "agents", "demo"]
# Each app may import only the apps below it in this order (and config, the project's wiring).
LAYERS = {app: set(APPS[:i]) for i, app in enumerate(APPS)}


def _sources(app: str) -> list[Path]:
    return [p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]


def _imported_apps(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
    return found & set(APPS)


def test_apps_import_downward_only():
    wrong = [
        f"{path.relative_to(ROOT)} imports {other}"
        for app in APPS
        for path in _sources(app)
        for other in _imported_apps(path) - {app}
        if other not in LAYERS[app]
    ]
    assert wrong == []


def test_config_wires_apps_but_no_app_module_is_imported_by_settings_helpers():
    # config/ is the composition root (URLs, ASGI); its shared helpers must not import apps.
    shared = ["changes.py", "clients.py", "errors.py", "warmup.py", "version.py", "channel_layer.py", "middleware.py"]
    wrong = [name for name in shared if _imported_apps(ROOT / "config" / name)]
    assert wrong == []


def test_no_module_passes_500_lines():
    long = []
    for app in [*APPS, "config"]:
        for path in _sources(app):
            lines = len(path.read_text().splitlines())
            if lines > 500:
                long.append(f"{path.relative_to(ROOT)}: {lines}")
    assert long == []
