"""config.compiled: a hot query built once per process gives what the ORM gives, every time."""

import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext

from config.compiled import CompiledQuery, prepared_kept
from tests.support import prepared_statements, prepared_statements_forget
from tests.tenancy.factories import OrganizationFactory
from tests.tickets.factories import CustomerFactory, TicketFactory
from tickets import services
from tickets.models import Ticket


def _values(instance):
    return {field.attname: getattr(instance, field.attname) for field in instance._meta.concrete_fields}


@pytest.mark.django_db
def test_the_ticket_lock_gives_what_the_orm_gives_with_its_related_rows(agent, org, django_assert_num_queries):
    tickets = [TicketFactory(customer=CustomerFactory(organization=org, email=f"c{n}@example.com")) for n in range(3)]
    services.ticket_assign(ticket=tickets[1], assignee=agent, actor=agent)
    expected = Ticket.objects.select_related("customer", "organization", "assignee")
    for ticket in tickets:
        with CaptureQueriesContext(connection) as captured:
            locked = services.ticket_lock(ticket, organization_id=org.pk)
        assert len(captured.captured_queries) == 1
        assert "FOR UPDATE" in captured.captured_queries[0]["sql"]
        orm = expected.get(pk=ticket.pk)
        assert _values(locked) == _values(orm)
        with django_assert_num_queries(0):  # the related rows came with it, converted (decrypted)
            assert _values(locked.customer) == _values(orm.customer)
            assert locked.customer.email == orm.customer.email and "@" in locked.customer.email
            assert _values(locked.organization) == _values(orm.organization)
            assert (locked.assignee and locked.assignee.username) == (orm.assignee and orm.assignee.username)
        assert locked._state.db == "default" and not locked._state.adding
    assert services.ticket_lock(tickets[0]).pk == tickets[0].pk  # the unscoped form


@pytest.mark.django_db
def test_the_ticket_lock_keeps_to_the_organization_asked_for(ticket):
    other = OrganizationFactory()
    with pytest.raises(Ticket.DoesNotExist):
        services.ticket_lock(ticket, organization_id=other.pk)
    with pytest.raises(Ticket.DoesNotExist):
        services.ticket_lock(Ticket(pk=ticket.pk + 1000), organization_id=ticket.organization_id)
    assert services.ticket_lock(ticket, organization_id=ticket.organization_id).pk == ticket.pk


@pytest.mark.django_db(transaction=True)
def test_a_compiled_lock_refuses_to_run_outside_a_transaction(ticket):
    with pytest.raises(TransactionManagementError):
        services.ticket_lock(ticket)
    with transaction.atomic():
        assert services.ticket_lock(ticket).pk == ticket.pk


@pytest.mark.django_db
def test_the_query_is_built_once_and_runs_with_each_calls_ids(org):
    built = []

    def build(pk):
        built.append(pk)
        return Ticket.objects.select_related("customer").filter(pk=pk)

    query = CompiledQuery(build, pk=int)
    first, second = TicketFactory(customer=CustomerFactory(organization=org)), TicketFactory()
    assert [t.pk for t in query.rows(pk=first.pk)] == [first.pk]
    assert [t.customer.name for t in query.rows(pk=second.pk)] == [second.customer.name]
    assert query.rows(pk=second.pk + 1000) == []
    assert len(built) == 1  # with its marker, not any ticket's id
    assert built[0] not in (first.pk, second.pk)


def _conversation_locks_prepared():
    """The conversation lock's statements (``selectors.conversation_lock``) held prepared."""
    return [sql for sql in prepared_statements() if '"tickets_conversation"."last_seq"' in sql and "FOR UPDATE" in sql]


