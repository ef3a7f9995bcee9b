"""TEST DOUBLE: the Stripe Connect stand-in (payouts/connect_standin.py), as the tests use it:
in-process, on a free port, accounts able to receive transfers from the start."""

from payouts.connect_standin import ConnectStandIn as ConnectFake

__all__ = ["ConnectFake"]
