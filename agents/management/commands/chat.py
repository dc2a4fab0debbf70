import json
from typing import Any

from django.core.management.base import BaseCommand

from agents.pipeline import ConversationContext, run_pipeline
from tenancy.management.options import organization_option


class Command(BaseCommand):
    help = "Run the dialog pipeline on one message and print every stage (nothing is stored)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("message")
        parser.add_argument("--org", help="Organization slug (default: the first).")
        parser.add_argument("--vip", default="none", help="Pretend the customer has this VIP tier.")

    def handle(self, *args: Any, **options: Any) -> None:
        organization = organization_option(options["org"])
        state = run_pipeline(
            options["message"], ConversationContext(organization.pk, organization.name, vip_tier=options["vip"])
        )
        timings = state["timings_ms"]
        rows = [
            ("normalise", state["normalised"]),
            ("language", state["language"]),
            ("sentiment", f"{state['sentiment']:+.3f} (trend {state['sentiment_trend']:+.3f}, "
             f"{state['sentiment_engine']})"),
            ("intent", f"{state['intent']} ({state['intent_confidence']:.2f}, model v{state['intent_model_version']})"),
            ("retrieve", f"confidence {state['retrieval_confidence']:.3f}: "
             + "; ".join(f"{p['title']} ({p['similarity']:.2f})" for p in state["passages"])),
            ("respond", json.dumps({"answered": state["answered"], "sources": state["sources"]})),
            ("escalate", ", ".join(state["escalation_reasons"]) or "no"),
        ]  # fmt: skip
        for stage, output in rows:
            self.stdout.write(f"{stage:<10} {timings.get(stage, 0):>7.1f} ms  {output}")
        self.stdout.write(f"{'total':<10} {timings['total']:>7.1f} ms")
        self.stdout.write(f"\n{state['reply']}")
