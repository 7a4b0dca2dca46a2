"""The local AWS endpoint: moto's server as released, with two changes to its DynamoDB backend
that keep every answer the same and only cut the time it takes.

First, how it rolls back a transaction.

moto backs up a transaction by deep-copying every table it touches, once per item of the
transaction, so each TransactWriteItems costs time in proportion to the table's size (a ledger of
ten thousand entries takes seconds per call). Here only the items the transaction touches are
saved, and put back if it fails: the same all-or-nothing outcome, at the cost of the items.

Second, what a query looks through. moto answers each Query by sorting every item of the table
(`Table.all_items`), then keeping the partition asked for and sorting that again; a page of a
partition in a table of 100,000 items takes seconds. Here a query of the table looks only at its
partition, and a query of an index at the items unsorted: moto sorts what it keeps itself, by the
full key, so the answer is the same.

Third, how it writes what it read. moto serializes every answer by walking the operation's
shape, attribute by attribute (a page of a thousand ledger entries takes seconds); the answers
of DynamoDB's reads are already their wire format (attribute values as `{"S": …}`), so they are
written with `json.dumps` as they are. Anything `json.dumps` cannot write goes the usual way.
"""

import copy
import json
import sys
import threading

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

_query = models.Table.query
_all_items = models.Table.all_items
# The items a query running on this thread looks through (the server answers on many threads).
_looking = threading.local()


def all_items(self):
    override = getattr(_looking, "items", None)
    if override is not None and override[0] is self:
        return override[1]
    return _all_items(self)


def query(self, hash_key, *args, **kwargs):
    index_name = kwargs.get("index_name")
    if index_name is None and len(args) >= 7:
        index_name = args[6]
    if self.range_key_attr is None:
        return _query(self, hash_key, *args, **kwargs)
    if index_name is None:
        partition = self.items.get(hash_key, {}) if hash_key is not None else {}
        candidates = list(partition.values())
        args, kwargs, candidates = _after_start_key(self, args, kwargs, candidates)
    else:
        candidates = [item for items in list(self.items.values()) for item in list(items.values())]
    _looking.items = (self, candidates)
    try:
        return _query(self, hash_key, *args, **kwargs)
    finally:
        _looking.items = None


def _after_start_key(table, args, kwargs, candidates):
    """A forward page of a partition with string sort keys: the items after the start key
    instead of all of them, found by comparing the keys as strings (the order DynamoDB gives
    them: UTF-8 byte order is code point order), and no start key left for moto to skip to one
    item at a time."""
    args = list(args)
    start = args[3] if len(args) > 3 else kwargs.get("exclusive_start_key")
    forward = args[4] if len(args) > 4 else kwargs.get("scan_index_forward", True)
    key = (start or {}).get(table.range_key_attr) or {}
    if not start or forward is False or set(key) != {"S"}:
        return tuple(args), kwargs, candidates
    if any(item.range_key is None or item.range_key.type != "S" for item in candidates):
        return tuple(args), kwargs, candidates
    after = key["S"]
    kept = sorted(
        (item for item in candidates if item.range_key.value > after),
        key=lambda item: item.range_key.value,
    )
    if len(args) > 3:
        args[3] = None
    else:
        kwargs["exclusive_start_key"] = None
    return tuple(args), kwargs, kept


from moto.core import responses as core_responses

_execute_result = core_responses.ActionResult.execute_result
_PLAIN_READS = {"Query", "Scan", "GetItem", "BatchGetItem"}


def execute_result(self, context):
    operation = getattr(context.operation_model, "name", None)
    service = getattr(context.service_model, "service_name", None)
    result = self.result
    if service == "dynamodb" and operation in _PLAIN_READS and isinstance(result, dict):
        try:
            body = json.dumps(result, separators=(",", ":"))
        except (TypeError, ValueError):
            return _execute_result(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body
    return _execute_result(self, context)


core_responses.ActionResult.execute_result = execute_result
models.Table.all_items = all_items
models.Table.query = query


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

