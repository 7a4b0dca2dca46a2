"""Associations v4 and the properties API through hubspot-api-client."""

import json

import pytest
from hubspot.crm.associations.v4 import AssociationSpec, BatchInputPublicAssociationMultiPost, BatchInputPublicFetchAssociationsBatchRequest
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate
from hubspot.crm.contacts import SimplePublicObjectInputForCreate as ContactCreate
from hubspot.crm.contacts.exceptions import ApiException
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hubspot.crm.properties import PropertyCreate, PropertyGroupCreate
from hubspot.crm.properties.exceptions import ApiException as PropertiesApiException
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInputUpsert


def test_primary_company_both_directions(hs):
    contact = hs.crm.contacts.basic_api.create(ContactCreate(properties={"email": "a@acme.example"}))
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme"}))
    labels = hs.crm.associations.v4.basic_api.create(
        "contacts", contact.id, "companies", company.id,
        [AssociationSpec(association_category="HUBSPOT_DEFINED", association_type_id=1)],
    )
    assert labels.labels == ["Primary"]
    forward = hs.crm.associations.v4.basic_api.get_page("contacts", contact.id, "companies")
    assert str(forward.results[0].to_object_id) == company.id
    assert sorted(t.type_id for t in forward.results[0].association_types) == [1, 279]
    back = hs.crm.associations.v4.basic_api.get_page("companies", company.id, "contacts")
    assert sorted(t.type_id for t in back.results[0].association_types) == [2, 280]
    c = hs.crm.contacts.basic_api.get_by_id(contact.id, properties=["associatedcompanyid"], associations=["companies"])
    assert c.properties["associatedcompanyid"] == company.id
    types = sorted(r.type for r in c.associations["companies"].results)
    assert types == ["contact_to_company", "contact_to_company_unlabeled"]
    hs.crm.associations.v4.basic_api.archive("contacts", contact.id, "companies", company.id)
    assert hs.crm.associations.v4.basic_api.get_page("companies", company.id, "contacts").results == []


def test_default_and_batch(hs):
    deal = hs.crm.deals.basic_api.create(DealCreate(properties={"dealname": "D"}))
    contacts = [hs.crm.contacts.basic_api.create(ContactCreate(properties={"firstname": str(i)})) for i in range(3)]
    hs.crm.associations.v4.basic_api.create_default("deals", deal.id, "contacts", contacts[0].id)
    hs.crm.associations.v4.batch_api.create("deals", "contacts", BatchInputPublicAssociationMultiPost(inputs=[
        {"from": {"id": deal.id}, "to": {"id": c.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}]}
        for c in contacts[1:]
    ]))
    read = hs.crm.associations.v4.batch_api.get_page("deals", "contacts", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": deal.id}]
    ))
    assert sorted(str(t.to_object_id) for t in read.results[0].to) == sorted(c.id for c in contacts)
    back = hs.crm.associations.v4.batch_api.get_page("contacts", "deals", BatchInputPublicFetchAssociationsBatchRequest(
        inputs=[{"id": c.id} for c in contacts]
    ))
    assert all(r.to[0].association_types[0].type_id == 4 for r in back.results)


def test_custom_unique_property_and_upsert(hs):
    hs.crm.properties.groups_api.create("contacts", PropertyGroupCreate(name="quickbooks_sync", label="QuickBooks sync"))
    created = hs.crm.properties.core_api.create("contacts", PropertyCreate(
        name="qbo_customer_id", label="QBO customer id", type="string", field_type="text",
        group_name="quickbooks_sync", has_unique_value=True,
    ))
    assert created.has_unique_value is True
    names = [p.name for p in hs.crm.properties.core_api.get_all("contacts").results]
    assert "qbo_customer_id" in names and "email" in names
    assert hs.crm.properties.core_api.get_by_name("contacts", "qbo_customer_id").group_name == "quickbooks_sync"
    result = hs.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "QB-1", "idProperty": "qbo_customer_id", "properties": {"firstname": "One"}},
    ]))
    assert result.results[0].new is True
    again = hs.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "QB-1", "idProperty": "qbo_customer_id", "properties": {"lastname": "Uno"}},
    ]))
    assert again.results[0].new is False and again.results[0].id == result.results[0].id
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.basic_api.create(ContactCreate(properties={"qbo_customer_id": "QB-1"}))
    assert err.value.status == 409
    with pytest.raises(PropertiesApiException) as err:
        hs.crm.properties.core_api.create("contacts", PropertyCreate(
            name="qbo_customer_id", label="again", type="string", field_type="text", group_name="quickbooks_sync",
        ))
    assert err.value.status == 409
    with pytest.raises(PropertiesApiException) as err:
        hs.crm.properties.core_api.get_by_name("contacts", "no_such_property")
    assert err.value.status == 404
    assert json.loads(err.value.body)["category"] == "OBJECT_NOT_FOUND"
