"""The local AWS endpoint (`tests/local-stack/scripts/moto_server.py`) changes how moto's
DynamoDB answers, for speed only: here the same calls go to it and to moto as released, and
every answer must be the same (items, their order, the pages' start keys, refusals)."""

import socket
import subprocess
import sys
import time

import boto3
import pytest
from botocore.exceptions import ClientError

from conftest import REPO

PATCHED = REPO / "tests" / "local-stack" / "scripts" / "moto_server.py"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def client(port):
    return boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{port}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


@pytest.fixture(scope="module")
def endpoints():
    ports = [free_port(), free_port()]
    commands = [
        [sys.executable, str(PATCHED), "-H", "127.0.0.1", "-p", str(ports[0])],
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(ports[1])],
    ]
    processes = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    try:
        clients = [client(p) for p in ports]
        deadline = time.time() + 30
        for c in clients:
            while True:
                try:
                    c.list_tables()
                    break
                except Exception:
                    if time.time() > deadline:
                        raise
                    time.sleep(0.2)
        yield clients
    finally:
        for p in processes:
            p.terminate()
            p.wait(timeout=10)


def fill(c):
    c.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": "S"} for a in ("pk", "sk", "g", "gs")],
        BillingMode="PAY_PER_REQUEST",
        GlobalSecondaryIndexes=[{
            "IndexName": "gsi1",
            "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}, {"AttributeName": "gs", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"},
        }],
    )
    # Written out of order, in two partitions, some with binary values.
    for n in [7, 3, 29, 0, 15, 22, 11, 5, 18, 26, 1, 9, 13, 20, 24, 2, 28, 6, 17, 10]:
        item = {
            "pk": {"S": "p" if n % 3 else "q"},
            "sk": {"S": f"link#{n:03}" if n % 5 else f"ptr#{n:03}"},
            "g": {"S": "G"},
            "gs": {"S": f"#{(30 - n) % 7:03}#{n}"},
            "doc": {"M": {"n": {"N": str(n)}, "l": {"L": [{"S": "ü"}, {"BOOL": True}, {"NULL": True}, {"N": "1.50"}]}, "e": {"M": {}}}},
        }
        if n % 4 == 0:
            item["bin"] = {"B": bytes([n, 0, 255])}
        c.put_item(TableName="t", Item=item)


def answers(c):
    out = []

    def call(name, **kwargs):
        try:
            answer = getattr(c, name)(**kwargs)
            answer.pop("ResponseMetadata", None)
            out.append(answer)
            return answer
        except ClientError as e:
            out.append(("refused", e.response["Error"]["Code"]))
            return {}

    def pages(**kwargs):
        start = None
        while True:
            page = call("query", **kwargs, **({"ExclusiveStartKey": start} if start else {}))
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    pages(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}, Limit=3)
    pages(TableName="t", KeyConditionExpression="pk = :p and begins_with(sk, :s)",
          ExpressionAttributeValues={":p": {"S": "p"}, ":s": {"S": "link#"}}, Limit=4)
    pages(TableName="t", KeyConditionExpression="pk = :p and sk between :a and :b",
          ExpressionAttributeValues={":p": {"S": "p"}, ":a": {"S": "link#005"}, ":b": {"S": "link#020"}}, Limit=2)
    pages(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "q"}},
          Limit=2, ScanIndexForward=False)
    pages(TableName="t", IndexName="gsi1", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "G"}}, Limit=4)
    pages(TableName="t", IndexName="gsi1", KeyConditionExpression="g = :g and begins_with(gs, :s)",
          ExpressionAttributeValues={":g": {"S": "G"}, ":s": {"S": "#002"}}, Limit=1)
    call("query", TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
    call("query", TableName="t", IndexName="nope", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": {"S": "G"}})
    call("get_item", TableName="t", Key={"pk": {"S": "p"}, "sk": {"S": "link#007"}})
    call("get_item", TableName="t", Key={"pk": {"S": "p"}, "sk": {"S": "link#999"}})
    call("batch_get_item", RequestItems={"t": {"Keys": [{"pk": {"S": "p"}, "sk": {"S": "link#001"}}, {"pk": {"S": "q"}, "sk": {"S": "ptr#000"}}]}})
    call("scan", TableName="t", Limit=6)
    # A transaction that fails leaves everything as it was.
    call("transact_write_items", TransactItems=[
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "p"}, "sk": {"S": "link#100"}, "g": {"S": "G"}, "gs": {"S": "#x"}}}},
        {"Put": {"TableName": "t", "Item": {"pk": {"S": "p"}, "sk": {"S": "link#007"}}, "ConditionExpression": "attribute_not_exists(pk)"}},
    ])
    pages(TableName="t", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "p"}}, Limit=50)
    return out


def test_the_local_endpoint_answers_as_moto_does(endpoints):
    patched, released = endpoints
    for c in endpoints:
        fill(c)
    mine, theirs = answers(patched), answers(released)
    assert len(mine) == len(theirs)
    for n, (a, b) in enumerate(zip(mine, theirs)):
        assert a == b, f"answer {n} differs"
    assert any(isinstance(a, dict) and a.get("LastEvaluatedKey") for a in mine), "pages were read"
    refused = {a[1] for a in mine if isinstance(a, tuple)}
    assert refused >= {"TransactionCanceledException"}, refused
