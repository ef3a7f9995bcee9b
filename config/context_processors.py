def portal(request):
    """The signed-in user's coin balance for the header pill."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from wallets.selectors import wallet_find

    wallet = wallet_find(user=user)
    return {"header_coins": wallet.balance if wallet else 0}
