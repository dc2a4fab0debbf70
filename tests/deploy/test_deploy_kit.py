"""The deploy kit, checked without a Docker engine: every file parses, Kubernetes manifests
validate against the API schemas, nginx and systemd accept their files, alert rules and the
dashboard only use metrics we export, and `check --deploy` is clean in production settings."""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
REQUIRE_TOOLS = os.environ.get("CONCIERGE_REQUIRE_BROWSER") == "1"  # set by `make test`


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in load_all(path)]


def exported_metric_names() -> set[str]:
    """Every metric family /metrics can serve, with the suffixes Prometheus derives."""
    from monitoring.metrics import metrics_render

    body, _ = metrics_render()
    names = set()
    for line in body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "counter":
                names.add(f"{name}_total")
            if kind == "histogram":
                names.update(f"{name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def metric_names_in(expr: str) -> set[str]:
    return set(re.findall(r"\b(concierge_[a-z_]+)", expr))


def test_every_yaml_and_json_file_parses():
    files = list(DEPLOY.rglob("*.yml")) + list(DEPLOY.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        assert load_all(path), path
    json.loads((DEPLOY / "grafana" / "dashboards" / "concierge.json").read_text())


def test_kubernetes_manifests_validate_and_fit_together():
    docs = manifests()
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    by_kind: dict[str, dict[str, dict]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    assert {"concierge-web", "concierge-worker", "concierge-beat"} <= set(by_kind["Deployment"])
    web = by_kind["Deployment"]["concierge-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert "uvicorn" not in " ".join(web["command"]) or "gunicorn" in web["command"][0]
    beat = by_kind["Deployment"]["concierge-beat"]["spec"]
    assert beat["replicas"] == 1 and beat["strategy"]["type"] == "Recreate"
    service = by_kind["Service"]["concierge-web"]
    pod_labels = by_kind["Deployment"]["concierge-web"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert by_kind["HorizontalPodAutoscaler"]["concierge-web"]["spec"]["scaleTargetRef"]["name"] == "concierge-web"
    ingress = by_kind["Ingress"]["concierge"]
    assert int(ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"]
    assert backend == "concierge-web"
    for deployment in by_kind["Deployment"].values():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        env_from = {next(iter(ref.values()))["name"] for ref in pod["containers"][0]["envFrom"]}
        assert env_from == {"concierge-config", "concierge-secrets"}
    assert set(by_kind["ConfigMap"]) == {"concierge-config"} and set(by_kind["Secret"]) == {"concierge-secrets"}


def test_every_process_shares_one_chroma_server():
    """Web and worker processes must read and write one vector store: a Chroma server with a
    persistent volume, never one folder opened embedded by several containers."""
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    chroma = services["chroma"]
    command = chroma["command"]
    assert command[:2] == ["chroma", "run"] and command[command.index("--port") + 1] == "8000"
    path = command[command.index("--path") + 1]
    assert any(v.split(":")[1] == path and v.split(":")[0] in compose["volumes"] for v in chroma["volumes"])
    assert "api/v2/heartbeat" in " ".join(chroma["healthcheck"]["test"])
    for role in ("web", "worker", "beat", "migrate"):
        assert services[role]["environment"]["CHROMA_HOST"] == "chroma:8000", role
        assert "CHROMA_PATH" not in services[role]["environment"]
        assert not any(v.split(":")[0] == "chroma" for v in services[role].get("volumes", [])), role
    for role in ("web", "worker"):
        assert services[role]["depends_on"]["chroma"]["condition"] == "service_healthy"

    by_kind: dict[str, dict[str, dict]] = {}
    for doc in manifests():
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    host, port = by_kind["ConfigMap"]["concierge-config"]["data"]["CHROMA_HOST"].split(":")
    service = by_kind["Service"][host]
    assert int(port) in {p["port"] for p in service["spec"]["ports"]}
    stateful = by_kind["StatefulSet"][host]["spec"]
    assert stateful["replicas"] == 1 and stateful["serviceName"] == host
    assert service["spec"]["selector"].items() <= stateful["template"]["metadata"]["labels"].items()
    container = stateful["template"]["spec"]["containers"][0]
    data_path = container["command"][container["command"].index("--path") + 1]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts[data_path] in {t["metadata"]["name"] for t in stateful["volumeClaimTemplates"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/api/v2/heartbeat"
    assert stateful["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_a_broken_manifest_is_caught():
    bad = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"}, "spec": {"replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, "1.30", strict=True)


def test_compose_runs_every_role_with_its_dependencies():
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    expected = {
        "web",
        "worker",
        "beat",
        "migrate",
        "postgres",
        "redis",
        "elasticsearch",
        "nginx",
        "prometheus",
        "grafana",
    }
    assert expected <= set(services)
    assert services["web"]["command"][:3] == ["gunicorn", "-c", "deploy/gunicorn.conf.py"]
    assert "worker" in services["worker"]["command"] and "beat" in services["beat"]["command"]
    for role in ("web", "worker", "beat"):
        assert services[role]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[role]["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert services["nginx"]["depends_on"]["web"]["condition"] == "service_healthy"
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in compose["volumes"], f"{name} uses undeclared volume {source}"
    assert (DEPLOY / services["web"]["env_file"]).with_suffix(".env.example").exists()


def test_dockerfile_is_multi_stage_non_root_with_healthcheck():
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\w+)", text, flags=re.M)
    assert stages == ["build", "runtime"]
    runtime = text.split("AS runtime", 1)[1]
    user = re.findall(r"^USER\s+(\S+)", runtime, flags=re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*healthz", runtime, flags=re.M | re.S)
    assert "gunicorn" in re.search(r"^CMD (.*)$", runtime, flags=re.M).group(1)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for name in source.split():
            if not name.startswith("--") and name != ".":
                assert (ROOT / name).exists(), name
    assert "curl" not in runtime  # nothing fetched at run time


def test_gunicorn_config_loads_with_uvicorn_workers():
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--check-config", "--print-config", "-c", "deploy/gunicorn.conf.py",
         "config.asgi:application"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert re.search(r"worker_class\s+=\s+config.workers.WebWorker", result.stdout)
    from uvicorn_worker import UvicornWorker

    from config.workers import WebWorker

    # uvicorn underneath, with chat frames sent uncompressed
    assert issubclass(WebWorker, UvicornWorker) and WebWorker.CONFIG_KWARGS["ws_per_message_deflate"] is False


MASTER_PROBE = """
import contextvars, json, sys, threading
import django
django.setup()
from asgiref.local import _Storage
from config.warmup import SHARED_IMPORTS, warm_shared
before = sum(isinstance(value, _Storage) for value in contextvars.copy_context().values())
warm_shared()
import config.asgi
from django.conf import settings
from agents import language
from knowledge import embeddings, keyword
identifier = language._identifier()
print(json.dumps({
    "multilingual": embeddings.get_multilingual_embedder.made(),
    "language": language._identifier.made(),
    "segmenter": keyword._jieba.cache_info().currsize == 1 and "rjieba" in sys.modules,
    "lexicons": sorted(m for m in ("pysenti", "vaderSentiment") if m in sys.modules),
    "unused": sorted(m for m in ("boto3", "onnx", "jieba", "sklearn") if m in sys.modules),
    "english_model_prepared": embeddings.get_embedder().model.startswith(str(settings.MODEL_DIR)),
    "shared_imports": all(module in sys.modules for module in SHARED_IMPORTS),
    "views": all(m in sys.modules for m in ("tickets.api", "rest_framework.viewsets", "drf_spectacular.views")),
    "threads": threading.active_count(),
    "context_locals": sum(isinstance(value, _Storage) for value in contextvars.copy_context().values()) - before,
    "language_model_trimmed": identifier._full_model[0] is identifier.nb_ptc
    and identifier.nb_ptc.shape[1] == len(identifier._full_model[2]) < 40,
}))
"""


def test_the_master_loads_the_shared_models_and_no_unused_lexicon():
    """gunicorn's master (preload) loads what its forked workers then share; the lexicons no
    message is scored with (a model ships for English and Chinese) are not loaded at all, nor are
    boto3 (Amazon SES's webhook imports it on its first post), onnx (it prepares the English
    model's serving copy in a child process), Python jieba (rjieba cuts Chinese words; jieba
    stays installed for pysenti's lexicon only) and scikit-learn (it trains; agents.text_features
    scores). The language identifier keeps only the languages
    it weighs, not all 97."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "ORT_DISABLE_TELEMETRY": "1"}
    result = subprocess.run([sys.executable, "-c", MASTER_PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=180)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    # The modules workers import as they warm are loaded here too, and none of it started a thread
    # (a thread in the master before the fork would be missing, mid-state, in every worker). Nor
    # did it leave asgiref Locals in the master's context, which every worker's task would inherit
    # and asgiref would copy on every hop to a thread (49 when the URLs were built in it).
    assert loaded == {"multilingual": 1, "language": 1, "segmenter": True, "lexicons": [], "unused": [],
                      "english_model_prepared": True, "shared_imports": True, "views": True, "threads": 1,
                      "context_locals": 0, "language_model_trimmed": True}  # fmt: skip
    config = (DEPLOY / "gunicorn.conf.py").read_text()
    assert "warm_shared()" in config and "gc.freeze()" in config and "release_free_memory()" in config


TRIM_PROBE = """
import json
from config.warmup import release_free_memory

def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

blocks = [bytes(1000) for _ in range(150_000)]  # ~150 MB from the C heap, too small to be mapped alone
kept = blocks[::64]  # one block in 64 stays: the heap cannot shrink from its top
del blocks
before = rss()
released = release_free_memory()
print(json.dumps({"released": released, "before": before, "after": rss(), "kept": len(kept)}))
"""


def test_freed_heap_memory_goes_back_to_the_system():
    """What loading freed stays in glibc's heap (and in every forked worker) until it is trimmed:
    the master trims after warm_shared, a worker after it warms."""
    result = subprocess.run([sys.executable, "-c", TRIM_PROBE], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    probe = json.loads(result.stdout.strip().splitlines()[-1])
    assert probe["released"] is True
    assert probe["before"] - probe["after"] > 80, probe  # of ~145 MB freed, in pages between the kept blocks


def test_nginx_accepts_the_config_and_upgrades_websockets(tmp_path):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        if REQUIRE_TOOLS:
            pytest.fail("nginx is not installed; .ci/services.sh installs nginx-light")
        pytest.skip("nginx not installed")
    site = (DEPLOY / "nginx" / "concierge.conf").read_text()
    assert re.search(r"location /ws/ \{[^}]*Upgrade \$http_upgrade", site)
    # Outside compose the upstream host "web" does not resolve; nginx -t checks the rest.
    (tmp_path / "site.conf").write_text(site.replace("server web:8000", "server 127.0.0.1:8000"))
    temp = " ".join(
        f"{kind}_temp_path {tmp_path}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;\n"
        f"events {{}}\nhttp {{ access_log off; {temp} include {tmp_path}/site.conf; }}\n"
    )
    result = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 0 and "test is successful" in result.stderr, result.stderr
    (tmp_path / "site.conf").write_text(
        site.replace("server web:8000", "server 127.0.0.1:8000").replace("proxy_read_timeout", "proxy_read_timeoot", 1)
    )
    broken = subprocess.run([nginx, "-t", "-c", str(tmp_path / "nginx.conf"), "-p", str(tmp_path)],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert broken.returncode != 0


def test_systemd_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze not available")
    venv = Path(sys.executable).parent.parent
    for unit in (DEPLOY / "systemd").glob("*.service"):
        # The units name /opt/concierge/.venv; point them at this checkout's venv to verify.
        (tmp_path / unit.name).write_text(unit.read_text().replace("/opt/concierge/.venv", str(venv)))
    units = sorted(str(path) for path in tmp_path.glob("*.service"))
    assert len(units) == 4
    result = subprocess.run([analyze, "verify", *units], capture_output=True, text=True, timeout=60)
    problems = [line for line in result.stderr.splitlines() if "concierge-" in line]
    assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.django_db
def test_alert_rules_are_complete_and_use_real_metrics():
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"][0]["rules"]
    names = {rule["alert"] for rule in rules}
    assert {
        "ConciergeHighErrorRate",
        "ConciergeSlowResponses",
        "ConciergeWebsocketSaturation",
        "ConciergeSlaBreaches",
        "ConciergeCeleryBacklog",
        "ConciergeWorkerDown",
        "ConciergeWebDown",
    } <= names
    exported = exported_metric_names()
    for rule in rules:
        assert rule["expr"].strip() and re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("page", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert metric_names_in(rule["expr"]) <= exported, (rule["alert"], metric_names_in(rule["expr"]) - exported)
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert scrape["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert scrape["scrape_configs"][0]["job_name"] == "concierge-web"  # the WebDown alert's job


@pytest.mark.django_db
def test_dashboard_panels_query_real_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "concierge.json").read_text())
    exported = exported_metric_names()
    used = set()
    for panel in dashboard["panels"]:
        assert panel["title"] and panel["targets"], panel
        for target in panel["targets"]:
            names = metric_names_in(target["expr"])
            assert names and names <= exported, (panel["title"], names - exported)
            used |= names
    assert {"concierge_pipeline_stage_seconds_bucket", "concierge_sla_tickets", "concierge_celery_queue_depth"} <= used


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    env = {
        **os.environ,
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "support.example.com",
        "FIELD_ENCRYPTION_KEY": "ZPupE7_rWmji1V5qsLMy4paQQI2i3DmiyR31bmfjz7A=",
        "CONCIERGE_VAR_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    insecure = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env={**env, "SECURE_SSL_REDIRECT": "false"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert insecure.returncode != 0 and "SECURE_SSL_REDIRECT" in insecure.stdout + insecure.stderr
