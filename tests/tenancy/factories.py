import factory
from django.contrib.auth import get_user_model

from tenancy import services
from tenancy.models import Organization, StaffRole


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
