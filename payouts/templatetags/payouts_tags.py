from django import template

from payouts.selectors import payout_panel

register = template.Library()


@register.simple_tag
def payout_panel_for(user):
    """The creator dashboard's payout panel data (``creators/_payouts.html``)."""
    return payout_panel(user=user)
