from typing import TYPE_CHECKING

from django import template

from payouts.selectors import PayoutPanel, payout_panel

if TYPE_CHECKING:
    from accounts.models import User


register = template.Library()


@register.simple_tag
def payout_panel_for(user: "User") -> PayoutPanel:
    """The creator dashboard's payout panel data (``creators/_payouts.html``)."""
    return payout_panel(user=user)
