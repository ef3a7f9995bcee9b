#!/usr/bin/env python
"""Start localstripe with its state in memory only.

localstripe pickles its whole store to /tmp/localstripe.pickle after every write. That costs
time proportional to everything it holds, so a long run (``make chaos``: thousands of
PaymentIntents) slows down quadratically, and parallel instances overwrite one another's
file. We always start it ``--from-scratch`` (the file is never read back), so the dump buys
nothing: this launcher turns it off and then runs localstripe's own ``start()`` with the same
arguments (``--port``, ``--from-scratch``).
"""

from localstripe import resources, server


def _keep_in_memory(self) -> None:
    """Nothing to write: the state lives as long as the process."""


resources.Store.dump_to_disk = _keep_in_memory  # type: ignore[method-assign]

if __name__ == "__main__":
    server.start()
