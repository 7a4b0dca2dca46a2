//! Where each connection's settings are kept: beside the connection, in its partition.

use std::sync::Arc;

use super::ObjectSettings;
use crate::domain::{ConnectionId, ObjectKind};
use crate::store::keys::connections as keys;
use crate::store::{CasOutcome, Item, ItemKey, Query, Store, StoreError, Table, TransactWrite};

/// Where one object's settings are kept: beside the connection, in its partition.
pub fn settings_key(connection: &ConnectionId, object: ObjectKind) -> ItemKey {
    keys::settings(connection, object)
}

/// Settings in [`Table::Connections`] at pk `connection#{id}`, sk `settings#{object}`.
#[derive(Clone)]
pub struct SettingsStore {
    store: Arc<dyn Store>,
}

impl SettingsStore {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    pub async fn get(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_epoch_seconds: i64,
    ) -> Result<Option<ObjectSettings>, StoreError> {
        let key = settings_key(connection, object);
        match self
            .store
            .get(Table::Connections, &key, now_epoch_seconds)
            .await?
        {
            Some(item) => decode(&item, Some(object)).map(Some),
            None => Ok(None),
        }
    }

    /// Every object's settings the connection has, in [`ObjectKind::ALL`] order.
    pub async fn list(
        &self,
        connection: &ConnectionId,
        now_epoch_seconds: i64,
    ) -> Result<Vec<ObjectSettings>, StoreError> {
        let query =
            Query::partition(keys::partition(connection)).sort_prefix(keys::SETTINGS_PREFIX);
        let mut settings = self
            .store
            .query_all(Table::Connections, query, now_epoch_seconds)
            .await?
            .iter()
            .map(|item| decode(item, None))
            .collect::<Result<Vec<_>, _>>()?;
        sort_by_object(&mut settings);
        Ok(settings)
    }

    /// The writes that store `defaults` for each object the connection has no settings for yet
    /// (a reconnect keeps the user's edits), for the connect transaction. Each is a create that
    /// fails if the item appeared since it was read, so nothing the user wrote is overwritten.
    /// Returns the writes and the settings in force once they are made.
    pub async fn default_writes(
        &self,
        connection: &ConnectionId,
        defaults: &[ObjectSettings],
        now_epoch_seconds: i64,
    ) -> Result<(Vec<TransactWrite>, Vec<ObjectSettings>), StoreError> {
        let existing = self.list(connection, now_epoch_seconds).await?;
        let mut writes = Vec::new();
        let mut in_force = existing.clone();
        for settings in defaults {
            if existing.iter().any(|s| s.object == settings.object) {
                continue;
            }
            writes.push(TransactWrite::PutVersioned {
                table: Table::Connections,
                item: Item::from_value(settings_key(connection, settings.object), settings)?,
                expected: None,
            });
            in_force.push(settings.clone());
        }
        sort_by_object(&mut in_force);
        Ok((writes, in_force))
    }

    /// The settings of one object and the version an edit must name.
    pub async fn get_versioned(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_epoch_seconds: i64,
    ) -> Result<Option<(ObjectSettings, u64)>, StoreError> {
        let key = settings_key(connection, object);
        match self
            .store
            .get(Table::Connections, &key, now_epoch_seconds)
            .await?
        {
            Some(item) => Ok(Some((decode(&item, Some(object))?, item.version))),
            None => Ok(None),
        }
    }

    /// Saves an edit of one object's settings made from `expected` (the version read): checked
    /// first, then written only if nobody changed them meanwhile. Returns the new version.
    pub async fn save(
        &self,
        connection: &ConnectionId,
        settings: &ObjectSettings,
        expected: u64,
        default_keys: &[&str],
    ) -> Result<u64, SettingsError> {
        super::validate(settings, default_keys).map_err(SettingsError::Invalid)?;
        let item = Item::from_value(settings_key(connection, settings.object), settings)?;
        match self
            .store
            .put_versioned(Table::Connections, item, Some(expected))
            .await?
        {
            CasOutcome::Written { version } => Ok(version),
            CasOutcome::VersionConflict => Err(SettingsError::Changed),
        }
    }

