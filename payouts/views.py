"""Portal pages: set the payout method (the dashboard itself lives in ``creators``)."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from config.api import signed_in_user
from config.errors import DomainError
from payouts.models import Payout, PayoutMethod, Rail
from payouts.selectors import payout_method_for_user, payout_status_words
from payouts.services import (
    PasswordIncorrect,
    creator_required,
    payout_method_refresh,
    payout_method_set,
)
from payouts.statements import (
    Statement,
    gift_trace,
    payout_for_creator,
    payout_statement,
    statement_csv,
    statement_pdf,
)


class PayoutMethodForm(forms.Form):
    rail = forms.ChoiceField(
        choices=Rail.choices, widget=forms.RadioSelect, label="How do you want to be paid?"
    )
    account_holder = forms.CharField(
        required=False, max_length=140, label="Account holder (bank transfer)"
    )
    iban = forms.CharField(
        required=False,
        max_length=64,
        label="IBAN (bank transfer)",
        help_text="We only ever show its last four characters.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )


class PasswordConfirmForm(forms.Form):
    password = forms.CharField(
        strip=False,
        label="Your password",
        help_text="Changing where your money goes needs your password, every time.",
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
    )


def _destination_words(data: dict[str, Any]) -> str:
    if data.get("rail") == Rail.STRIPE:
        return "Stripe Connect (you finish on Stripe's pages)"
    iban = "".join((data.get("iban") or "").split())
    return f"bank transfer to {data.get('account_holder', '')}, IBAN ending {iban[-4:]}"


@login_required
def payout_method_edit(request: HttpRequest) -> HttpResponse:
    """Two steps: the new method, then the password to confirm it (a stolen session alone
    cannot redirect payouts). The details travel back in hidden fields of the second step."""
    try:
        creator_required(user=signed_in_user(request))
    except DomainError:
        return redirect("/creator/")
    method = payout_method_for_user(user=signed_in_user(request))
    confirming = request.method == "POST" and request.POST.get("step") == "confirm"
    form = PayoutMethodForm(
        request.POST or None,
        initial={
            "rail": method.rail if method else Rail.MANUAL,
            "account_holder": method.account_holder if method else "",
        },
    )
    if request.method != "POST" or not form.is_valid():
        return _method_page(request, form, method)
    confirm = PasswordConfirmForm(request.POST if confirming else None)
    if not confirming or not confirm.is_valid():
        return _confirm_page(request, form, confirm, method)
    try:
        result = payout_method_set(
            user=signed_in_user(request),
            password=confirm.cleaned_data["password"],
            rail=form.cleaned_data["rail"],
            account_holder=form.cleaned_data["account_holder"],
            iban=form.cleaned_data["iban"],
            refresh_url=request.build_absolute_uri("/creator/payout-method/"),
            return_url=request.build_absolute_uri("/creator/payout-method/return/"),
            request=request,
        )
    except PasswordIncorrect as exc:
        confirm.add_error("password", exc.message)
        return _confirm_page(request, form, confirm, method)
    except DomainError as exc:
        for name, errors in exc.fields.items():
            if name in form.fields:
                for error in errors:
                    form.add_error(name, error)
        if not exc.fields or "password" in exc.fields:
            form.add_error(None, exc.message)
        return _method_page(request, form, method)
    if result.onboarding_url:
        return redirect(result.onboarding_url)
    messages.success(request, "Payout method saved. Our team will verify it shortly.")
    return redirect("/creator/")


def _method_page(
    request: HttpRequest, form: PayoutMethodForm, method: PayoutMethod | None
) -> HttpResponse:
    return render(
        request,
        "payouts/method.html",
        {"form": form, "method": method, "hold_hours": settings.PAYOUT_DESTINATION_HOLD_HOURS},
    )


def _confirm_page(
    request: HttpRequest,
    form: PayoutMethodForm,
    confirm: PasswordConfirmForm,
    method: PayoutMethod | None,
) -> HttpResponse:
    return render(
        request,
        "payouts/method_confirm.html",
        {
            "form": form,
            "confirm": confirm,
            "method": method,
            "destination": _destination_words(form.cleaned_data),
            "hold_hours": settings.PAYOUT_DESTINATION_HOLD_HOURS,
        },
    )


@login_required
def payout_method_return(request: HttpRequest) -> HttpResponse:
    """Stripe onboarding sends the creator back here: ask Stripe where things stand."""
    method = payout_method_for_user(user=signed_in_user(request))
    if method is not None:
        try:
            method = payout_method_refresh(method=method)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("/creator/")
        if method.is_verified:
            messages.success(request, "Stripe is connected: you are ready for payouts.")
        else:
            messages.info(request, "Stripe still needs a few details before we can pay you.")
    return redirect("/creator/")


# --- Statements -------------------------------------------------------------------------------

# Beyond this many lines the page shows each group's totals only; the CSV and PDF have all.
STATEMENT_PAGE_LINES = 2000


@login_required
def payout_statement_page(request: HttpRequest, payout_id: int) -> HttpResponse:
    statement = payout_statement(payout=_own_payout(request, payout_id))
    words = payout_status_words(statement.payout)
    return render(
        request,
        "payouts/statement.html",
        {
            "statement": statement,
            "payout": statement.payout,
            "words": words,
            "show_lines": len(statement.lines) <= STATEMENT_PAGE_LINES,
        },
    )


def _own_payout(request: HttpRequest, payout_id: int) -> Payout:
    try:
        return payout_for_creator(user=signed_in_user(request), payout_id=payout_id)
    except DomainError:
        raise Http404("No such payout.")


def _statement_download(
    request: HttpRequest,
    payout_id: int,
    *,
    render_as: Callable[[Statement], str | bytes],
    content_type: str,
    extension: str,
) -> HttpResponse:
    statement = payout_statement(payout=_own_payout(request, payout_id))
    response = HttpResponse(render_as(statement), content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="applause-payout-{payout_id}-statement.{extension}"'
    )
    return response


@login_required
def payout_statement_csv(request: HttpRequest, payout_id: int) -> HttpResponse:
    return _statement_download(
        request,
        payout_id,
        render_as=statement_csv,
        content_type="text/csv; charset=utf-8",
        extension="csv",
    )


@login_required
def payout_statement_pdf(request: HttpRequest, payout_id: int) -> HttpResponse:
    return _statement_download(
        request, payout_id, render_as=statement_pdf, content_type="application/pdf", extension="pdf"
    )


@login_required
def gift_trace_page(request: HttpRequest) -> HttpResponse:
    """Follow a gift by its ledger transaction id (the sender's debit) to its payout."""
    raw = (request.GET.get("tx") or "").strip().lstrip("#")
    trace, error = None, ""
    if raw:
        if not raw.isdigit() or len(raw) > 18:
            error = "A ledger transaction id is a number, as shown on your statements."
        else:
            try:
                trace = gift_trace(user=signed_in_user(request), transaction_id=int(raw))
            except DomainError as exc:
                error = exc.message
    return render(
        request, "payouts/trace.html", {"trace": trace, "error": error, "query": raw}, status=200
    )


@require_http_methods(["GET", "POST"])
def payout_method_undo(request: HttpRequest, token: str) -> HttpResponse:
    """The undo link of the "payout destination changed" email: no sign-in needed (the signed
    token is the proof, and it can only restore the owner's previous destination)."""
    from payouts.destination import UndoRefused, destination_change_read, destination_change_undo

    try:
        change = destination_change_read(token=token)
        if request.method == "POST":
            destination_change_undo(token=token, request=request)
            return render(request, "payouts/method_undo.html", {"done": True, "change": change})
    except UndoRefused as exc:
        return render(request, "payouts/method_undo.html", {"error": exc.message}, status=400)
    return render(request, "payouts/method_undo.html", {"change": change})


# --- Cash out now -------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def cash_out(request: HttpRequest) -> HttpResponse:
    """ "Cash out now": the quote first (what is sent, the fee, any hold), then a confirming
    POST of exactly the diamonds quoted. A payout already on its way is 409 ``payout_open``."""
    from payouts.instant import payout_instant_create, payout_instant_quote

    try:
        creator_required(user=signed_in_user(request))
    except DomainError:
        raise Http404 from None
    error: DomainError | None = None
    diamonds: int | None = None
    if request.method == "POST":
        try:
            diamonds = int(request.POST.get("diamonds", ""))
        except ValueError:
            diamonds = None
        try:
            payout = payout_instant_create(user=signed_in_user(request), diamonds=diamonds)
        except DomainError as exc:
            error = exc
        else:
            messages.success(
                request,
                f"Cash out #{payout.pk} requested: {payout.amount} "
                f"(fee {payout.fee}). We will email you as it goes.",
            )
            return redirect("/creator/#payouts-title")
    quote = None
    if error is None or error.code != "payout_open":
        try:
            quote = payout_instant_quote(user=signed_in_user(request), diamonds=diamonds)
        except DomainError as exc:
            error = error or exc
    status = error.status if error is not None and request.method == "POST" else 200
    if error is not None and error.code == "payout_open":
        status = 409
    return render(
        request,
        "payouts/cash_out.html",
        {"quote": quote, "error": error, "fee_pct": settings.INSTANT_PAYOUT_FEE_PCT},
        status=status,
    )
