from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge base"

    def warm_shared(self) -> None:
        """Read-only and thread-free, so loaded in the gunicorn master before it forks: the
        multilingual encoder's weights and jieba's dictionary (Chinese keyword search)."""
        from knowledge import embeddings, keyword

        embeddings.embed_multilingual(["预热"])
        keyword.tokenize("预热")

    def warm(self) -> None:
        """The embedding models, the vector store and the keyword backend, made once and used once."""
        from knowledge import keyword, vectors

        keyword.warm()
        vectors.warm()
