//! The payment-based actions (A3–A6, A9): a HubSpot commerce payment becomes a sales receipt,
//! a paid invoice (an invoice and a QBO Payment on it), an expense of its fees, or — once fully
//! refunded — a refund receipt. A payment made on a HubSpot invoice is not booked again as a
//! sale: that invoice reaches QuickBooks through the invoice sync.

use std::collections::BTreeMap;

use super::documents::{self, FeeBooking, Made, SalesDocument};
use super::execution::{unreadable, Execution};
use super::service::{ActionError, Done};
use super::settings::PaymentProperties;
use super::ActionKind;
use crate::domain::Money;
use crate::mapping::invoices::HubSpotLine;
use crate::qbo::entities::{Invoice, Payment, Purchase, RefundReceipt, SalesReceipt};

/// A HubSpot commerce payment, as the actions read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotPayment {
    pub id: String,
    pub amount: Money,
    /// Processing and platform fees together.
    pub fees: Money,
    pub refunded: Money,
    pub status: Option<String>,
    pub source: Option<String>,
}

impl HubSpotPayment {
    pub fn read(
        id: &str,
        properties: &BTreeMap<String, Option<String>>,
        names: &PaymentProperties,
    ) -> Self {
        let text = |name: &str| {
            properties
                .get(name)
                .and_then(|v| v.as_deref())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let money = |name: &str| {
            text(name)
                .and_then(|v| Money::parse(&v).ok())
                .unwrap_or(Money::ZERO)
        };
        let fees = money(&names.processing_fee)
            .checked_add(money(&names.platform_fee))
            .unwrap_or(Money::ZERO);
        Self {
            id: id.to_owned(),
            amount: money(&names.amount),
            fees,
            refunded: money(&names.refunded_amount),
            status: text(&names.status).map(|s| s.to_ascii_lowercase()),
            source: text(&names.source).map(|s| s.to_ascii_lowercase()),
        }
    }

    /// A9: paid on a HubSpot invoice.
    pub fn from_invoice(&self) -> bool {
        self.source
            .as_deref()
            .is_some_and(|s| s.contains("invoice"))
    }

    /// A6: refunded in full (by its status, or by the amounts).
    pub fn fully_refunded(&self) -> bool {
        self.status.as_deref() == Some("refunded")
            || (self.amount.amount() > rust_decimal::Decimal::ZERO
                && self.refunded.amount() >= self.amount.amount())
    }

    /// The properties to read, by their configured names.
    pub fn properties(names: &PaymentProperties) -> Vec<&str> {
        vec![
            names.amount.as_str(),
            names.processing_fee.as_str(),
            names.platform_fee.as_str(),
            names.refunded_amount.as_str(),
            names.status.as_str(),
            names.source.as_str(),
            names.customer_email.as_str(),
        ]
    }
}

impl Execution<'_> {
    pub(super) async fn payment_document(&self, id: &str) -> Result<Done, ActionError> {
        let names = &self.settings.payment_properties;
        let record = self
            .hubspot
            .read(
                "commerce_payments",
                id,
                &HubSpotPayment::properties(names),
                false,
            )
            .await?
            .ok_or_else(|| {
                ActionError::refused(
                    "no_record",
                    format!("HubSpot payment {id} no longer exists"),
                )
            })?;
        let payment = HubSpotPayment::read(id, &record.properties, names);
        match self.kind {
            ActionKind::CreateExpense => return self.fee_expense(&payment).await,
            ActionKind::CreateRefundReceipt if !payment.fully_refunded() => {
                let how = if payment.refunded.amount() > rust_decimal::Decimal::ZERO {
                    format!(
                        "only {} of its {} is refunded",
                        payment.refunded, payment.amount
                    )
                } else {
                    "it is not refunded".to_owned()
                };
                return Err(ActionError::refused(
                    "partial_refund",
                    format!("HubSpot payment {id} is not refunded in full ({how}): a refund receipt is made for full refunds only"),
                ));
            }
            ActionKind::CreateSalesReceipt | ActionKind::CreatePaidInvoice
                if payment.from_invoice() =>
            {
                return Err(ActionError::refused(
                    "invoice_payment",
                    format!("HubSpot payment {id} was made on a HubSpot invoice: that invoice and its payment reach QuickBooks through the invoice sync, so nothing more is booked for it"),
                ));
            }
            _ => {}
        }
        let lines = self.payment_lines(&payment).await?;
        let customer = self.customer().await?;
        let items = self.items(&lines).await?;
        let document = SalesDocument {
            customer: &customer,
            lines: &lines,
            items: &items,
            term: None,
            memo: self.inputs.memo.as_deref(),
        };
        let (created, payment_id) = match self.kind {
            ActionKind::CreatePaidInvoice => {
                if let Some(line) = lines.iter().find(|l| l.tax_rate.is_some()) {
                    return Err(ActionError::refused(
                        "taxable_lines",
                        format!("the line \"{}\" is taxed: a paid invoice is made of non-taxable lines only; use a sales receipt for taxed sales", line.name),
                    ));
                }
                let invoice = self
                    .create(Invoice(documents::sales_document(&document)))
                    .await?
                    .0;
                let made = Made::read(&invoice).ok_or_else(|| unreadable("invoice"))?;
                let paid = self.pay(&customer, &made).await?;
                (invoice, Some(paid))
            }
            ActionKind::CreateRefundReceipt => {
                let from = self
                    .settings
                    .refund_from_account
                    .as_deref()
                    .or(self.settings.deposit_account.as_deref())
                    .ok_or_else(|| {
                        ActionError::refused(
                            "refund_account_needed",
                            "choose the QuickBooks account refunds are paid from in the action settings",
                        )
                    })?;
                let body = documents::refund_receipt(
                    &customer,
                    &lines,
                    &items,
                    from,
                    self.inputs.memo.as_deref(),
                );
                (self.create(RefundReceipt(body)).await?.0, None)
            }
            _ => {
                let mut body = documents::sales_document(&document);
                self.receipt_fields(&mut body);
                (self.create(SalesReceipt(body)).await?.0, None)
            }
        };
        let made = Made::read(&created).ok_or_else(|| unreadable("document"))?;
        Ok(Done {
            outputs: documents::success_outputs(
                self.kind,
                &made,
                Some(&customer),
                payment_id.as_deref(),
            ),
            records: vec![self.document_record(&made, &customer, payment_id.as_deref())?],
        })
    }

