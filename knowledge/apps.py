from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def warm(self) -> None:
        """The embedding models, the vector store and the keyword backend, made once and used once."""
        from knowledge import keyword, vectors

        keyword.warm()
        vectors.warm()
