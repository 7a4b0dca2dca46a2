//! How one connection's workflow actions behave: the customer mode (A7), the accounts the
//! payment-based actions book on (A4–A6), and the HubSpot payment property names, which are
//! unconfirmed and so kept here. Stored beside the connection; every field has a default.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::domain::ConnectionId;
use crate::store::{keys, Item, Store, StoreError, Table};

/// A7: how the QBO customer of a document is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomerMode {
    /// The contact's customer through the contact sync: a contact its filters leave out is not
    /// made a customer, and the action fails with that reason.
    #[default]
    New,
    /// Match by first name, last name and email; create the customer when none matches.
    Legacy,
}

/// The names of the HubSpot commerce-payment properties the actions read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PaymentProperties {
    pub amount: String,
    pub processing_fee: String,
    pub platform_fee: String,
    pub refunded_amount: String,
    pub status: String,
    /// Where the payment came from (`invoice`, `payment_link`, `quote`, …).
    pub source: String,
    pub customer_email: String,
}

impl Default for PaymentProperties {
    fn default() -> Self {
        Self {
            amount: "hs_initial_amount".into(),
            processing_fee: "hs_processing_fee".into(),
            platform_fee: "hs_platform_fee".into(),
            refunded_amount: "hs_refunds_amount".into(),
            status: "hs_latest_status".into(),
            source: "hs_payment_source".into(),
            customer_email: "hs_customer_email".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ActionSettings {
    pub customer_mode: CustomerMode,
    /// Where money received is deposited (sales receipts, payments); `None`: QBO's default
    /// (Undeposited Funds).
    pub deposit_account: Option<String>,
    /// The QBO payment method of sales receipts and payments made from HubSpot payments.
    pub payment_method: Option<String>,
    /// A5: the account fees are paid from, the expense account they are booked on, the payee.
    pub fee_paid_from_account: Option<String>,
    pub fee_expense_account: Option<String>,
    pub fee_payee: Option<String>,
    /// A6: the account refunds are paid from.
    pub refund_from_account: Option<String>,
    /// The payment object's type as action definitions name it (unconfirmed).
    pub payment_object_type: String,
    pub payment_properties: PaymentProperties,
}

impl Default for ActionSettings {
    fn default() -> Self {
        Self {
            customer_mode: CustomerMode::New,
            deposit_account: None,
            payment_method: None,
            fee_paid_from_account: None,
            fee_expense_account: None,
            fee_payee: None,
            refund_from_account: None,
            payment_object_type: "COMMERCE_PAYMENT".into(),
            payment_properties: PaymentProperties::default(),
        }
    }
}

impl ActionSettings {
    /// The problems of these settings, each with the field it is about: accounts, payment
    /// method and payee are QuickBooks ids; property and type names are not empty.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let ids = [
            ("deposit_account", &self.deposit_account),
            ("payment_method", &self.payment_method),
            ("fee_paid_from_account", &self.fee_paid_from_account),
            ("fee_expense_account", &self.fee_expense_account),
            ("fee_payee", &self.fee_payee),
            ("refund_from_account", &self.refund_from_account),
        ];
        for (field, value) in ids {
            if let Some(value) = value {
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_digit()) {
                    problems.push((
                        field.to_owned(),
                        format!("{value:?} is not a QuickBooks id (digits)"),
                    ));
                }
            }
        }
        let p = &self.payment_properties;
        let names = [
            ("payment_object_type", &self.payment_object_type),
            ("payment_properties.amount", &p.amount),
            ("payment_properties.processing_fee", &p.processing_fee),
            ("payment_properties.platform_fee", &p.platform_fee),
            ("payment_properties.refunded_amount", &p.refunded_amount),
            ("payment_properties.status", &p.status),
            ("payment_properties.source", &p.source),
            ("payment_properties.customer_email", &p.customer_email),
        ];
        for (field, value) in names {
            if value.trim().is_empty() {
                problems.push((field.to_owned(), "must not be empty".to_owned()));
            }
        }
        problems
    }
}

pub struct ActionSettingsStore {
    store: Arc<dyn Store>,
}

impl ActionSettingsStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// The connection's settings, or the defaults when none were saved.
    pub async fn get(&self, id: &ConnectionId, now: i64) -> Result<ActionSettings, StoreError> {
        match self
            .store
            .get(
                Table::Connections,
                &keys::connections::action_settings(id),
                now,
            )
            .await?
        {
            Some(item) => item.to_value(),
            None => Ok(ActionSettings::default()),
        }
    }

    pub async fn put(
        &self,
        id: &ConnectionId,
        settings: &ActionSettings,
    ) -> Result<(), StoreError> {
        let item = Item::from_value(keys::connections::action_settings(id), settings)?;
        self.store.put(Table::Connections, item).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn unsaved_settings_are_the_defaults_and_saved_ones_read_back() {
        let settings = ActionSettingsStore::new(Arc::new(MemoryStore::new()));
        let id = ConnectionId::parse("c1").unwrap();
        assert_eq!(
            settings.get(&id, 0).await.unwrap(),
            ActionSettings::default()
        );
        let legacy = ActionSettings {
            customer_mode: CustomerMode::Legacy,
            fee_expense_account: Some("60".into()),
            ..ActionSettings::default()
        };
        settings.put(&id, &legacy).await.unwrap();
        assert_eq!(settings.get(&id, 0).await.unwrap(), legacy);
        let partial: ActionSettings =
            serde_json::from_str(r#"{"customer_mode": "legacy"}"#).unwrap();
        assert_eq!(partial.payment_properties.amount, "hs_initial_amount");
    }

    #[test]
    fn problems_name_their_field() {
        assert!(ActionSettings::default().problems().is_empty());
        let bad = ActionSettings {
            fee_expense_account: Some("Office expenses".into()),
            payment_properties: PaymentProperties {
                status: " ".into(),
                ..PaymentProperties::default()
            },
            ..ActionSettings::default()
        };
        let fields: Vec<String> = bad.problems().into_iter().map(|(f, _)| f).collect();
        assert_eq!(fields, ["fee_expense_account", "payment_properties.status"]);
    }
}
