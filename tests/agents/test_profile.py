"""Facts about the organization come from its profile (business hours, contact fields, the
email channel, the address), in the customer's language, through the whole turn."""

from datetime import time

import pytest

from agents.active_models import active_models_forget
from agents.email.inbound import email_channel_set
from agents.profile import OrganizationProfile, profile_reply, profile_topic
from tenancy.models import BusinessHours
from tests.agents.test_dialog import Chat

pytestmark = pytest.mark.django_db


def test_questions_about_the_organization_are_recognised_and_others_are_not():
    assert profile_topic("What are your opening hours?") == "hours"
    assert profile_topic("are you open on Sunday?") == "hours"
    assert profile_topic("你们的营业时间是几点？") == "hours"
    assert profile_topic("How can I contact you by phone?") == "contact"
    assert profile_topic("客服电话是多少？") == "contact"
    assert profile_topic("where are you located?") == "address"
    assert profile_topic("你们的地址在哪里？") == "address"
    for other in ("where is my order?", "how long does delivery take?", "我的订单在哪里？", "change my address"):
        assert profile_topic(other) == "", other


def test_business_hours_are_said_as_ranges_in_both_languages():
    profile = OrganizationProfile(
        timezone="Europe/London",
        hours=[(d, "09:00", "17:00") for d in range(5)] + [(5, "10:00", "14:00")],
        email="help@example.com",
    )
    assert profile_reply("hours", profile, "en") == (
        "We're open Monday to Friday 09:00-17:00, Saturday 10:00-14:00 (Europe/London time)."
    )
    assert (
        profile_reply("hours", profile, "zh")
        == "我们的营业时间是周一至周五 09:00-17:00，周六 10:00-14:00（Europe/London时间）。"
    )
    assert profile_reply("hours", OrganizationProfile(), "en") == "Our team works around the clock, every day."
    assert profile_reply("address", profile, "en") == ""  # not in the profile: not made up
    assert "help@example.com" in profile_reply("contact", profile, "en")


def test_the_assistant_answers_from_the_profile_as_it_is_now(trained_org):
    trained_org.timezone = "Europe/London"
    trained_org.save()
    for weekday in range(5):
        BusinessHours.objects.create(organization=trained_org, weekday=weekday, opens=time(9), closes=time(17))
    email_channel_set(organization=trained_org, address="support@acme.example", display_name="Acme support")

    hours = Chat(trained_org).say("What are your opening hours?")
    assert hours.text == "We're open Monday to Friday 09:00-17:00 (Europe/London time)."
    assert hours.metadata["sources"] == [] and hours.metadata["profile"] == "hours"
    assert not hours.metadata["handoff"]
    zh = Chat(trained_org).say("请问你们的营业时间是什么？")
    assert zh.text == "我们的营业时间是周一至周五 09:00-17:00（Europe/London时间）。"

    contact = Chat(trained_org).say("How can I contact you?")
    assert "by email at support@acme.example" in contact.text
    assert not contact.metadata["handoff"] and contact.metadata["profile"] == "contact"
    # 客服 in "the support line" is not a request for a person; asking for one still is.
    assert "support@acme.example" in Chat(trained_org).say("客服电话是多少？").text
    assert Chat(trained_org).say("I want a real person, how can I contact you?").metadata["handoff"]
    # Without an address in the profile the assistant does not answer from it.
    address = Chat(trained_org).say("What is your office address?")
    assert address.metadata["profile"] == ""

    trained_org.contact_phone = "+44 20 7946 0000"
    trained_org.address = "1 Harbour Street, Leith"
    trained_org.save()
    active_models_forget()
    contact = Chat(trained_org).say("How can I contact you?")
    assert "by phone on +44 20 7946 0000" in contact.text
    assert Chat(trained_org).say("What is your office address?").text == "Our address is 1 Harbour Street, Leith."
