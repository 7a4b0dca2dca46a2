"""CRM objects through hubspot-api-client: basic CRUD, batch, errors as typed exceptions."""

import json

import pytest
from hubspot.crm.companies import SimplePublicObjectInputForCreate as CompanyCreate
from hubspot.crm.contacts import (
    BatchInputSimplePublicObjectBatchInput,
    BatchInputSimplePublicObjectBatchInputForCreate,
    BatchInputSimplePublicObjectBatchInputUpsert,
    BatchReadInputSimplePublicObjectId,
    SimplePublicObjectInput,
    SimplePublicObjectInputForCreate,
)
from hubspot.crm.contacts.exceptions import ApiException, NotFoundException
from hubspot.crm.deals import SimplePublicObjectInputForCreate as DealCreate
from hubspot.crm.line_items import SimplePublicObjectInputForCreate as LineItemCreate
from hubspot.crm.products import SimplePublicObjectInputForCreate as ProductCreate
from hubspot.crm.commerce.invoices import SimplePublicObjectInputForCreate as InvoiceCreate
from hubspot.crm.commerce.invoices import SimplePublicObjectInput as InvoiceUpdate


def test_contact_create_get_update_archive(hs):
    created = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "ann@example.com", "firstname": "Ann"})
    )
    assert created.id.isdigit()
    assert created.properties["email"] == "ann@example.com"
    assert created.properties["hs_object_id"] == created.id
    got = hs.crm.contacts.basic_api.get_by_id(created.id, properties=["email", "firstname", "lastmodifieddate"])
    assert got.properties["firstname"] == "Ann"
    assert got.updated_at is not None
    before = got.properties["lastmodifieddate"]
    updated = hs.crm.contacts.basic_api.update(created.id, SimplePublicObjectInput(properties={"lastname": "Lee"}))
    assert updated.properties["lastname"] == "Lee"
    assert updated.properties["lastmodifieddate"] >= before
    by_email = hs.crm.contacts.basic_api.get_by_id("ann@example.com", id_property="email")
    assert by_email.id == created.id
    hs.crm.contacts.basic_api.archive(created.id)
    with pytest.raises(NotFoundException) as err:
        hs.crm.contacts.basic_api.get_by_id(created.id)
    body = json.loads(err.value.body)
    assert body["category"] == "OBJECT_NOT_FOUND"
    assert body["correlationId"]
    archived = hs.crm.contacts.basic_api.get_by_id(created.id, archived=True)
    assert archived.archived is True


def test_unknown_property_is_validation_error(hs):
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"nope": "x"}))
    assert err.value.status == 400
    body = json.loads(err.value.body)
    assert body["category"] == "VALIDATION_ERROR"
    assert "PROPERTY_DOESNT_EXIST" in body["message"]


def test_duplicate_email_is_conflict(hs):
    hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "dup@example.com"}))
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "DUP@example.com"}))
    assert err.value.status == 409
    assert "Existing ID" in json.loads(err.value.body)["message"]


