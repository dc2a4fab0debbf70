import factory

from tests.tenancy.factories import OrganizationFactory
from tickets import services
from tickets.models import Customer, Ticket


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
