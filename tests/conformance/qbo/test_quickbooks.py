"""python-quickbooks (unchanged) against the sandbox: CRUD, sparse update, query paging, CDC,
batch, delete/void, idempotency, and the error objects it builds from the sandbox's Fault codes."""

import datetime
import decimal

import pytest
from quickbooks.batch import batch_create, batch_delete
from quickbooks.cdc import change_data_capture
from quickbooks.exceptions import (
    AuthorizationException,
    ObjectNotFoundException,
    QuickbooksException,
    UnsupportedException,
    ValidationException,
)
from quickbooks.objects.account import Account
from quickbooks.objects.base import EmailAddress, Ref
from quickbooks.objects.customer import Customer
from quickbooks.objects.detailline import SalesItemLine, SalesItemLineDetail
from quickbooks.objects.estimate import Estimate
from quickbooks.objects.invoice import Invoice
from quickbooks.objects.item import Item
from quickbooks.objects.payment import Payment, PaymentLine

import conftest


def new_customer(qb, name, email=None):
    customer = Customer()
    customer.DisplayName = name
    customer.CompanyName = name + " Inc"
    if email:
        customer.PrimaryEmailAddr = EmailAddress()
        customer.PrimaryEmailAddr.Address = email
    return customer.save(qb=qb)


def item_ref(item_id="2"):
    ref = Ref()
    ref.value = item_id
    return ref


def new_invoice(qb, customer, amounts, model=Invoice):
    invoice = model()
    invoice.CustomerRef = customer.to_ref()
    for amount in amounts:
        line = SalesItemLine()
        line.Amount = amount
        line.SalesItemLineDetail = SalesItemLineDetail()
        line.SalesItemLineDetail.ItemRef = item_ref()
        invoice.Line.append(line)
    return invoice.save(qb=qb)


def test_customer_create_read_sparse_update(qb):
    created = new_customer(qb, "Conformance Carla", "carla@example.com")
    assert created.Id and created.SyncToken == "0"
    fetched = Customer.get(created.Id, qb=qb)
    assert fetched.DisplayName == "Conformance Carla"
    assert fetched.PrimaryEmailAddr.Address == "carla@example.com"

    sparse = Customer()
    sparse.Id = fetched.Id
    sparse.SyncToken = fetched.SyncToken
    sparse.sparse = True
    sparse.Notes = "VIP"
    updated = sparse.save(qb=qb)
    assert updated.SyncToken == "1"
    assert updated.Notes == "VIP"
    assert updated.CompanyName == "Conformance Carla Inc"

    # A full update from the fetched object also works and bumps the token again.
    fetched.SyncToken = updated.SyncToken
    fetched.CompanyName = "Renamed Inc"
    again = fetched.save(qb=qb)
    assert again.SyncToken == "2"
    assert again.CompanyName == "Renamed Inc"


def test_stale_sync_token_raises_5010(qb):
    created = new_customer(qb, "Stale Stan")
    first = Customer.get(created.Id, qb=qb)
    second = Customer.get(created.Id, qb=qb)
    first.Notes = "first writer"
    first.save(qb=qb)
    second.Notes = "second writer"
    with pytest.raises(QuickbooksException) as err:
        second.save(qb=qb)
    assert err.value.error_code == 5010
    assert err.value.message == "Stale Object Error"


def test_duplicate_display_name_raises_6240(qb):
    new_customer(qb, "Dupe Dana")
    with pytest.raises(QuickbooksException) as err:
        new_customer(qb, "Dupe Dana")
    assert err.value.error_code == 6240


def test_missing_and_unsupported(qb):
    with pytest.raises(ObjectNotFoundException) as err:
        Invoice.get(999999, qb=qb)
    assert err.value.error_code == 610
    customer = new_customer(qb, "Undeletable Ursula")
    with pytest.raises(UnsupportedException) as err:
        qb.delete_object("Customer", '{"Id": "%s", "SyncToken": "0"}' % customer.Id)
    assert err.value.error_code == 500
    invoice = Invoice()
    invoice.Line.append(SalesItemLine())
    with pytest.raises(ValidationException) as err:
        invoice.save(qb=qb)
    assert err.value.error_code == 2020


def test_items_with_and_without_sku(qb):
    income = Account.where("Name = 'Services'", qb=qb)[0]
    for name, sku in [("Widget A", "W-A"), ("Widget B", None)]:
        item = Item()
        item.Name = name
        item.Type = "Service"
        item.UnitPrice = 12.5
        item.IncomeAccountRef = income.to_ref()
        if sku:
            item.Sku = sku
        item.save(qb=qb)
    items = {i.Name: i for i in Item.all(qb=qb)}
    assert items["Widget A"].Sku == "W-A"
    assert not getattr(items["Widget B"], "Sku", None)
    assert items["Widget A"].UnitPrice == 12.5
    dup = Item()
    dup.Name = "Widget A"
    dup.Type = "Service"
    dup.IncomeAccountRef = income.to_ref()
    with pytest.raises(QuickbooksException) as err:
        dup.save(qb=qb)
    assert err.value.error_code == 6240