def test_companies_deals_products_line_items_invoices(hs):
    company = hs.crm.companies.basic_api.create(CompanyCreate(properties={"name": "Acme", "domain": "acme.example"}))
    assert company.properties["name"] == "Acme"
    product = hs.crm.products.basic_api.create(ProductCreate(properties={"name": "Widget", "price": "19.99", "hs_sku": "W-1"}))
    deal = hs.crm.deals.basic_api.create(DealCreate(properties={"dealname": "Big deal", "amount": "1500.50", "pipeline": "default", "dealstage": "closedwon"}))
    assert deal.properties["amount"] == "1500.50"
    line = hs.crm.line_items.basic_api.create(LineItemCreate(
        properties={"name": "Widget", "price": "19.99", "quantity": "3", "hs_product_id": product.id},
        associations=[{"to": {"id": deal.id}, "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 20}]}],
    ))
    got = hs.crm.line_items.basic_api.get_by_id(line.id, properties=["amount", "quantity"], associations=["deals"])
    assert got.properties["amount"] == "59.97"
    assert got.associations["deals"].results[0].id == deal.id
    invoice = hs.crm.commerce.invoices.basic_api.create(InvoiceCreate(properties={"hs_currency": "USD"}))
    inv = hs.crm.commerce.invoices.basic_api.get_by_id(invoice.id, properties=["hs_invoice_status", "hs_currency"])
    assert inv.properties["hs_invoice_status"] == "draft"
    # Out of draft only with a contact and a line item; the amounts are HubSpot's to compute.
    with pytest.raises(Exception) as err:
        hs.crm.commerce.invoices.basic_api.update(invoice.id, InvoiceUpdate(properties={"hs_invoice_status": "open"}))
    assert err.value.status == 400
    assert "associated with a contact" in json.loads(err.value.body)["message"]
    with pytest.raises(Exception) as err:
        hs.crm.commerce.invoices.basic_api.update(invoice.id, InvoiceUpdate(properties={"hs_balance_due": "0"}))
    assert err.value.status == 400
    buyer = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"email": "buyer@example.com"}))
    hs.crm.associations.v4.basic_api.create_default("invoices", invoice.id, "contacts", buyer.id)
    billed = hs.crm.line_items.basic_api.create(LineItemCreate(properties={"name": "Widget", "price": "19.99", "quantity": "3"}))
    hs.crm.associations.v4.basic_api.create_default("invoices", invoice.id, "line_items", billed.id)
    hs.crm.commerce.invoices.basic_api.update(invoice.id, InvoiceUpdate(properties={"hs_invoice_status": "open"}))
    amounts = ["hs_invoice_status", "hs_amount_billed", "hs_balance_due"]
    inv = hs.crm.commerce.invoices.basic_api.get_by_id(invoice.id, properties=amounts)
    assert [inv.properties[p] for p in amounts] == ["open", "59.97", "59.97"]
    payment = hs.crm.objects.basic_api.create("commerce_payments", {"properties": {
        "hs_initial_amount": "59.97", "hs_initiated_date": "2026-03-01T00:00:00Z", "hs_latest_status": "succeeded"}})
    hs.crm.associations.v4.basic_api.create_default("commerce_payments", payment.id, "invoices", invoice.id)
    inv = hs.crm.commerce.invoices.basic_api.get_by_id(invoice.id, properties=amounts)
    assert [inv.properties[p] for p in amounts] == ["paid", "59.97", "0.00"]
    hs.crm.objects.basic_api.archive("commerce_payments", payment.id)
    inv = hs.crm.commerce.invoices.basic_api.get_by_id(invoice.id, properties=amounts)
    assert [inv.properties[p] for p in amounts] == ["open", "59.97", "59.97"]
    page = hs.crm.commerce.invoices.basic_api.get_page(limit=10)
    assert [r.id for r in page.results] == [invoice.id]
    with pytest.raises(Exception) as err:
        hs.crm.commerce.invoices.basic_api.create(InvoiceCreate(properties={"hs_invoice_status": "draft"}))
    assert err.value.status == 400


def test_list_paging(hs):
    inputs = [{"properties": {"email": f"p{i}@example.com"}} for i in range(25)]
    hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(inputs=inputs))
    seen, after = [], None
    while True:
        page = hs.crm.contacts.basic_api.get_page(limit=10, after=after, properties=["email"])
        seen += [r.properties["email"] for r in page.results]
        if not page.paging:
            break
        after = page.paging.next.after
    assert len(seen) == 25 and len(set(seen)) == 25


