//! The sync ledger: what is linked to what, what was last synced, and what failed and why.

pub mod entry;

pub use entry::{LedgerEntry, LinkStatus, SideState};