    /// The payment's line items; a payment link's are its deal's; a payment with none is one
    /// line of its amount, booked on the item the action names.
    async fn payment_lines(
        &self,
        payment: &HubSpotPayment,
    ) -> Result<Vec<HubSpotLine>, ActionError> {
        let lines = self.lines("commerce_payments", &payment.id).await?;
        if !lines.is_empty() {
            return Ok(lines);
        }
        if let Some(deal) = self.payment_deal().await? {
            let lines = self.lines("deals", &deal).await?;
            if !lines.is_empty() {
                return Ok(lines);
            }
        }
        if self.inputs.item.is_none() {
            return Err(ActionError::refused(
                "no_line_items",
                format!("HubSpot payment {} has no line items (nor has its deal): choose the QuickBooks item to book its amount on in the action", payment.id),
            ));
        }
        Ok(vec![HubSpotLine {
            id: format!("payment-{}", payment.id),
            name: format!("HubSpot payment {}", payment.id),
            description: None,
            quantity: rust_decimal::Decimal::ONE,
            price: payment.amount,
            product_id: None,
            sku: None,
            tax_rate: None,
        }])
    }

    /// A4: the QBO Payment of a paid invoice, for its whole total (its own `requestid`).
    async fn pay(&self, customer: &str, invoice: &Made) -> Result<String, ActionError> {
        let total = invoice
            .total
            .as_deref()
            .and_then(|t| Money::parse(t).ok())
            .ok_or_else(|| unreadable("invoice's total"))?;
        let body = documents::invoice_payment(
            customer,
            &invoice.id,
            total,
            self.settings.payment_method.as_deref(),
            self.settings.deposit_account.as_deref(),
        );
        let requestid =
            super::request::step_requestid(self.portal, self.callback_id, self.kind, "payment")
                .map_err(|e| ActionError::refused("invalid_request", e.to_string()))?;
        let paid = match self.qbo.create(&Payment(body), &requestid).await {
            Ok(paid) => paid,
            Err(error) if error.class() == crate::ErrorClass::Terminal => {
                return Err(ActionError::refused(
                    error.category(),
                    format!(
                        "QuickBooks invoice {} was made, but its payment was refused: {error}",
                        invoice.id
                    ),
                ))
            }
            Err(error) => return Err(error.into()),
        };
        Made::read(&paid.0)
            .map(|m| m.id)
            .ok_or_else(|| unreadable("payment"))
    }

