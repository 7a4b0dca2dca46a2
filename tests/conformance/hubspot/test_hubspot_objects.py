"""The same CRUD, batch, upsert and search flow on every object API the integration uses
(companies, deals, products, line items, invoices), through each API's own client package."""

import importlib
import json

import pytest
from hubspot.crm.properties import PropertyCreate

# (client attribute path, package, properties API object type, a valid create body)
OBJECTS = [
    ("companies", "hubspot.crm.companies", "companies", {"name": "Acme", "domain": "acme.example"}),
    ("deals", "hubspot.crm.deals", "deals", {"dealname": "Deal", "amount": "10.00"}),
    ("products", "hubspot.crm.products", "products", {"name": "Widget", "price": "9.99"}),
    ("line_items", "hubspot.crm.line_items", "line_items", {"name": "Widget", "price": "9.99", "quantity": "2"}),
    ("commerce.invoices", "hubspot.crm.commerce.invoices", "invoices", {"hs_currency": "USD"}),
]


def api_of(hs, path):
    node = hs.crm
    for part in path.split("."):
        node = getattr(node, part)
    return node


@pytest.mark.parametrize("path,package,object_type,body", OBJECTS, ids=[o[2] for o in OBJECTS])
def test_object_api_flow(hs, path, package, object_type, body):
    api = api_of(hs, path)
    models = importlib.import_module(package)
    exceptions = importlib.import_module(package + ".exceptions")

    # basic
    created = api.basic_api.create(models.SimplePublicObjectInputForCreate(properties=body))
    got = api.basic_api.get_by_id(created.id, properties=list(body))
    assert {k: got.properties[k] for k in body} == body
    api.basic_api.update(created.id, models.SimplePublicObjectInput(properties=body))
    with pytest.raises(exceptions.ApiException) as err:
        api.basic_api.update(created.id, models.SimplePublicObjectInput(properties={"not_a_property": "1"}))
    assert err.value.status == 400
    assert json.loads(err.value.body)["category"] == "VALIDATION_ERROR"
    api.basic_api.archive(created.id)
    with pytest.raises(exceptions.NotFoundException):
        api.basic_api.get_by_id(created.id)

    # a custom unique property to upsert by
    hs.crm.properties.core_api.create(object_type, PropertyCreate(
        name="qbo_id", label="QBO id", type="string", field_type="text",
        group_name=hs.crm.properties.groups_api.get_all(object_type).results[0].name, has_unique_value=True,
    ))

    # batch create / update / upsert
    batch = api.batch_api.create(models.BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": dict(body, qbo_id=f"Q{i}")} for i in range(210)][:100]
    ))
    assert len(batch.results) == 100
    ids = [r.id for r in batch.results]
    more = api.batch_api.create(models.BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": dict(body, qbo_id=f"Q{i}")} for i in range(100, 210)][:100]
    ))
    ids += [r.id for r in more.results]
    api.batch_api.create(models.BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": dict(body, qbo_id=f"Q{i}")} for i in range(200, 210)]
    ))
    updated = api.batch_api.update(models.BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"qbo_id": f"U{n}"}} for n, i in enumerate(ids[:5])]
    ))
    assert sorted(r.properties["qbo_id"] for r in updated.results) == [f"U{n}" for n in range(5)]
    upserted = api.batch_api.upsert(models.BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "U0", "idProperty": "qbo_id", "properties": body},
        {"id": "NEW-1", "idProperty": "qbo_id", "properties": body},
    ]))
    assert sorted((r.properties["qbo_id"], r.new) for r in upserted.results) == [("NEW-1", True), ("U0", False)]

    # search: 211 live records; page through them 200 at a time
    seen, after = [], None
    while True:
        page = api.search_api.do_search(models.PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "qbo_id", "operator": "HAS_PROPERTY"}]}],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["qbo_id"], limit=200, after=after,
        ))
        assert page.total == 211
        seen += [r.id for r in page.results]
        if not page.paging:
            break
        after = page.paging.next.after
    assert len(set(seen)) == 211
    only = api.search_api.do_search(models.PublicObjectSearchRequest(
        filter_groups=[{"filters": [{"propertyName": "qbo_id", "operator": "EQ", "value": "NEW-1"}]}],
    ))
    assert only.total == 1