def test_batch_create_update_upsert_read(hs):
    created = hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(
        inputs=[{"properties": {"email": f"b{i}@example.com", "firstname": f"B{i}"}} for i in range(3)]
    ))
    assert created.status == "COMPLETE" and len(created.results) == 3
    ids = [r.id for r in created.results]
    updated = hs.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": i, "properties": {"lastname": "Batch"}} for i in ids]
    ))
    assert all(r.properties["lastname"] == "Batch" for r in updated.results)
    upserted = hs.crm.contacts.batch_api.upsert(BatchInputSimplePublicObjectBatchInputUpsert(inputs=[
        {"id": "b0@example.com", "idProperty": "email", "properties": {"firstname": "Zero"}},
        {"id": "new@example.com", "idProperty": "email", "properties": {"firstname": "New"}},
    ]))
    by_new = {r.properties["email"]: r.new for r in upserted.results}
    assert by_new == {"b0@example.com": False, "new@example.com": True}
    read = hs.crm.contacts.batch_api.read(BatchReadInputSimplePublicObjectId(
        inputs=[{"id": ids[0]}, {"id": "999999"}], properties=["firstname"]
    ))
    # 207: the client returns the WithErrors model.
    assert read.num_errors == 1
    assert read.errors[0].category == "OBJECT_NOT_FOUND"
    assert read.results[0].properties["firstname"] == "Zero"


def test_batch_limit_is_400(hs):
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.batch_api.create(BatchInputSimplePublicObjectBatchInputForCreate(
            inputs=[{"properties": {"firstname": str(i)}} for i in range(101)]
        ))
    assert err.value.status == 400
    assert json.loads(err.value.body)["category"] == "VALIDATION_ERROR"


def test_batch_update_partial_failure_is_207(hs):
    c = hs.crm.contacts.basic_api.create(SimplePublicObjectInputForCreate(properties={"firstname": "X"}))
    result = hs.crm.contacts.batch_api.update(BatchInputSimplePublicObjectBatchInput(
        inputs=[{"id": c.id, "properties": {"lastname": "Y"}}, {"id": "424242", "properties": {"lastname": "Z"}}]
    ))
    assert result.num_errors == 1
    assert result.errors[0].context["ids"] == ["424242"]
    assert result.results[0].properties["lastname"] == "Y"


def test_contacts_merge_into_a_new_record_that_old_ids_read_as(hs):
    from hubspot.crm.contacts import PublicMergeInput

    first = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "kim@example.com", "firstname": "Kim"})
    )
    second = hs.crm.contacts.basic_api.create(
        SimplePublicObjectInputForCreate(properties={"email": "kim.old@example.com", "lastname": "Lee", "phone": "555-0100"})
    )
    merged = hs.crm.contacts.basic_api.merge(
        PublicMergeInput(primary_object_id=first.id, object_id_to_merge=second.id)
    )
    assert merged.id not in (first.id, second.id)
    got = hs.crm.contacts.basic_api.get_by_id(
        merged.id, properties=["email", "firstname", "lastname", "phone", "hs_merged_object_ids", "hs_additional_emails"]
    )
    # The primary's values win; the secondary fills the gaps.
    assert (got.properties["email"], got.properties["firstname"], got.properties["lastname"]) == ("kim@example.com", "Kim", "Lee")
    assert sorted(got.properties["hs_merged_object_ids"].split(";")) == sorted([first.id, second.id])
    assert got.properties["hs_additional_emails"] == "kim.old@example.com"
    # An old id reads as the merged record; lists and search show only the merged record.
    assert hs.crm.contacts.basic_api.get_by_id(second.id).id == merged.id
    listed = [c.id for c in hs.crm.contacts.basic_api.get_page(limit=100).results]
    assert merged.id in listed and first.id not in listed and second.id not in listed
    read = hs.crm.contacts.batch_api.read(
        BatchReadInputSimplePublicObjectId(inputs=[{"id": first.id}], properties=["email"])
    )
    assert [r.id for r in read.results] == [merged.id]
    with pytest.raises(ApiException) as err:
        hs.crm.contacts.basic_api.merge(PublicMergeInput(primary_object_id=merged.id, object_id_to_merge=merged.id))
    assert err.value.status == 400
