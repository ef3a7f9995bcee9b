import uuid

from django import forms


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))


class AdjustForm(forms.Form):
    coins = forms.IntegerField(
        help_text="Positive credits the wallet, negative debits it (never below zero).",
        min_value=-(10**12),
        max_value=10**12,
    )
    reason = forms.CharField(max_length=500, widget=forms.Textarea(attrs={"rows": 2}))
    # One per rendered form: a double submit posts once (it is the ledger idempotency key).
    nonce = forms.UUIDField(widget=forms.HiddenInput, initial=uuid.uuid4)

    def clean_coins(self):
        coins = self.cleaned_data["coins"]
        if coins == 0:
            raise forms.ValidationError("Enter a non-zero number of coins.")
        return coins


class DecisionForm(forms.Form):
    note = forms.CharField(max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2}))
