"""The message frame the chat transport sends, built on the chat's hot path."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tickets import services
from tickets.transport import message_frame

pytestmark = pytest.mark.django_db


def test_a_new_message_without_files_needs_no_query_for_its_frame(customer):
    conversation = services.conversation_start(customer=customer)
    message, _ = services.message_create(conversation=conversation, role="customer", text="hello", broadcast=False)
    with CaptureQueriesContext(connection) as queries:
        frame = message_frame(message)
    assert frame["text"] == "hello" and "attachments" not in frame
    assert len(queries) == 0
