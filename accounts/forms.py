from django import forms
from django.contrib.auth.forms import AuthenticationForm


class SignupForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+\Z",
        min_length=3,
        max_length=150,
        help_text="Letters, digits and @/./+/-/_ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    date_of_birth = forms.DateField(
        help_text="You must be 18 or older to buy coins and send gifts.",
        widget=forms.DateInput(attrs={"type": "date", "autocomplete": "bday"}),
    )
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text="At least 8 characters, not a common password.",
    )


class LoginForm(AuthenticationForm):
    pass
