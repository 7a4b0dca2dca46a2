//! Sync status for people (V1–V5): what each failure means and how to fix it.

pub mod categories;
