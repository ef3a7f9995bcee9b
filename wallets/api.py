from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api import NewestFirstCursorPagination, error_responses
from wallets.models import TransactionKind
from wallets.selectors import wallet_entries, wallet_find


class WalletOutput(serializers.Serializer):
    coins = serializers.IntegerField()
    frozen = serializers.BooleanField()


class EntryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField(source="transaction.kind")
    coins = serializers.IntegerField(source="amount")
    balance_after = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    memo = serializers.CharField(source="transaction.memo")


class WalletView(APIView):
    @extend_schema(responses={200: WalletOutput, **error_responses(401)}, summary="My wallet")
    def get(self, request):
        wallet = wallet_find(user=request.user)
        return Response(
            {"coins": wallet.balance if wallet else 0, "frozen": bool(wallet and wallet.is_frozen)}
        )


class EntryFilter(serializers.Serializer):
    kind = serializers.ChoiceField(choices=TransactionKind.choices, required=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


class WalletEntriesView(ListAPIView):
    serializer_class = EntryOutput
    pagination_class = NewestFirstCursorPagination

    def get_queryset(self):
        filters = EntryFilter(data=self.request.query_params)
        filters.is_valid(raise_exception=True)
        entries = wallet_entries(user=self.request.user)
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
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
