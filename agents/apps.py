from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Assistant"

    def warm(self) -> None:
        """The LLM client (when one is configured) and the sentiment lexicon."""
        from agents import llm, sentiment

        llm.warm()
        sentiment.warm()
