from celery import shared_task

from knowledge.services import kb_article_index, kb_article_purge


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150, autoretry_for=(OSError,), max_retries=3)
def kb_article_index_task(article_id: int) -> None:
    kb_article_index(article_id=article_id)


@shared_task(ignore_result=True, soft_time_limit=60, time_limit=90, autoretry_for=(OSError,), max_retries=3)
def kb_article_purge_task(organization_id: int, article_id: int, chunk_ids: list[str]) -> None:
    kb_article_purge(organization_id=organization_id, article_id=article_id, chunk_ids=chunk_ids)
