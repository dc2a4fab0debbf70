import factory

from agents import services
from agents.models import IntentExample, IntentModel
from tests.tenancy.factories import OrganizationFactory


class IntentExampleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IntentExample

    organization = factory.SubFactory(OrganizationFactory)
    intent = "refund"
    text = factory.Sequence(lambda n: f"I want my money back for order {n}")


class IntentModelFactory(factory.Factory):
    """A trained intent model version, trained by the service on the organization's examples
    (``examples``: {intent: [texts]}), active unless ``activate=False``."""

    class Meta:
        model = IntentModel

    organization = factory.SubFactory(OrganizationFactory)
    examples = factory.LazyFunction(
        lambda: {
            "refund": ["I want a refund", "money back please", "refund my order", "how do I get reimbursed"],
            "shipping": ["where is my parcel", "when will it ship", "delivery status", "track my package"],
        }
    )
    activate = True

    @classmethod
    def _create(cls, model_class, organization, examples, activate=True):
        rows = [(text, intent) for intent, texts in examples.items() for text in texts]
        services.intent_examples_import(organization=organization, rows=rows)
        return services.intent_model_train(organization=organization, activate=activate)
