"""Search through hubspot-api-client: filters, sorts, paging past 200 results, total."""

import json

import pytest
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputForCreate, PublicObjectSearchRequest
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.deals import BatchInputSimplePublicObjectBatchInputForCreate as DealBatch
from hubspot.crm.deals import PublicObjectSearchRequest as DealSearch


def make_contacts(hs, n):
    for start in range(0, n, 100):
        hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=[
            {"properties": {"email": f"c{i}@{'even' if i % 2 == 0 else 'odd'}.example.com", "firstname": f"N{i}"}}
            for i in range(start, min(n, start + 100))
        ]))


def test_paging_beyond_200(hs):
    make_contacts(hs, 450)
    seen, after = [], None
    while True:
        page = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
            filter_groups=[{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}],
            sorts=[{"propertyName": "hs_object_id", "direction": "ASCENDING"}],
            properties=["email"], limit=200, after=after,
        ))
        assert page.total == 450
        seen += [r.id for r in page.results]
        if not page.paging:
            break
        after = page.paging.next.after
    assert len(seen) == 450 and len(set(seen)) == 450
    assert seen == sorted(seen, key=int)


def test_filters_and_or(hs):
    make_contacts(hs, 20)
    page = hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(
        filter_groups=[
            {"filters": [{"propertyName": "email", "operator": "CONTAINS_TOKEN", "value": "*@even.example.com"},
                         {"propertyName": "firstname", "operator": "IN", "values": ["N2", "N3", "N4"]}]},
            {"filters": [{"propertyName": "firstname", "operator": "EQ", "value": "N7"}]},
        ],
        properties=["firstname"], limit=50,
    ))
    assert sorted(r.properties["firstname"] for r in page.results) == ["N2", "N4", "N7"]


def test_numeric_and_date_filters_on_deals(hs):
    hs.crm.deals.batch_api.create(DealBatch(inputs=[
        {"properties": {"dealname": f"D{i}", "amount": str(i * 100), "closedate": f"2026-01-{i + 1:02d}T00:00:00Z"}}
        for i in range(10)
    ]))
    page = hs.crm.deals.search_api.do_search(DealSearch(
        filter_groups=[{"filters": [{"propertyName": "amount", "operator": "BETWEEN", "value": "200", "highValue": "500"},
                                    {"propertyName": "closedate", "operator": "GTE", "value": "1767484800000"}]}],
        sorts=[{"propertyName": "amount", "direction": "DESCENDING"}],
        properties=["amount"], limit=10,
    ))
    # closedate >= 2026-01-04 → i >= 3; amount 200..500 → i in 2..5
    assert [r.properties["amount"] for r in page.results] == ["500", "400", "300"]
    assert page.results[0].properties["hs_lastmodifieddate"].endswith("Z")
    assert page.results[0].properties["hs_object_id"] == page.results[0].id


def test_limit_over_200_is_400(hs):
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.search_api.do_search(PublicObjectSearchRequest(limit=201))
    assert err.value.status == 400
    assert json.loads(err.value.body)["category"] == "VALIDATION_ERROR"