    /// Reads, changes and saves one object's settings, reading again when someone else saved
    /// meanwhile. `None` when the object has no settings.
    pub async fn edit(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
        now_epoch_seconds: i64,
        default_keys: &[&str],
        mut change: impl FnMut(&mut ObjectSettings),
    ) -> Result<Option<ObjectSettings>, SettingsError> {
        for _ in 0..EDIT_ATTEMPTS {
            let Some((mut settings, version)) = self
                .get_versioned(connection, object, now_epoch_seconds)
                .await?
            else {
                return Ok(None);
            };
            change(&mut settings);
            match self
                .save(connection, &settings, version, default_keys)
                .await
            {
                Ok(_) => return Ok(Some(settings)),
                Err(SettingsError::Changed) => continue,
                Err(other) => return Err(other),
            }
        }
        Err(SettingsError::Changed)
    }

    /// Removes one object's settings (its cursors go with them; the ledger is kept).
    pub async fn delete(
        &self,
        connection: &ConnectionId,
        object: ObjectKind,
    ) -> Result<(), StoreError> {
        self.store
            .delete(Table::Connections, &settings_key(connection, object))
            .await
    }
}

/// How many times an edit reads again after losing a race.
const EDIT_ATTEMPTS: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("the settings are not valid: {}", .0.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<super::FieldError>),
    #[error("the settings were changed by someone else meanwhile; read them again")]
    Changed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn sort_by_object(settings: &mut [ObjectSettings]) {
    settings.sort_by_key(|s| {
        ObjectKind::ALL
            .iter()
            .position(|kind| *kind == s.object)
            .unwrap_or(usize::MAX)
    });
}

