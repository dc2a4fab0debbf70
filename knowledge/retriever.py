"""The knowledge base as a LangChain retriever, for the dialog agent's runnable chain.
It runs the same hybrid search as the API; each Document carries its citation in metadata."""

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from knowledge.search import kb_search


class KnowledgeRetriever(BaseRetriever):
    organization_id: int
    k: int = 5

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        result = kb_search(organization_id=self.organization_id, query=query, k=self.k)
        return [
            Document(
                page_content=hit.text,
                metadata={
                    "article_id": hit.article_id,
                    "chunk_id": hit.chunk_id,
                    "title": hit.title,
                    "url": hit.url,
                    "score": hit.score,
                    "similarity": hit.similarity,
                    "confidence": result.confidence,
                },
            )
            for hit in result.hits
        ]

    def _identifying_params(self) -> dict[str, Any]:  # pragma: no cover - LangChain tracing only
        return {"organization_id": self.organization_id, "k": self.k}