def test_invoice_payment_void_delete(qb):
    customer = new_customer(qb, "Invoice Ivan")
    invoice = new_invoice(qb, customer, [100, 50])
    assert invoice.DocNumber == "1001"
    assert invoice.TotalAmt == 150
    assert invoice.Balance == 150

    payment = Payment()
    payment.CustomerRef = customer.to_ref()
    payment.TotalAmt = 60
    line = PaymentLine()
    line.Amount = 60
    line.LinkedTxn.append(invoice.to_linked_txn())
    payment.Line.append(line)
    payment = payment.save(qb=qb)
    assert payment.Id

    invoice = Invoice.get(invoice.Id, qb=qb)
    assert invoice.Balance == 90
    assert [(t.TxnId, t.TxnType) for t in invoice.LinkedTxn] == [(payment.Id, "Payment")]

    other = new_invoice(qb, customer, [20])
    other.void(qb=qb)
    voided = Invoice.get(other.Id, qb=qb)
    assert voided.TotalAmt == 0 and voided.PrivateNote == "Voided"

    payment = Payment.get(payment.Id, qb=qb)
    payment.delete(qb=qb)
    invoice = Invoice.get(invoice.Id, qb=qb)
    assert invoice.Balance == 150
    invoice.delete(qb=qb)
    with pytest.raises(ObjectNotFoundException):
        Invoice.get(invoice.Id, qb=qb)


def test_amounts_stay_exact_with_decimals(qb):
    qb.use_decimal = True
    customer = new_customer(qb, "Decimal Dee")
    invoice = new_invoice(qb, customer, [decimal.Decimal("19.99"), decimal.Decimal("0.01")])
    assert invoice.TotalAmt == decimal.Decimal("20")
    line = invoice.Line[0]
    assert line.Amount == decimal.Decimal("19.99")


def test_estimates(qb):
    customer = new_customer(qb, "Estimate Esme")
    estimate = new_invoice(qb, customer, [75], model=Estimate)
    assert estimate.TxnStatus == "Pending"
    assert estimate.TotalAmt == 75
    fetched = Estimate.get(estimate.Id, qb=qb)
    fetched.sparse = True
    fetched.PrivateNote = "sent"
    assert fetched.save(qb=qb).SyncToken == "1"
    assert Estimate.count(qb=qb) == 1


def test_query_paging_and_filters(qb):
    for i in range(12):
        new_customer(qb, "Page %02d" % i, email="p%d@example.com" % i if i % 2 else None)
    page = Customer.filter(order_by="DisplayName", start_position=6, max_results=5, qb=qb)
    assert [c.DisplayName for c in page] == ["Page %02d" % i for i in range(5, 10)]
    assert Customer.count(qb=qb) == 12
    assert Customer.count("DisplayName LIKE '%0%'", qb=qb) == 11  # Page 00-09 and Page 10
    obrien = new_customer(qb, "O'Brien Bakery")
    found = Customer.filter(DisplayName="O'Brien Bakery", qb=qb)
    assert [c.Id for c in found] == [obrien.Id]
    assert Customer.choose(["Page 01", "Page 02"], field="DisplayName", qb=qb)[1].DisplayName == "Page 02"
    assert Customer.where("DisplayName = 'Nobody'", qb=qb) == []


def test_change_data_capture(qb):
    since = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=5)
    customer = new_customer(qb, "Cdc Cora")
    keep = new_invoice(qb, customer, [10])
    gone = new_invoice(qb, customer, [11])
    gone.delete(qb=qb)
    result = change_data_capture([Customer, Invoice], since.strftime("%Y-%m-%dT%H:%M:%S+00:00"), qb=qb)
    assert [c.DisplayName for c in result.Customer] == ["Cdc Cora"]
    invoices = {i.Id: i for i in result.Invoice}
    assert invoices[keep.Id].TotalAmt == 10
    assert invoices[gone.Id].status == "Deleted"


def test_batch_create_with_faults_and_delete(qb):
    new_customer(qb, "Batch Taken")
    customers = []
    for name in ["Batch One", "Batch Two", "Batch Taken"]:
        c = Customer()
        c.DisplayName = name
        customers.append(c)
    result = batch_create(customers, qb=qb)
    assert sorted(c.DisplayName for c in result.successes) == ["Batch One", "Batch Two"]
    assert len(result.faults) == 1
    assert result.faults[0].Error[0].code == "6240"
    assert result.faults[0].original_object.DisplayName == "Batch Taken"

    customer = result.successes[0]
    invoices = [new_invoice(qb, customer, [5]), new_invoice(qb, customer, [6])]
    deleted = batch_delete(invoices, qb=qb)
    assert len(deleted.faults) == 0
    assert Invoice.count(qb=qb) == 0


def test_requestid_makes_a_retry_harmless(qb):
    customer = Customer()
    customer.DisplayName = "Idempotent Ida"
    first = customer.save(qb=qb, request_id="conformance-req-1")
    again = Customer()
    again.DisplayName = "Idempotent Ida"
    second = again.save(qb=qb, request_id="conformance-req-1")
    assert first.Id == second.Id
    assert Customer.count(qb=qb) == 1


def test_expired_token_is_an_authorization_error(qb, sandbox_url):
    conftest.control(sandbox_url, "POST", "/_sandbox/clock", {"advance_seconds": 3601})
    try:
        with pytest.raises(AuthorizationException) as err:
            Customer.all(qb=qb)
        assert err.value.error_code == 401
    finally:
        conftest.control(sandbox_url, "POST", "/_sandbox/clock", {"offset_seconds": 0})


def test_non_us_company_requires_tax_codes(sandbox_url, auth_client):
    code, realm_id, _ = conftest.consent(auth_client, realm_id=conftest.GB_REALM)
    auth_client.get_bearer_token(code, realm_id=realm_id)
    from quickbooks import QuickBooks

    uk = QuickBooks(auth_client=auth_client, refresh_token=auth_client.refresh_token, company_id=realm_id, minorversion=75)
    uk.api_url_v3 = sandbox_url + "/v3"
    customer = new_customer(uk, "Tax Theo")
    with pytest.raises(QuickbooksException) as err:
        new_invoice(uk, customer, [10])
    assert err.value.error_code == 6000
    assert "VAT" in err.value.detail