fn decode(item: &Item, expected: Option<ObjectKind>) -> Result<ObjectSettings, StoreError> {
    let settings: ObjectSettings = item.to_value()?;
    let expected_sk = keys::settings_sort_key(settings.object);
    // The key names the object too; a disagreement means the item was written by hand or by a
    // bug, and acting on the wrong object's settings would be worse than failing.
    if item.key.sk != expected_sk || expected.is_some_and(|kind| kind != settings.object) {
        return Err(StoreError::Encoding(format!(
            "item {:?} holds settings of {}",
            item.key, settings.object
        )));
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::SettingsError;
    use super::*;
    use crate::settings::{default_settings, Direction};
    use crate::store::memory::MemoryStore;
    use time::macros::date;

    const NOW: i64 = 1_760_000_000;

    fn connection(id: &str) -> ConnectionId {
        ConnectionId::parse(id).unwrap()
    }

    /// Makes the default writes as the connect transaction would; returns how many there were.
    async fn write_defaults(
        settings: &SettingsStore,
        store: &MemoryStore,
        id: &ConnectionId,
        defaults: &[ObjectSettings],
    ) -> usize {
        let (writes, in_force) = settings.default_writes(id, defaults, NOW).await.unwrap();
        let count = writes.len();
        if count > 0 {
            store.transact(writes).await.unwrap();
        }
        assert_eq!(in_force, settings.list(id, NOW).await.unwrap());
        count
    }

    #[tokio::test]
    async fn defaults_are_written_once_and_edits_survive_a_reconnect() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let acme = connection("acme");
        let defaults = default_settings(date!(2025 - 03 - 14));

        assert_eq!(settings.list(&acme, NOW).await.unwrap(), vec![]);
        assert_eq!(write_defaults(&settings, &store, &acme, &defaults).await, 3);
        assert_eq!(settings.list(&acme, NOW).await.unwrap(), defaults);

        let mut edited = defaults[1].clone();
        edited.direction = Direction::TwoWay;
        edited.require_sku = false;
        let (_, version) = settings
            .get_versioned(&acme, ObjectKind::Product, NOW)
            .await
            .unwrap()
            .unwrap();
        settings.save(&acme, &edited, version, &[]).await.unwrap();
        // An edit from an older read is refused, and so is an invalid one.
        assert!(matches!(
            settings.save(&acme, &edited, version, &[]).await,
            Err(SettingsError::Changed)
        ));
        let mut invalid = edited.clone();
        invalid.disabled_fields = vec!["nope".into()];
        assert!(matches!(
            settings.save(&acme, &invalid, version + 1, &[]).await,
            Err(SettingsError::Invalid(errors)) if errors[0].field == "disabled_fields[0]"
        ));
        // An edit that loses a race reads again and keeps the other change.
        let mut rounds = 0;
        let edited_twice = settings
            .edit(&acme, ObjectKind::Product, NOW, &[], |s| {
                rounds += 1;
                if rounds == 1 {
                    let mut other = edited.clone();
                    other.conflict = crate::settings::ConflictWinner::HubSpot;
                    futures::executor::block_on(settings.save(&acme, &other, version + 1, &[]))
                        .unwrap();
                }
                s.enabled = false;
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rounds, 2);
        assert_eq!(
            (edited_twice.enabled, edited_twice.conflict),
            (false, crate::settings::ConflictWinner::HubSpot)
        );
        let edited = edited_twice;

        // A reconnect (a later setup day) writes nothing over the user's settings.
        let later = default_settings(date!(2025 - 06 - 01));
        assert_eq!(write_defaults(&settings, &store, &acme, &later).await, 0);
        assert_eq!(
            settings.get(&acme, ObjectKind::Product, NOW).await.unwrap(),
            Some(edited.clone())
        );
        assert_eq!(
            settings.list(&acme, NOW).await.unwrap(),
            vec![defaults[0].clone(), edited, defaults[2].clone()]
        );

        // A missing object is filled in; the others stay.
        store
            .delete(
                Table::Connections,
                &settings_key(&acme, ObjectKind::Invoice),
            )
            .await
            .unwrap();
        assert_eq!(write_defaults(&settings, &store, &acme, &later).await, 1);
        assert_eq!(
            settings.get(&acme, ObjectKind::Invoice, NOW).await.unwrap(),
            Some(later[2].clone())
        );
    }

    #[tokio::test]
    async fn connections_do_not_see_each_others_settings() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let defaults = default_settings(date!(2025 - 03 - 14));
        write_defaults(&settings, &store, &connection("one"), &defaults[..1]).await;
        // Other items of the connection's partition are not settings.
        store
            .put(
                Table::Connections,
                Item::from_value(
                    ItemKey::new("connection#two", "connection"),
                    &serde_json::json!({"status": "active"}),
                )
                .unwrap(),
            )
            .await
            .unwrap();

        assert_eq!(
            settings
                .get(&connection("two"), ObjectKind::Contact, NOW)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            settings.list(&connection("two"), NOW).await.unwrap(),
            vec![]
        );
        assert_eq!(
            settings.list(&connection("one"), NOW).await.unwrap(),
            defaults[..1].to_vec()
        );
    }

    #[tokio::test]
    async fn an_item_under_the_wrong_key_is_refused() {
        let store = Arc::new(MemoryStore::new());
        let settings = SettingsStore::new(store.clone());
        let acme = connection("acme");
        let contact = default_settings(date!(2025 - 03 - 14)).remove(0);
        store
            .put(
                Table::Connections,
                Item::from_value(settings_key(&acme, ObjectKind::Product), &contact).unwrap(),
            )
            .await
            .unwrap();
        let err = settings
            .get(&acme, ObjectKind::Product, NOW)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Encoding(_)), "{err}");
        assert!(settings.list(&acme, NOW).await.is_err());
    }
}
