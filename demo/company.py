"""The demo company: staff, customers, conversations, tickets in every status, macros, SLA
policies, a knowledge base and intents, all written by us, plus a second tenant. Built only
through each app's services, as real data is; running it again resets the demo passwords and
adds nothing twice."""

from dataclasses import dataclass, field
from datetime import time, timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from agents.email.inbound import email_channel_set
from agents.services import intent_model_ensure
from demo.intents import DEMO_INTENTS
from demo.orders import demo_order_action
from knowledge.ingest import read_documents
from knowledge.services import kb_documents_ingest, kb_reindex
from tenancy import services as tenancy
from tenancy.models import Organization, StaffRole
from tenancy.roles import staff_roles_sync
from tickets import selectors, services
from tickets.models import Ticket, TicketStatus
from tickets.reports import report_store

DEMO_KB_DIR = Path(__file__).resolve().parent / "kb"

STAFF = [
    # username, password, role, first name, last name
    ("admin", "concierge-admin", StaffRole.ADMIN, "Ada", "Admin"),
    ("supervisor", "concierge-supervisor", StaffRole.SUPERVISOR, "Sam", "Rivera"),
    ("agent", "concierge-agent", StaffRole.AGENT, "Alex", "Kim"),
    ("agent2", "concierge-agent2", StaffRole.AGENT, "Jordan", "Lee"),
]

CUSTOMERS = [
    # name, email, vip tier, language, external id
    ("Maya Thompson", "maya.thompson@example.com", "platinum", "en", "C-1001"),
    ("Daniel Okafor", "daniel.okafor@example.com", "gold", "en", "C-1002"),
    ("Lucía Fernández", "lucia.fernandez@example.com", "silver", "en", "C-1003"),
    ("Wei Zhang", "wei.zhang@example.com", "none", "zh", "C-1004"),
    ("Priya Natarajan", "priya.n@example.com", "none", "en", "C-1005"),
    ("Tom Becker", "tom.becker@example.com", "none", "en", "C-1006"),
    ("Hannah Schulz", "hannah.schulz@example.com", "gold", "en", "C-1007"),
    ("Omar Haddad", "omar.haddad@example.com", "none", "en", "C-1008"),
]


@dataclass
class DemoTicket:
    customer: str
    subject: str
    priority: str
    status: str
    transcript: list[tuple[str, str, float | None]] = field(default_factory=list)
    assignee: str = ""
    tags: tuple[str, ...] = ()
    note: str = ""
    reply: str = ""
    csat: int | None = None
    age_hours: float = 1.0