@pytest.mark.django_db
def test_a_statement_run_again_is_prepared_on_its_connection(org):
    """PostgreSQL binds the parameters, and a statement a connection has run twice is prepared on
    it and kept (DATABASE_PREPARED): a chat turn's statements are not parsed and planned every
    time. Each run gives its own row still."""
    from tickets.selectors import conversation_lock
    from tickets.services import conversation_start

    conversations = [conversation_start(customer=CustomerFactory(organization=org)) for _ in range(6)]
    assert not _conversation_locks_prepared()
    with transaction.atomic():
        locked = [conversation_lock(conversation_id=c.pk, organization_id=org.pk) for c in conversations]
    assert [c.pk for c in locked] == [c.pk for c in conversations]
    statements = _conversation_locks_prepared()
    assert len(statements) == 1 and "$1" in statements[0], prepared_statements()


@pytest.mark.django_db
def test_a_rollback_inside_prepared_kept_keeps_the_statements_prepared(org):
    """psycopg forgets (and deallocates) a connection's prepared statements at any rollback;
    inside ``prepared_kept`` they stay, still run and give their rows; outside it, a rollback
    forgets them again as before."""
    from tickets.selectors import conversation_lock
    from tickets.services import conversation_start

    conversations = [conversation_start(customer=CustomerFactory(organization=org)) for _ in range(4)]
    prepared_statements_forget()
    with prepared_kept() as runs:
        assert runs == connection.connection.prepare_threshold + 1 == 3
        for conversation in conversations[:runs]:
            with transaction.atomic():
                assert conversation_lock(conversation_id=conversation.pk, organization_id=org.pk).pk == conversation.pk
                transaction.set_rollback(True)
        assert len(_conversation_locks_prepared()) == 1
    assert len(_conversation_locks_prepared()) == 1
    # Prepared and kept: the next run uses it and gives its own row.
    assert conversation_lock(conversation_id=conversations[3].pk, organization_id=org.pk).pk == conversations[3].pk
    with transaction.atomic():
        conversation_lock(conversation_id=conversations[0].pk, organization_id=org.pk)
        transaction.set_rollback(True)
    assert _conversation_locks_prepared() == []


@pytest.mark.django_db
def test_an_argument_the_query_does_not_use_once_is_refused():
    query = CompiledQuery(lambda pk: Ticket.objects.filter(pk=pk) | Ticket.objects.filter(customer_id=pk), pk=int)
    with pytest.raises(ValueError, match="appears 2 times"):
        query.rows(pk=1)
    unused = CompiledQuery(lambda pk: Ticket.objects.all(), pk=int)
    with pytest.raises(ValueError, match="appears 0 times"):
        unused.rows(pk=1)


