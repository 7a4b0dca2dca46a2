"""The local AWS endpoint: moto's server as released, with one change to how its DynamoDB
backend rolls back a transaction.

moto backs up a transaction by deep-copying every table it touches, once per item of the
transaction, so each TransactWriteItems costs time in proportion to the table's size (a ledger of
ten thousand entries takes seconds per call). Here only the items the transaction touches are
saved, and put back if it fails: the same all-or-nothing outcome, at the cost of the items.
"""

import copy
import sys

from moto.dynamodb import models
from moto.server import main

_transact = models.DynamoDBBackend.transact_write_items


class _TablesStay:
    """Stands in for the `copy` module inside moto's DynamoDB models while a transaction runs:
    tables are not copied (the items are saved below); everything else is copied as usual."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        if isinstance(value, models.Table):
            return value
        return copy.deepcopy(value, memo)


def _key(table, op):
    if "Item" in op:
        attrs = op["Item"]
        key = {table.hash_key_attr: attrs[table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = attrs[table.range_key_attr]
        return key
    return op.get("Key")


def transact_write_items(self, transact_items):
    saved = []
    for entry in transact_items:
        _, op = next(iter(entry.items()))
        table = self.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = _key(table, op)
        if key is None:
            continue
        try:
            current = self.get_item(table.name, key)
        except Exception:  # an invalid key: the transaction refuses it before writing
            continue
        saved.append((table.name, key, None if current is None else copy.deepcopy(current.to_json()["Attributes"])))
    models.copy = _TablesStay()
    try:
        return _transact(self, transact_items)
    except Exception:
        for name, key, attrs in reversed(saved):
            if attrs is None:
                self.delete_item(name, key)
            else:
                self.put_item(name, attrs)
        raise
    finally:
        models.copy = copy


models.DynamoDBBackend.transact_write_items = transact_write_items


def _timed(path):
    """With LOCAL_AWS_TIMINGS set, the time spent per operation is written to that file every
    few seconds (to see what the local endpoint is busy with)."""
    import json
    import threading
    import time

    from moto.moto_server import werkzeug_app

    totals = {}
    lock = threading.Lock()
    call = werkzeug_app.DomainDispatcherApplication.__call__

    def timed_call(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET") or environ.get("PATH_INFO", "")
        began = time.monotonic()
        try:
            return call(self, environ, start_response)
        finally:
            spent = time.monotonic() - began
            with lock:
                count, total, worst = totals.get(target, (0, 0.0, 0.0))
                totals[target] = (count + 1, total + spent, max(worst, spent))

    def dump():
        while True:
            time.sleep(5)
            with lock:
                rows = {k: {"calls": c, "seconds": round(t, 2), "worst": round(w, 2)} for k, (c, t, w) in totals.items()}
            with open(path, "w") as out:
                json.dump(rows, out, indent=1, sort_keys=True)

    werkzeug_app.DomainDispatcherApplication.__call__ = timed_call
    threading.Thread(target=dump, daemon=True).start()


if __name__ == "__main__":
    import os

    if os.environ.get("LOCAL_AWS_TIMINGS"):
        _timed(os.environ["LOCAL_AWS_TIMINGS"])
    sys.exit(main())