TICKETS = [
    DemoTicket(
        "Maya Thompson",
        "Tent arrived with a broken pole",
        "high",
        TicketStatus.OPEN,
        [
            ("customer", "My new tent arrived today and one of the poles is snapped in half.", -0.55),
            ("bot", "I'm sorry to hear that. Damaged items are covered; I'm passing you to a colleague.", None),
            ("customer", "Please hurry, we leave for the trip on Friday!", -0.3),
        ],
        tags=("damaged", "warranty"),
        age_hours=0.4,
    ),
    DemoTicket(
        "Daniel Okafor",
        "Refund not received after return",
        "medium",
        TicketStatus.IN_PROGRESS,
        [
            ("customer", "I returned a jacket two weeks ago and still have no refund.", -0.45),
            ("bot", "Refunds go out within 2 business days of the return reaching us.", None),
            ("customer", "It's been way longer than that. I want a human.", -0.6),
        ],
        assignee="agent",
        tags=("refund",),
        note="Warehouse scan shows the parcel arrived on the 3rd; refund job failed. Re-running.",
        reply="Hi Daniel, I found your return and have re-issued the refund. You'll see it in 5-10 days.",
        age_hours=6,
    ),
    DemoTicket(
        "Lucía Fernández",
        "Which size for the alpine boots?",
        "low",
        TicketStatus.PENDING,
        [("customer", "Do the alpine boots run small? I'm usually a 39.", 0.1)],
        assignee="agent2",
        reply="Hi Lucía, they run half a size small; most customers go up. Could you tell me your foot length?",
        age_hours=20,
    ),
    DemoTicket(
        "Wei Zhang",
        "订单还没有发货",
        "medium",
        TicketStatus.RESOLVED,
        [("customer", "我的订单三天了还没有发货，请帮我查一下。", -0.35)],
        assignee="agent",
        reply="您好，您的订单今天已经发货，跟踪号已发送到您的邮箱。",
        csat=5,
        age_hours=30,
    ),
    DemoTicket(
        "Priya Natarajan",
        "Charged twice for one order",
        "urgent",
        TicketStatus.IN_PROGRESS,
        [
            ("customer", "I was charged twice for order 55812. This is unacceptable.", -0.8),
            ("bot", "I'm sorry. Billing issues go straight to our team; a person will reply shortly.", None),
        ],
        assignee="supervisor",
        tags=("billing",),
        note="Second charge is a pending authorisation; confirm with payments before replying.",
        age_hours=3,
    ),
    DemoTicket(
        "Tom Becker",
        "Rental pickup time",
        "low",
        TicketStatus.CLOSED,
        [("customer", "When can I pick up my ski rental?", 0.0)],
        assignee="agent2",
        reply="Hi Tom, pick-up starts at 4 pm the day before your reservation.",
        csat=4,
        age_hours=72,
    ),
    DemoTicket(
        "Hannah Schulz",
        "Can't sign in after password reset",
        "high",
        TicketStatus.OPEN,
        [
            ("customer", "The reset link says it expired, and now I'm locked out.", -0.4),
            ("customer", "This is the third time this month.", -0.65),
        ],
        tags=("account",),
        age_hours=7,
    ),
    DemoTicket(
        "Omar Haddad",
        "Thanks for the quick repair",
        "low",
        TicketStatus.RESOLVED,
        [("customer", "Just wanted to say the repair shop did a great job on my backpack!", 0.85)],
        assignee="agent",
        reply="Thank you Omar, we'll pass that on to the repair team!",
        csat=5,
        age_hours=50,
    ),
]

MACROS = [
    (
        "Refund issued",
        "Hi {customer_name}, I've issued your refund. Banks usually show it within 5-10 business days. — {agent_name}",
        TicketStatus.RESOLVED,
        "",
        "refund",
    ),
    (
        "Ask for order number",
        "Hi {customer_name}, could you send me your order number so I can look into this?",
        TicketStatus.PENDING,
        "",
        "",
    ),
    ("Escalate to urgent", "", "", "urgent", "escalated"),
]


@dataclass
class DemoResult:
    organization: Organization
    credentials: list[tuple[str, str, str]]
    created: bool


def _demo_knowledge_base(organization: Organization) -> int:
    # English articles, and their Chinese versions in kb/zh/.
    documents = [document for path in sorted(DEMO_KB_DIR.rglob("*.md")) for document in read_documents(path)]
    return len(kb_documents_ingest(organization=organization, documents=documents, default_category="General"))


def _demo_ticket(organization: Organization, spec: DemoTicket, staff: dict[str, Any]) -> Ticket:
    email = next(email for name, email, *_ in CUSTOMERS if name == spec.customer)
    customer = selectors.customer_by_email(organization=organization, email=email)
    assert customer is not None, spec.customer
    conversation = services.conversation_start(customer=customer)
    for role, text, score in spec.transcript:
        message, _ = services.message_create(conversation=conversation, role=role, text=text, broadcast=False)
        if score is not None:
            services.message_sentiment_record(message=message, score=score)
    ticket = services.ticket_create(
        organization=organization,
        customer=customer,
        subject=spec.subject,
        priority=spec.priority,
        conversation=conversation,
        tags=spec.tags,
        # Aged, so SLA clocks show a realistic spread; due dates follow from the opening time.
        opened_at=timezone.now() - timedelta(hours=spec.age_hours),
    )
    actor = staff.get(spec.assignee)
    if actor is not None:
        services.ticket_assign(ticket=ticket, assignee=actor, actor=staff["supervisor"])
    if spec.note:
        services.ticket_note_add(ticket=ticket, author=actor or staff["supervisor"], body=spec.note)
    if spec.reply:
        services.ticket_reply(ticket=ticket, author=actor or staff["agent"], text=spec.reply)
    path = {
        TicketStatus.OPEN: [],
        TicketStatus.IN_PROGRESS: [TicketStatus.IN_PROGRESS],
        TicketStatus.PENDING: [TicketStatus.PENDING],
        TicketStatus.RESOLVED: [TicketStatus.RESOLVED],
        TicketStatus.CLOSED: [TicketStatus.RESOLVED, TicketStatus.CLOSED],
    }[TicketStatus(spec.status)]
    for status in path:
        ticket = services.ticket_transition(ticket=ticket, to_status=status, actor=actor)
    if spec.csat is not None:
        services.ticket_csat_record(ticket=ticket, score=spec.csat, comment="")
    return ticket


