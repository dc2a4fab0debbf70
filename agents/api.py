"""The chat widget's public HTTP endpoints, answered with CORS for the websites each organization
allows (see agents.widget):

- ``GET /api/v1/widget/config?key=KEY``: the widget's look, words and pre-chat form;
- ``POST /api/v1/widget/sessions``: open, resume or refresh the visitor's chat; returns the
  token for the chat websocket;
- ``POST /api/v1/widget/attachments``: the visitor sends an image or a PDF (multipart: token,
  id, file, optional text); it reaches the chat as a message like any other."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.services import customer_message_receive
from agents.tokens import widget_token_read
from agents.widget import Identity, origin_check, widget_public_config, widget_session_start
from config.errors import NotAllowed
from tickets.limits import WidgetSessionIpThrottle, WidgetSessionOrganizationThrottle
from tickets.rules import MESSAGE_MAX_CHARS


class IdentitySerializer(serializers.Serializer):
    user_id = serializers.CharField(max_length=100)
    user_hash = serializers.CharField(max_length=128)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class WidgetSessionRequestSerializer(serializers.Serializer):
    widget_key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    email = serializers.EmailField(required=False, default="", allow_blank=True)
    token = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)
    identity = IdentitySerializer(required=False, default=None, allow_null=True)


class WidgetSessionSerializer(serializers.Serializer):
    token = serializers.CharField()
    conversation_id = serializers.IntegerField()
    expires_in = serializers.IntegerField(help_text="Seconds the token stays valid; refresh it before.")
    identified = serializers.BooleanField()
    resumed = serializers.BooleanField(help_text="An existing chat continues (its history replays).")


class WidgetConfigSerializer(serializers.Serializer):
    organization = serializers.CharField()
    title = serializers.CharField()
    greeting = serializers.CharField()
    color = serializers.CharField()
    position = serializers.CharField()
    locale = serializers.CharField()
    prechat = serializers.CharField()
    token_max_age = serializers.IntegerField()


def _caller(request: Request) -> dict[str, str]:
    return {"origin": request.headers.get("origin", ""), "host": request.get_host()}


class WidgetAnonymousView(APIView):
    authentication_classes: list[Any] = []  # anonymous visitors; the widget key says which company
    permission_classes = [AllowAny]


class WidgetSessionView(WidgetAnonymousView):
    throttle_classes = [WidgetSessionIpThrottle, WidgetSessionOrganizationThrottle]

    @extend_schema(request=WidgetSessionRequestSerializer, responses={201: WidgetSessionSerializer})
    def post(self, request: Request) -> Response:
        data = WidgetSessionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        identity = fields.pop("identity")
        started = widget_session_start(
            **fields, identity=Identity(**identity) if identity else None, **_caller(request)
        )
        body = {
            "token": started.token,
            "conversation_id": started.conversation.pk,
            "expires_in": settings.CONCIERGE_WIDGET_TOKEN_MAX_AGE,
            "identified": started.identified,
            "resumed": started.resumed,
        }
        return Response(body, status=status.HTTP_201_CREATED)


class WidgetConfigView(WidgetAnonymousView):
    @extend_schema(
        parameters=[OpenApiParameter("key", str, required=True, description="The organization's widget key.")],
        responses={200: WidgetConfigSerializer},
    )
    def get(self, request: Request) -> Response:
        return Response(widget_public_config(widget_key=request.query_params.get("key", ""), **_caller(request)))


class WidgetAttachmentRequestSerializer(serializers.Serializer):
    token = serializers.CharField(max_length=500)
    id = serializers.CharField(max_length=64, help_text="The client's id for this message (idempotent).")
    text = serializers.CharField(max_length=MESSAGE_MAX_CHARS, required=False, default="", allow_blank=True)
    file = serializers.FileField(help_text="An image (PNG, JPEG, GIF, WebP) or a PDF.")


class WidgetAttachmentView(WidgetAnonymousView):
    parser_classes = [MultiPartParser]

    @extend_schema(request={"multipart/form-data": WidgetAttachmentRequestSerializer}, responses={201: None})
    def post(self, request: Request) -> Response:
        data = WidgetAttachmentRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        session = widget_token_read(fields["token"])
        if session is None:
            raise NotAllowed("The session token is missing, invalid or expired; start a new chat.", code="bad_token")
        caller = _caller(request)
        origin_check(organization_id=session.organization_id, origin=caller["origin"], host=caller["host"])
        received = customer_message_receive(
            conversation_id=session.conversation_id,
            organization_id=session.organization_id,
            text=fields["text"],
            client_message_id=fields["id"],
            sender_address=request.META.get("REMOTE_ADDR", ""),
            attachment=fields["file"],
        )
        body = {"id": fields["id"], "seq": received.message.seq}
        return Response(body, status=status.HTTP_201_CREATED if received.created else status.HTTP_200_OK)
