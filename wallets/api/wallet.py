"""My wallet and its ledger entries."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import NewestFirstCursorPagination, error_responses, signed_in_user
from wallets.api.serializers import EntryFilter, EntryOutput, WalletOutput, wallet_data
from wallets.models import Entry, TransactionKind
from wallets.selectors import wallet_entries, wallet_find


class WalletView(APIView):
    @extend_schema(responses={200: WalletOutput, **error_responses(401)}, summary="My wallet")
    def get(self, request: Request) -> Response:
        return Response(wallet_data(wallet_find(user=signed_in_user(request))))


class WalletEntriesView(ListAPIView[Entry]):
    serializer_class = EntryOutput
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self) -> QuerySet[Entry]:
        filters = EntryFilter(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        entries = wallet_entries(user=signed_in_user(self.request))
        if kind := filters.validated_data.get("kind"):
            entries = entries.filter(transaction__kind=kind)
        if since := filters.validated_data.get("since"):
            entries = entries.filter(created_at__gte=since)
        if until := filters.validated_data.get("until"):
            entries = entries.filter(created_at__lt=until)
        return entries

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", OpenApiTypes.STR, enum=TransactionKind.values),
            OpenApiParameter("since", OpenApiTypes.DATETIME),
            OpenApiParameter("until", OpenApiTypes.DATETIME),
        ],
        responses={200: EntryOutput(many=True), **error_responses(400, 401)},
        summary="My wallet's ledger entries, newest first",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)
