"""POST /api/v1/widget/sessions: the public entry point of the chat widget."""

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from agents.services import widget_session_start
from tickets.limits import WidgetSessionIpThrottle, WidgetSessionOrganizationThrottle


class WidgetSessionRequestSerializer(serializers.Serializer):
    widget_key = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)
    email = serializers.EmailField(required=False, default="", allow_blank=True)


class WidgetSessionSerializer(serializers.Serializer):
    token = serializers.CharField()
    conversation_id = serializers.IntegerField()


class WidgetSessionView(APIView):
    authentication_classes: list[Any] = []  # anonymous visitors; the widget key says which company
    permission_classes = [AllowAny]
    throttle_classes = [WidgetSessionIpThrottle, WidgetSessionOrganizationThrottle]

    @extend_schema(request=WidgetSessionRequestSerializer, responses={201: WidgetSessionSerializer})
    def post(self, request: Request) -> Response:
        data = WidgetSessionRequestSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation, token = widget_session_start(**data.validated_data)
        return Response({"token": token, "conversation_id": conversation.pk}, status=status.HTTP_201_CREATED)
