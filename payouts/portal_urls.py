from django.urls import path

from payouts import views

urlpatterns = [
    path("creator/payout-method/", views.payout_method_edit, name="payout-method"),
    path(
        "creator/payout-method/undo/<str:token>/",
        views.payout_method_undo,
        name="payout-method-undo",
    ),
    path("creator/payout-method/return/", views.payout_method_return, name="payout-method-return"),
    path(
        "creator/payouts/<int:payout_id>/statement/",
        views.payout_statement_page,
        name="payout-statement",
    ),
    path(
        "creator/payouts/<int:payout_id>/statement.csv",
        views.payout_statement_csv,
        name="payout-statement-csv",
    ),
    path(
        "creator/payouts/<int:payout_id>/statement.pdf",
        views.payout_statement_pdf,
        name="payout-statement-pdf",
    ),
    path("creator/payouts/trace/", views.gift_trace_page, name="payout-gift-trace"),
    path("creator/cash-out/", views.cash_out, name="payout-cash-out"),
]
