#!/usr/bin/env python
"""Start localstripe with its state in memory only (and, asked to, honouring idempotency keys).

localstripe pickles its whole store to /tmp/localstripe.pickle after every write. That costs
time proportional to everything it holds, so a long run (``make chaos``: thousands of
PaymentIntents) slows down quadratically, and parallel instances overwrite one another's
file. We always start it ``--from-scratch`` (the file is never read back), so the dump buys
nothing: this launcher turns it off and then runs localstripe's own ``start()`` with the same
arguments (``--port``, ``--from-scratch``).

It also keeps an index of the store by object kind. localstripe lists a kind by scanning its
whole store, and a charge's ``refunds`` (read three times per exported charge, so for every
PaymentIntent it answers) is such a listing: each answer cost time proportional to everything
the store held, and a listing of all PaymentIntents (reconciliation: localstripe has no
``created`` filter) the square of it. ``make chaos``'s settle timed out on it (issue 23). The
index answers the same lists, in the same order (the store's insertion order), by kind.

``--honour-idempotency-keys`` (``make chaos``, which runs its own localstripe for one
database): a POST with an ``Idempotency-Key`` already answered is answered the same again
(``Idempotent-Replayed: true``), and a copy arriving while the first is in flight waits for
it, as Stripe does. localstripe itself ignores the header, so a request the client sent twice
(its network retry after a timeout, or our retry after Stripe was away) made two objects:
two refunds of one payment. The test suite's shared localstripe keeps the plain behaviour
(its test databases repeat ids, hence keys).
"""

import asyncio
import sys

from aiohttp import web
from localstripe import resources, server

FLAG = "--honour-idempotency-keys"


def _keep_in_memory(self) -> None:
    """Nothing to write: the state lives as long as the process."""


_answered: dict[tuple[str, str, str], tuple[int, bytes, str]] = {}
_in_flight: dict[tuple[str, str, str], asyncio.Future] = {}


@web.middleware
async def idempotency_middleware(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    ident = (request.headers.get("Authorization", ""), request.path, key)
    while ident in _in_flight:
        await asyncio.shield(_in_flight[ident])
    if ident in _answered:
        status, body, content_type = _answered[ident]
        response = web.Response(status=status, body=body, content_type=content_type)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    done = asyncio.get_running_loop().create_future()
    _in_flight[ident] = done
    try:
        response = await handler(request)
        if response.status < 500 and isinstance(response.body, bytes):
            _answered[ident] = (response.status, response.body, response.content_type)
        return response
    finally:
        del _in_flight[ident]
        done.set_result(None)


def _kind(key: str) -> str:
    """The kind of "charge:ch_…" is "charge"; a key without a colon (the balance) has none."""
    return key.split(":", 1)[0] if ":" in key else ""


def _by_kind(store: dict) -> dict[str, dict]:
    index = store.__dict__.get("_by_kind")
    if index is None:
        index = {}
        for key, value in dict.items(store):
            index.setdefault(_kind(key), {})[key] = value
        store.__dict__["_by_kind"] = index
    return index


def _set(self, key, value) -> None:
    dict.__setitem__(self, key, value)
    _by_kind(self).setdefault(_kind(key), {})[key] = value


def _delete(self, key) -> None:
    dict.__delitem__(self, key)
    _by_kind(self).get(_kind(key), {}).pop(key, None)


def _clear(self) -> None:
    dict.clear(self)
    self.__dict__["_by_kind"] = {}


def _update(self, *args, **kwargs) -> None:
    dict.update(self, *args, **kwargs)
    self.__dict__.pop("_by_kind", None)  # rebuilt from the store when next needed


@classmethod  # type: ignore[misc]
def _list_all_indexed(cls, url, limit=None, starting_after=None, **kwargs):
    """localstripe's StripeObject._api_list_all over the kind's index instead of the store."""
    if kwargs:
        raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
    li = resources.List(url, limit=limit, starting_after=starting_after)
    li._list = list(_by_kind(resources.store).get(cls.object, {}).values())
    return li


resources.Store.dump_to_disk = _keep_in_memory
resources.Store.__setitem__ = _set
resources.Store.__delitem__ = _delete
resources.Store.clear = _clear
resources.Store.update = _update
resources.StripeObject._api_list_all = _list_all_indexed

if __name__ == "__main__":
    if FLAG in sys.argv:
        sys.argv.remove(FLAG)
        # Innermost: after localstripe's error and auth middlewares (a refusal is raised,
        # not answered, in here: it is not kept, and the retry is asked afresh).
        server.app.middlewares.append(idempotency_middleware)
    server.start()