    /// A5: the payment's processing and platform fees as a QBO expense.
    async fn fee_expense(&self, payment: &HubSpotPayment) -> Result<Done, ActionError> {
        if payment.fees.amount() <= rust_decimal::Decimal::ZERO {
            return Err(ActionError::refused(
                "no_fee",
                format!(
                    "HubSpot payment {} carries no processing or platform fee: no expense is made",
                    payment.id
                ),
            ));
        }
        let (Some(paid_from), Some(expense_account)) = (
            self.settings.fee_paid_from_account.as_deref(),
            self.settings.fee_expense_account.as_deref(),
        ) else {
            return Err(ActionError::refused(
                "fee_accounts_needed",
                "choose the account fees are paid from and the expense account they are booked on in the action settings",
            ));
        };
        let booking = FeeBooking {
            paid_from,
            expense_account,
            payee: self.settings.fee_payee.as_deref(),
        };
        let memo = format!("Fees of HubSpot payment {}", payment.id);
        let created = self
            .create(Purchase(documents::fee_expense(
                &booking,
                payment.fees,
                &memo,
            )))
            .await?
            .0;
        let made = Made::read(&created).ok_or_else(|| unreadable("expense"))?;
        let payee = booking.payee.unwrap_or_default();
        Ok(Done {
            outputs: documents::success_outputs(self.kind, &made, None, None),
            records: vec![self.document_record(&made, payee, None)?],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment(pairs: &[(&str, &str)]) -> HubSpotPayment {
        let properties = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
            .collect();
        HubSpotPayment::read("9", &properties, &PaymentProperties::default())
    }

    #[test]
    fn a_payment_is_read_by_the_configured_names() {
        let read = payment(&[
            ("hs_initial_amount", "100.00"),
            ("hs_processing_fee", "2.90"),
            ("hs_platform_fee", "0.50"),
            ("hs_latest_status", "Succeeded"),
            ("hs_payment_source", "PAYMENT_LINK"),
        ]);
        let money = |text: &str| Money::parse(text).unwrap();
        assert_eq!(read.amount, money("100"));
        assert_eq!(read.fees, money("3.40"));
        assert_eq!(read.status.as_deref(), Some("succeeded"));
        assert!(!read.from_invoice());
        assert!(!read.fully_refunded());
        let names = PaymentProperties {
            amount: "amount_paid".into(),
            ..PaymentProperties::default()
        };
        let properties = [("amount_paid".to_owned(), Some("5".to_owned()))]
            .into_iter()
            .collect();
        assert_eq!(
            HubSpotPayment::read("1", &properties, &names)
                .amount
                .to_string(),
            "5"
        );
    }

    #[test]
    fn refunds_and_sources_decide_what_may_be_booked() {
        let table = [
            (
                vec![("hs_initial_amount", "50"), ("hs_refunds_amount", "50")],
                true,
                false,
            ),
            (
                vec![("hs_initial_amount", "50"), ("hs_refunds_amount", "20")],
                false,
                false,
            ),
            (
                vec![
                    ("hs_initial_amount", "50"),
                    ("hs_latest_status", "refunded"),
                ],
                true,
                false,
            ),
            (
                vec![
                    ("hs_initial_amount", "50"),
                    ("hs_payment_source", "invoice"),
                ],
                false,
                true,
            ),
            (vec![("hs_initial_amount", "0")], false, false),
        ];
        for (pairs, refunded, from_invoice) in table {
            let read = payment(&pairs);
            assert_eq!(read.fully_refunded(), refunded, "{pairs:?}");
            assert_eq!(read.from_invoice(), from_invoice, "{pairs:?}");
        }
    }
}
