"""Portal pages: set the payout method (the dashboard itself lives in ``creators``)."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from config.errors import DomainError
from payouts.models import Rail
from payouts.selectors import payout_method_for_user
from payouts.services import creator_of, payout_method_refresh, payout_method_set


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


@login_required
def payout_method_edit(request):
    try:
        creator_of(request.user)
    except DomainError:
        return redirect("/creator/")
    method = payout_method_for_user(user=request.user)
    form = PayoutMethodForm(
        request.POST or None,
        initial={
            "rail": method.rail if method else Rail.MANUAL,
            "account_holder": method.account_holder if method else "",
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            result = payout_method_set(
                user=request.user,
                rail=form.cleaned_data["rail"],
                account_holder=form.cleaned_data["account_holder"],
                iban=form.cleaned_data["iban"],
                refresh_url=request.build_absolute_uri("/creator/payout-method/"),
                return_url=request.build_absolute_uri("/creator/payout-method/return/"),
            )
        except DomainError as exc:
            for name, errors in exc.fields.items():
                if name in form.fields:
                    for error in errors:
                        form.add_error(name, error)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            if result.onboarding_url:
                return redirect(result.onboarding_url)
            messages.success(request, "Payout method saved. Our team will verify it shortly.")
            return redirect("/creator/")
    return render(request, "payouts/method.html", {"form": form, "method": method})


@login_required
def payout_method_return(request):
    """Stripe onboarding sends the creator back here: ask Stripe where things stand."""
    method = payout_method_for_user(user=request.user)
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
