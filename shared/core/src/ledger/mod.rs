//! The sync ledger: what is linked to what, what was last synced, and what failed and why.

pub mod entry;
pub mod store;

pub use entry::{LedgerEntry, LinkStatus, SideState};
pub use store::{DueRetry, Ledger, LedgerError, Outbox, RetryOne, Stored};
