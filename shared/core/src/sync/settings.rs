//! Editing an object's sync settings (S1): every edit is checked and saved by compare-and-swap;
//! turning a sync off keeps its settings and cursors (turning it on resumes where it stood);
//! deleting removes the settings and the cursors, never the ledger.

use std::sync::Arc;

use super::cursors::Cursors;
use super::objects::Synced;
use crate::domain::{ConnectionId, ObjectKind, Provider};
use crate::ledger::{Ledger, LedgerError};
use crate::mapping::{contacts, invoices, products};
use crate::settings::{default_settings, ObjectSettings, SettingsError, SettingsStore};
use crate::store::{Store, StoreError, TransactOutcome};

pub struct SyncSettings {
    settings: SettingsStore,
    cursors: Cursors,
    ledger: Ledger,
    store: Arc<dyn Store>,
}

/// The default mapping keys of an object (what `disabled_fields` may name).
pub fn default_keys(object: ObjectKind) -> Vec<&'static str> {
    let fields = match Synced::of(object) {
        Some(Synced::Contacts) => contacts::default_fields(),
        Some(Synced::Products) => products::default_fields(),
        Some(Synced::Invoices) | None => Vec::new(),
    };
    // The keys are literals of the field lists; leak-free: map them back to those literals.
    fields
        .iter()
        .filter_map(|f| KNOWN.iter().find(|k| **k == f.key).copied())
        .collect()
}

const KNOWN: [&str; 19] = [
    "email",
    "first_name",
    "last_name",
    "phone",
    "mobile",
    "company",
    "address",
    "city",
    "state",
    "zip",
    "country",
    contacts::DISPLAY_NAME,
    "name",
    products::SKU,
    "price",
    "description",
    "cost",
    "type",
    "income_account",
];

impl SyncSettings {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            settings: SettingsStore::new(store.clone()),
            cursors: Cursors::new(store.clone()),
            ledger: Ledger::new(store.clone()),
            store,
        }
    }

    /// Changes one object's settings (checked, and saved only over what was read).
    pub async fn edit(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now: i64,
        change: impl FnMut(&mut ObjectSettings),
    ) -> Result<Option<ObjectSettings>, SettingsError> {
        let before = self.settings.get(connection, object, now).await?;
        let after = self
            .settings
            .edit(connection, object, now, &default_keys(object), change)
            .await?;
        if let (Some(before), Some(after)) = (&before, &after) {
            self.after_edit(connection, object, before, after, now)
                .await?;
        }
        Ok(after)
    }

    /// Replaces one object's settings with `wanted`, checked first. With `expected` (the
    /// version the caller read) a save made meanwhile is refused; without it, one made between
    /// this read and this write is. `None` when the object has no settings.
    pub async fn replace(
        &self,
        connection: &ConnectionId,
        wanted: ObjectSettings,
        expected: Option<u64>,
        now: i64,
    ) -> Result<Option<(ObjectSettings, u64)>, SettingsError> {
        let object = wanted.object;
        let Some((before, version)) = self.settings.get_versioned(connection, object, now).await?
        else {
            return Ok(None);
        };
        if expected.is_some_and(|expected| expected != version) {
            return Err(SettingsError::Changed);
        }
        let saved = self
            .settings
            .save(connection, &wanted, version, &default_keys(object))
            .await?;
        self.after_edit(connection, object, &before, &wanted, now)
            .await?;
        Ok(Some((wanted, saved)))
    }

    /// What a change of settings sets going: a changed custom-field mapping reads the
    /// invoices again; a changed display-name rule retries the names that were taken.
    async fn after_edit(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        before: &ObjectSettings,
        after: &ObjectSettings,
        now: i64,
    ) -> Result<(), SettingsError> {
        // A new invoice custom-field mapping (S4) applies to the invoices synced before it
        // too: QuickBooks' invoices are read again, and those with a value are written.
        if object == ObjectKind::Invoice
            && invoices::custom_field_mappings(&after.custom_mappings)
                != invoices::custom_field_mappings(&before.custom_mappings)
        {
            self.cursors
                .restart(connection, object, Provider::Qbo, now)
                .await?;
        }
        let names_changed = before.disambiguate_display_names != after.disambiguate_display_names
            || before.display_name_from_company != after.display_name_from_company;
        if names_changed {
            self.ledger
                .retry_failures(connection, object, Some("duplicate_display_name"), now)
                .await
                .map_err(|e| match e {
                    LedgerError::Store(e) => SettingsError::Store(e),
                    LedgerError::Conflict => SettingsError::Changed,
                })?;
        }
        Ok(())
    }

    /// Off: nothing of the object syncs, and everything is kept. On again: it resumes from its
    /// cursors.
    pub async fn set_enabled(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        enabled: bool,
        now: i64,
    ) -> Result<Option<ObjectSettings>, SettingsError> {
        self.edit(connection, object, now, |s| s.enabled = enabled)
            .await
    }

    /// Adds an object that has no settings (deleted, or new) with the recommended defaults of
    /// `today`; the next round reads it from the start, and the ledger links what it already
    /// knows instead of making it again. Answers whether it was added (false: it has settings).
    pub async fn add_with_defaults(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        today: time::Date,
        now: i64,
    ) -> Result<bool, SettingsError> {
        let defaults: Vec<ObjectSettings> = default_settings(today)
            .into_iter()
            .filter(|s| s.object == object)
            .collect();
        let (writes, _) = self
            .settings
            .default_writes(connection, &defaults, now)
            .await?;
        if writes.is_empty() {
            return Ok(false);
        }
        match self.store.transact(writes).await? {
            TransactOutcome::Written => Ok(true),
            TransactOutcome::Conflict { .. } => Ok(false),
        }
    }

    /// Removes the object's settings and cursors; its ledger stays (the history of what was
    /// linked). Adding it again writes the defaults, and reading starts over.
    pub async fn delete(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now: i64,
    ) -> Result<(), StoreError> {
        self.settings.delete(connection, object).await?;
        self.cursors.delete_all(connection, object, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_mapping_has_a_key() {
        assert_eq!(
            default_keys(ObjectKind::Contact).len(),
            contacts::default_fields().len()
        );
        assert_eq!(
            default_keys(ObjectKind::Product).len(),
            products::default_fields().len()
        );
        assert!(default_keys(ObjectKind::Invoice).is_empty());
    }
}
