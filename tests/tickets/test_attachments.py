"""Images and PDFs in chats, both ways: checked by content, limited in size, stored through the
storage API, served by signed links that expire; a bad file stores nothing."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
from rest_framework.test import APIClient

from agents.widget import widget_origin_add
from config.errors import DomainError
from tickets import services
from tickets.attachments import attachment_inspect
from tickets.models import Attachment, Message

pytestmark = pytest.mark.django_db
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def png_bytes(size=(8, 8)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(media):
    return sorted(p.name for p in media.rglob("*") if p.is_file()) if media.exists() else []


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("photo.png", b"just some text pretending", "not a known file type"),
        ("setup.pdf", b"MZ\x90\x00" + b"\x00" * 200, "Only images"),
        ("broken.png", png_bytes()[:40], "damaged"),
        ("cut.pdf", b"%PDF-1.4\n1 0 obj<<>>endobj\n", "incomplete"),
        ("empty.png", b"", "empty"),
    ],
)
def test_files_are_judged_by_their_content(name, content, reason):
    with pytest.raises(DomainError, match=reason):
        attachment_inspect(SimpleUploadedFile(name, content))


def test_good_images_and_pdfs_pass_and_size_is_limited(settings):
    assert attachment_inspect(SimpleUploadedFile("x.bin", png_bytes())) == "image/png"
    assert attachment_inspect(SimpleUploadedFile("doc", PDF)) == "application/pdf"
    settings.CONCIERGE_ATTACHMENT_MAX_BYTES = 1024
    with pytest.raises(DomainError, match="limited to"):
        attachment_inspect(SimpleUploadedFile("big.png", png_bytes((400, 400)) + b"\x00" * 2048))


def widget_post(org, session, upload, origin=None, **extra):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    return APIClient().post(
        "/api/v1/widget/attachments",
        {"token": session["token"], "id": extra.pop("id", "file-1"), "file": upload, **extra},
        format="multipart",
        **headers,
    )


def start(org):
    return APIClient().post("/api/v1/widget/sessions", {"widget_key": org.widget_key}, format="json").json()


def test_a_customer_sends_an_image_and_gets_a_signed_link(org, media, client):
    session = start(org)
    response = widget_post(org, session, SimpleUploadedFile("Receipt photo.png", png_bytes()))
    assert response.status_code == 201, response.content
    message = Message.objects.get(conversation_id=session["conversation_id"], seq=response.json()["seq"])
    [attachment] = message.attachments.all()
    assert attachment.name == "Receipt_photo.png" and attachment.content_type == "image/png"
    assert "Receipt" not in attachment.file.name  # stored under a random name
    from tickets.transport import message_frame

    [link] = message_frame(message)["attachments"]
    served = client.get(link["url"])
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff" and "sandbox" in served["Content-Security-Policy"]
    assert b"".join(served.streaming_content) == png_bytes()
    # The same id again: stored once.
    again = widget_post(org, session, SimpleUploadedFile("Receipt photo.png", png_bytes()))
    assert again.status_code == 200 and Attachment.objects.count() == 1


def test_links_are_signed_and_expire(org, settings, client):
    session = start(org)
    widget_post(org, session, SimpleUploadedFile("doc.pdf", PDF))
    message = Message.objects.get(conversation_id=session["conversation_id"], role="customer")
    from tickets.transport import message_frame

    url = message_frame(message)["attachments"][0]["url"]
    assert client.get(url[:-3] + "xx/").status_code == 404  # tampered
    settings.CONCIERGE_ATTACHMENT_URL_MAX_AGE = -1
    expired = client.get(url)
    assert expired.status_code == 404 and "expired" in expired.json()["detail"]


def test_a_bad_file_gets_a_clear_error_and_nothing_is_stored(org, media):
    session = start(org)
    messages = Message.objects.count()
    refused = widget_post(org, session, SimpleUploadedFile("invoice.pdf", b"<script>alert(1)</script>"))
    assert refused.status_code == 400 and "Only images" in refused.json()["detail"]
    assert Message.objects.count() == messages and not Attachment.objects.exists()
    assert stored_files(media) == []


def test_only_allowed_websites_and_valid_sessions_may_upload(org, media):
    session = start(org)
    widget_origin_add(organization=org, origin="https://shop.example.com")
    refused = widget_post(org, session, SimpleUploadedFile("a.png", png_bytes()), origin="https://evil.example.net")
    assert refused.status_code == 403 and refused.json()["code"] == "origin_not_allowed"
    forged = widget_post(org, {"token": "nope"}, SimpleUploadedFile("a.png", png_bytes()))
    assert forged.status_code == 403 and forged.json()["code"] == "bad_token"
    assert stored_files(media) == []


def test_an_agent_sends_a_pdf_through_the_api_and_purging_removes_the_file(
    org, api, customer, media, django_capture_on_commit_callbacks
):
    conversation = services.conversation_start(customer=customer)
    response = api.post(
        f"/api/v1/conversations/{conversation.pk}/messages/",
        {"role": "agent", "file": SimpleUploadedFile("manual.pdf", PDF)},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["text"].endswith("manual.pdf") and body["attachments"][0]["type"] == "application/pdf"
    assert len(stored_files(media)) == 1
    with django_capture_on_commit_callbacks(execute=True):
        Message.objects.filter(pk=body["id"]).delete()
    assert stored_files(media) == []
