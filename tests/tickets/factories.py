import factory
from django.contrib.auth import get_user_model

from tickets import services
from tickets.models import Customer, Organization, StaffRole, Ticket


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Company {n}")
    slug = factory.Sequence(lambda n: f"company-{n}")


class StaffFactory(factory.Factory):
    """A staff user made the way the product makes them: through the service."""

    class Meta:
        model = get_user_model()

    organization = factory.SubFactory(OrganizationFactory)
    username = factory.Sequence(lambda n: f"staff{n}")
    password = "correct horse battery"
    role = StaffRole.AGENT

    @classmethod
    def _create(cls, model_class, **kwargs):
        return services.staff_member_create(**kwargs)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Customer {n}")
    email = factory.Sequence(lambda n: f"customer{n}@example.com")


class TicketFactory(factory.Factory):
    class Meta:
        model = Ticket

    customer = factory.SubFactory(CustomerFactory)
    organization = factory.SelfAttribute("customer.organization")
    subject = factory.Sequence(lambda n: f"Problem number {n}")
    priority = "medium"

    @classmethod
    def _create(cls, model_class, **kwargs):
        return services.ticket_create(**kwargs)
