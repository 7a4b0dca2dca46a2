//! Every key format of every table, in one place. Adapters and features build keys only here.

/// The connections table: connections, their settings and pre-flight record, company ownership,
/// portal entries, tokens and pending OAuth states.
pub mod connections {
    use crate::domain::{ConnectionId, ObjectKind, PortalId, Provider, RealmId};
    use crate::store::ItemKey;

    /// The partition of one connection: its record, pre-flight record and settings.
    pub fn partition(id: &ConnectionId) -> String {
        format!("connection#{id}")
    }

    pub fn record(id: &ConnectionId) -> ItemKey {
        ItemKey::new(partition(id), "connection")
    }

    pub fn preflight(id: &ConnectionId) -> ItemKey {
        ItemKey::new(partition(id), "preflight")
    }

    pub const SETTINGS_PREFIX: &str = "settings#";

    pub fn settings(id: &ConnectionId, object: ObjectKind) -> ItemKey {
        ItemKey::new(partition(id), settings_sort_key(object))
    }

    pub fn settings_sort_key(object: ObjectKind) -> String {
        format!("{SETTINGS_PREFIX}{object}")
    }

    /// How the connection's workflow actions behave (customer mode, fee accounts, …).
    pub fn action_settings(id: &ConnectionId) -> ItemKey {
        ItemKey::new(partition(id), "action-settings")
    }

    /// The connection's request for its initial sync (kept until it is queued).
    pub fn initial_sync(id: &ConnectionId) -> ItemKey {
        ItemKey::new(partition(id), "initial-sync")
    }

    /// Index partition listing initial-sync requests that are not queued yet.
    pub const INITIAL_SYNC_PENDING: &str = "initial-sync#pending";

    pub const CURSOR_PREFIX: &str = "cursor#";

    /// Where reading one object's changes on one side stands.
    pub fn cursor(id: &ConnectionId, object: ObjectKind, side: Provider) -> ItemKey {
        ItemKey::new(
            partition(id),
            format!("{CURSOR_PREFIX}{object}#{}", side.as_str()),
        )
    }

    /// Index partition listing the connections in one status (`active`, …).
    pub fn status_index(status: &str) -> String {
        format!("connections#{status}")
    }

    /// Which connection holds a QuickBooks company.
    pub fn realm_owner(realm: &RealmId) -> ItemKey {
        ItemKey::new(format!("realm#{realm}"), "owner")
    }

    pub fn portal_partition(portal: &PortalId) -> String {
        format!("portal#{portal}")
    }

    pub const PORTAL_ENTRY_PREFIX: &str = "connection#";

    /// A portal's entry for one of its connections.
    pub fn portal_entry(portal: &PortalId, id: &ConnectionId) -> ItemKey {
        ItemKey::new(
            portal_partition(portal),
            format!("{PORTAL_ENTRY_PREFIX}{id}"),
        )
    }

    /// The tokens of one owner (a portal's HubSpot tokens, a company's QuickBooks tokens).
    pub fn tokens(provider: Provider, owner_id: &str) -> ItemKey {
        ItemKey::new(format!("tokens#{}#{owner_id}", provider.as_str()), "tokens")
    }

    pub const OAUTH_STATE_PREFIX: &str = "oauth-state#";

    pub fn oauth_state(encoded_nonce: &str) -> ItemKey {
        ItemKey::new(format!("{OAUTH_STATE_PREFIX}{encoded_nonce}"), "state")
    }

    /// A person's admin session, by the SHA-256 of its cookie value (the value itself is never
    /// stored).
    pub fn admin_session(hashed_id: &str) -> ItemKey {
        ItemKey::new(format!("admin-session#{hashed_id}"), "session")
    }

    /// The claim of a change notification's nudge for one object of a connection: while it
    /// lives, further notifications for that object are covered by the poll already queued.
    pub fn nudge(id: &ConnectionId, object: ObjectKind) -> ItemKey {
        ItemKey::new(partition(id), format!("nudge#{object}"))
    }

    /// The claim of a queued check with Intuit of a company (its Disconnect URL was opened).
    pub fn company_check(realm: &RealmId) -> ItemKey {
        ItemKey::new(realm_owner(realm).pk, "check")
    }

    /// A change notification already taken, by the SHA-256 of its signature (HubSpot) or body
    /// (QuickBooks): a second delivery of the same one is a replay or a retry.
    pub fn notification_seen(provider: Provider, digest: &str) -> ItemKey {
        ItemKey::new(
            format!("notification#{}#{digest}", provider.as_str()),
            "seen",
        )
    }
}

/// The ledger table: sync links and history, and what queue consumers park or count.
pub mod ledger {
    use crate::domain::{ConnectionId, ObjectKind, Provider};
    use crate::store::ItemKey;

    /// One connection's and object's ledger: its entries, their pointers and outboxes.
    pub fn partition(connection: &ConnectionId, object: ObjectKind) -> String {
        format!("ledger#{connection}#{object}")
    }

    pub const ENTRY_PREFIX: &str = "link#";

    pub fn entry(connection: &ConnectionId, object: ObjectKind, link: &str) -> ItemKey {
        ItemKey::new(
            partition(connection, object),
            format!("{ENTRY_PREFIX}{link}"),
        )
    }

    /// Which entry holds a side's record.
    pub fn record_pointer(
        connection: &ConnectionId,
        object: ObjectKind,
        side: Provider,
        id: &str,
    ) -> ItemKey {
        let prefix = match side {
            Provider::HubSpot => "hs",
            Provider::Qbo => "qbo",
        };
        ItemKey::new(partition(connection, object), format!("{prefix}#{id}"))
    }