@pytest.mark.django_db
def test_a_chat_turns_compiled_reads_give_what_the_orm_gives(org, agent, django_assert_num_queries):
    from tickets import selectors
    from tickets.models import Conversation, Customer, Message, MessageRole

    customer = Customer.objects.create(organization=org, name="Kim", email="kim@example.com")
    conversation = Conversation.objects.create(organization=org, customer=customer)
    said = [
        (MessageRole.CUSTOMER, "Where is my order?"),
        (MessageRole.BOT, "Which order number?"),
        (MessageRole.AGENT, "I am looking at it."),
        (MessageRole.CUSTOMER, "It is 88231."),
        (MessageRole.BOT, "It left on Monday."),
        (MessageRole.CUSTOMER, "Thanks!"),
    ]
    for n, (role, text) in enumerate(said):
        services.message_create(
            conversation=conversation,
            role=role,
            text=text,
            client_message_id=f"c{n}",
            metadata={"n": n},
            author=agent if role == MessageRole.AGENT else None,
        )
    last = Message.objects.get(conversation=conversation, seq=6)
    services.message_sentiment_record(message=Message.objects.get(conversation=conversation, seq=4), score=0.25)

    with django_assert_num_queries(1):  # each message's recorded sentiment comes with it, or its absence
        turns = selectors.turns_before(conversation_id=conversation.pk, seq=last.seq, count=3)
    orm = list(
        Message.objects.filter(
            conversation=conversation, role__in=[MessageRole.BOT, MessageRole.CUSTOMER], seq__lt=last.seq
        )
        .select_related("sentiment")
        .order_by("-seq")[:3]
    )[::-1]
    assert [(t.role, t.seq, t.text, t.metadata) for t in turns] == [(m.role, m.seq, m.text, m.metadata) for m in orm]
    assert [t.text for t in turns] == ["Which order number?", "It is 88231.", "It left on Monday."]
    assert [t.sentiment_score for t in turns] == [None, 0.25, None]

    read = selectors.message_with_conversation(message_id=last.pk)
    with django_assert_num_queries(0):
        assert (read.text, read.conversation.customer.email, read.conversation.organization.slug) == (
            "Thanks!",
            "kim@example.com",
            org.slug,
        )
    with pytest.raises(Message.DoesNotExist):
        selectors.message_with_conversation(message_id=last.pk + 1000)

    assert selectors.message_by_client_id(conversation_id=conversation.pk, client_message_id="c3").seq == 4
    assert selectors.message_by_client_id(conversation_id=conversation.pk, client_message_id="c9") is None
    elsewhere = Conversation.objects.create(organization=org, customer=customer)
    assert selectors.message_by_client_id(conversation_id=elsewhere.pk, client_message_id="c3") is None

    services.message_create(
        conversation=conversation, role=MessageRole.BOT, text="You are welcome.", metadata={"in_reply_to": 6}
    )
    assert selectors.bot_reply_to(conversation_id=conversation.pk, seq=6).text == "You are welcome."
    assert selectors.bot_reply_to(conversation_id=conversation.pk, seq=4) is None  # answered by no bot message
    assert selectors.bot_reply_to(conversation_id=elsewhere.pk, seq=6) is None

    assert selectors.conversation_lock(conversation_id=conversation.pk, organization_id=org.pk).last_seq == 7
    with pytest.raises(Conversation.DoesNotExist):
        selectors.conversation_lock(conversation_id=conversation.pk, organization_id=OrganizationFactory().pk)


@pytest.mark.django_db
def test_a_values_list_query_gives_the_orms_tuples_converted(org):
    from tickets.models import Customer

    people = [Customer.objects.create(organization=org, name=f"P{n}", email=f"p{n}@example.com") for n in range(3)]
    query = CompiledQuery(
        lambda organization_id, a, b: (
            Customer.objects.filter(organization_id=organization_id, pk__in=[a, b])
            .order_by("pk")
            .values_list("pk", "name", "email")
        ),
        organization_id=int,
        a=int,
        b=int,
    )
    found = query.tuples(organization_id=org.pk, a=people[2].pk, b=people[0].pk)
    orm = list(
        Customer.objects.filter(organization_id=org.pk, pk__in=[people[2].pk, people[0].pk])
        .order_by("pk")
        .values_list("pk", "name", "email")
    )
    assert found == orm == [(people[0].pk, "P0", "p0@example.com"), (people[2].pk, "P2", "p2@example.com")]
    assert query.tuples(organization_id=OrganizationFactory().pk, a=people[0].pk, b=people[1].pk) == []
    with pytest.raises(TypeError, match="tuples"):
        query.rows(organization_id=org.pk, a=1, b=2)
    dicts = CompiledQuery(lambda pk: Customer.objects.filter(pk=pk).values("pk"), pk=int)
    with pytest.raises(ValueError, match="values_list"):
        dicts.tuples(pk=people[0].pk)


def _stored(model, pk):
    """The row as the database holds it, through a fresh ORM read."""
    return _values(model.objects.get(pk=pk))


