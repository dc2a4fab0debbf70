from celery import shared_task

from knowledge.services import kb_article_index


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150, autoretry_for=(OSError,), max_retries=3)
def kb_article_index_task(article_id: int) -> None:
    kb_article_index(article_id=article_id)