    /// Which entry holds a match key (an email, a SKU).
    pub fn key_pointer(connection: &ConnectionId, object: ObjectKind, key: &str) -> ItemKey {
        ItemKey::new(partition(connection, object), format!("key#{key}"))
    }

    /// How many entries of one object are in each status (attributes named by status).
    pub fn status_counts(connection: &ConnectionId, object: ObjectKind) -> ItemKey {
        ItemKey::new(partition(connection, object), "counts")
    }

    pub const RETRY_PREFIX: &str = "retry#";

    /// When an entry is next read again (a retryable failure, an overdue pending write): one
    /// pointer per entry, ordered by time, so what is due is one range query.
    pub fn retry_pointer(
        connection: &ConnectionId,
        object: ObjectKind,
        at: i64,
        link: &str,
    ) -> ItemKey {
        ItemKey::new(
            retry_partition(connection, object),
            format!("{RETRY_PREFIX}{:020}#{link}", at.max(0)),
        )
    }

    /// The retry pointers of one connection and object, apart from its entries so that what is
    /// due is read without passing over them.
    pub fn retry_partition(connection: &ConnectionId, object: ObjectKind) -> String {
        format!("ledger-retry#{connection}#{object}")
    }

    /// The last retry-pointer sort key due at `now`.
    pub fn retry_due_until(now: i64) -> String {
        // Links are `hs:…`/`qbo:…`: every one sorts below `~`.
        format!("{RETRY_PREFIX}{:020}#~", now.max(0))
    }

    /// A batch write kept until its answer is recorded, to be replayed word for word.
    pub fn outbox(connection: &ConnectionId, object: ObjectKind, requestid: &str) -> ItemKey {
        ItemKey::new(partition(connection, object), format!("outbox#{requestid}"))
    }

    /// The timeline note of one QBO payment on one invoice (`<realm>-<payment>-<invoice>`):
    /// claimed before the note is made and completed with its id, so it is made once.
    pub fn payment_note(connection: &ConnectionId, payment_key: &str) -> ItemKey {
        ItemKey::new(
            partition(connection, ObjectKind::Invoice),
            format!("note#{payment_key}"),
        )
    }

    /// The HubSpot deal a QBO invoice belongs to, when it was made from one (a workflow
    /// action records it; the invoice sync associates the HubSpot invoice with it).
    pub fn invoice_deal(connection: &ConnectionId, qbo_invoice: &str) -> ItemKey {
        ItemKey::new(
            partition(connection, ObjectKind::Invoice),
            format!("deal#{qbo_invoice}"),
        )
    }

    /// The documents workflow actions made from one HubSpot record (a deal, a quote, a
    /// payment), one item per execution: what the record view lists.
    pub fn action_documents(
        connection: &ConnectionId,
        object_type: &str,
        object_id: &str,
    ) -> String {
        format!("actions#{connection}#{object_type}#{object_id}")
    }

    pub fn action_document(
        connection: &ConnectionId,
        object_type: &str,
        object_id: &str,
        callback_id: &str,
    ) -> ItemKey {
        ItemKey::new(
            action_documents(connection, object_type, object_id),
            format!("doc#{callback_id}"),
        )
    }

    /// Index partition of one object's entries in one status.
    pub fn status_index(connection: &ConnectionId, object: ObjectKind, status: &str) -> String {
        format!("ledger-status#{connection}#{object}#{status}")
    }

    /// Index sort key of an entry in its status: failure category (empty when not failing),
    /// time of the last change, link; so one category's failures, or the entries changed in a
    /// time range of a status without failures, are one range.
    pub fn status_index_sort(category: &str, updated_at: i64, link: &str) -> String {
        format!("{category}#{updated_at:020}#{link}")
    }

    /// The range of [`status_index_sort`] keys without a category changed from `from` to
    /// `to` (both included).
    pub fn status_index_time_range(from: i64, to: i64) -> (String, String) {
        (
            format!("#{:020}", from.max(0)),
            format!("#{:020}~", to.max(0)),
        )
    }

    /// A message taken off `queue` without succeeding, kept with its body (newest last).
    pub fn parked_message(queue: &str, at_ms: i64, message_id: &str) -> ItemKey {
        ItemKey::new(parked_partition(queue), format!("{at_ms:020}#{message_id}"))
    }

    pub fn parked_partition(queue: &str) -> String {
        format!("parked#{queue}")
    }

    /// The calls taken in one rate-limit slot of one company or portal.
    pub fn pace_slot(limit: &str, owner: &str, slot: i64) -> ItemKey {
        ItemKey::new(format!("pace#{limit}#{owner}"), slot.to_string())
    }

    /// How many times one message has failed.
    pub fn message_failures(message_id: &str) -> ItemKey {
        ItemKey::new(format!("message-failures#{message_id}"), "failures")
    }
}

/// The action-runs table: one item per workflow-action execution.
pub mod action_runs {
    use crate::domain::PortalId;
    use crate::store::ItemKey;

    /// The executions of one portal.
    pub fn partition(portal: &PortalId) -> String {
        format!("action#{portal}")
    }

    /// One workflow-action execution of a portal (its claim, then its outcome).
    pub fn run(portal: &PortalId, callback_id: &str) -> ItemKey {
        ItemKey::new(partition(portal), format!("run#{callback_id}"))
    }
}