@pytest.mark.django_db
def test_a_compiled_insert_stores_what_save_stores(org):
    from config.compiled import row_insert
    from tickets.models import Conversation, Message

    conversation = Conversation.objects.create(organization=org, customer=CustomerFactory(organization=org))
    for n, metadata in enumerate(({}, {"in_reply_to": "1", "sources": [{"title": "Refunds"}]}), start=1):
        compiled = Message(conversation=conversation, role="bot", text=f"Reply {n} with ü and 退款", seq=2 * n,
                           client_message_id="", metadata=metadata)  # fmt: skip
        with CaptureQueriesContext(connection) as captured:
            row_insert(compiled)
        assert len(captured.captured_queries) == 1 and captured.captured_queries[0]["sql"].startswith("INSERT")
        saved = Message(conversation=conversation, role="bot", text=f"Reply {n} with ü and 退款", seq=2 * n + 1,
                        client_message_id="", metadata=metadata)  # fmt: skip
        saved.save()
        assert compiled.pk and compiled.pk != saved.pk and compiled.created_at is not None
        assert not compiled._state.adding and compiled._state.db == "default"
        mine, theirs = _stored(Message, compiled.pk), _stored(Message, saved.pk)
        for row in (mine, theirs):
            row.pop("id"), row.pop("seq"), row.pop("created_at")
        assert mine == theirs and mine["text"] == f"Reply {n} with ü and 退款"
    with connection.cursor() as cursor:  # the text is stored encrypted, as save() stores it
        cursor.execute("SELECT text FROM tickets_message WHERE id = %s", [compiled.pk])
        assert cursor.fetchone()[0].startswith("fernet:")


@pytest.mark.django_db
def test_a_compiled_update_writes_the_fields_named_and_no_other(org):
    from django.db import DatabaseError

    from config.compiled import fields_update, row_update
    from tickets.models import Conversation, Customer

    customer = CustomerFactory(organization=org, email="first@example.com")
    conversation = Conversation.objects.create(organization=org, customer=customer)
    conversation.last_seq, conversation.sentiment_score, conversation.sentiment_label = 7, -0.5, "negative"
    conversation.status = "ended"  # set here, not named: stays as stored
    with CaptureQueriesContext(connection) as captured:
        fields_update(conversation, ["last_seq", "sentiment_score", "sentiment_label"])
    assert len(captured.captured_queries) == 1 and captured.captured_queries[0]["sql"].startswith("UPDATE")
    stored = Conversation.objects.get(pk=conversation.pk)
    written = (stored.last_seq, stored.sentiment_score, stored.sentiment_label, stored.status)
    assert written == (7, -0.5, "negative", "open")
    # An encrypted field is written encrypted, as QuerySet.update() writes it.
    assert row_update(Customer, customer.pk, {"email": "second@example.com"}) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT email FROM tickets_customer WHERE id = %s", [customer.pk])
        assert cursor.fetchone()[0].startswith("fernet:")
    assert Customer.objects.get(pk=customer.pk).email == "second@example.com"
    assert row_update(Customer, 10**9, {"email": "x@example.com"}) == 0
    gone = Conversation(pk=10**9, organization=org, customer=customer, last_seq=1)
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        fields_update(gone, ["last_seq"])


@pytest.mark.django_db
def test_a_model_whose_saves_someone_listens_to_is_saved_by_the_orm_with_its_signals(org):
    from django.db.models.signals import post_save

    from config.compiled import fields_update, row_insert
    from tickets.models import Conversation, Message

    conversation = Conversation.objects.create(organization=org, customer=CustomerFactory(organization=org))
    heard = []

    def listen(sender, instance, created, **kwargs):
        heard.append((sender.__name__, created, kwargs.get("update_fields")))

    post_save.connect(listen, sender=Message)
    post_save.connect(listen, sender=Conversation)
    try:
        message = Message(conversation=conversation, role="customer", text="hello", seq=1)
        row_insert(message)
        conversation.last_seq = 1
        fields_update(conversation, ["last_seq"])
    finally:
        post_save.disconnect(listen, sender=Message)
        post_save.disconnect(listen, sender=Conversation)
    assert heard == [("Message", True, None), ("Conversation", False, frozenset({"last_seq"}))]
    assert Message.objects.get(pk=message.pk).text == "hello"