@transaction.atomic
def demo_bootstrap() -> DemoResult:
    staff_roles_sync()
    organization = Organization.objects.filter(slug="trailhead").first()
    created = organization is None
    if organization is None:
        organization = tenancy.organization_create(name="Trailhead Outfitters", slug="trailhead")
    user_model = get_user_model()
    staff: dict[str, Any] = {}
    for username, password, role, first, last in STAFF:
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = tenancy.staff_member_create(
                organization=organization,
                username=username,
                password=password,
                role=role,
                email=f"{username}@trailhead.example",
                first_name=first,
                last_name=last,
            )
        # The demo admin is also the operator, so every page of the demo can be seen.
        tenancy.staff_password_set(user=user, password=password, superuser=True if role == StaffRole.ADMIN else None)
        staff[username] = user

    if created:
        services.sla_policies_default(organization=organization)
        for name, email, tier, language, external_id in CUSTOMERS:
            services.customer_create(
                organization=organization,
                name=name,
                email=email,
                vip_tier=tier,
                language=language,
                external_id=external_id,
            )
        for name, reply, set_status, set_priority, add_tags in MACROS:
            services.macro_create(
                organization=organization,
                name=name,
                reply=reply,
                set_status=set_status,
                set_priority=set_priority,
                add_tags=add_tags,
            )
        for spec in TICKETS:
            _demo_ticket(organization, spec, staff)
        _demo_second_tenant()
    # The demo answers email too: try it with `email_ingest` (README, "Email").
    email_channel_set(
        organization=organization, address="support@trailhead.example", display_name="Trailhead Outfitters support"
    )
    _demo_knowledge_base(organization)
    # Index now, so the knowledge base answers as soon as the server starts.
    kb_reindex(organization=organization)
    _demo_intents(organization)
    demo_order_action(organization)
    # Today's and this week's figures so far, so the report pages have something to show.
    for each in Organization.objects.all():
        for period in ("day", "week"):
            report_store(organization=each, period=period, start=timezone.localdate())
    harbor_agent = user_model.objects.filter(username="harbor-agent").first()
    if harbor_agent is not None:
        tenancy.staff_password_set(user=harbor_agent, password="concierge-harbor")
    credentials = [
        (username, password, f"{role.label}, {organization.name}") for username, password, role, _, _ in STAFF
    ]
    credentials.append(("harbor-agent", "concierge-harbor", "Agent, Harbor Coffee Co. (second tenant)"))
    return DemoResult(organization=organization, credentials=credentials, created=created)


def _demo_intents(organization: Organization) -> None:
    """Our demo intents, trained into a model unless one already exists."""
    rows = [(text, intent) for intent, texts in DEMO_INTENTS.items() for text in texts]
    intent_model_ensure(organization=organization, rows=rows)


def _demo_second_tenant() -> None:
    """A second company, so that the isolation between tenants can be seen and tested."""
    # A desk with office hours: its SLA clocks run Monday to Saturday, 07:00-19:00 London time.
    other = tenancy.organization_create(
        slug="harbor-coffee",
        name="Harbor Coffee Co.",
        timezone="Europe/London",
        sla_breach_action="reassign",
        business_hours=[(weekday, time(7), time(19)) for weekday in range(6)],
    )
    tenancy.staff_member_create(
        organization=other, username="harbor-agent", password="concierge-harbor", role=StaffRole.AGENT
    )
    customer = services.customer_create(organization=other, name="Grace Park", email="grace@example.com")
    services.ticket_create(organization=other, customer=customer, subject="Grinder makes a rattling noise")
