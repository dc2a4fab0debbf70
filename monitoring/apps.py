from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"

    def ready(self) -> None:
        from monitoring import profiling, signals  # noqa: F401  (connect Celery and database signals)
        from monitoring.logs import install_record_factory

        install_record_factory()
