//! The command line.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::api::Secret;

const GLOBAL: &str = "Global options";

/// Operate a HubSpot ↔ QuickBooks Online deployment through its admin API.
#[derive(Debug, Parser)]
#[command(name = "hubspot-qbo", version)]
pub struct Cli {
    /// Base URL of the admin function
    #[arg(
        long,
        env = "HUBSPOT_QBO_ADMIN_URL",
        global = true,
        value_name = "URL",
        help_heading = GLOBAL
    )]
    pub url: Option<String>,
    /// Operator key, sent as a bearer token (prefer the environment variable)
    #[arg(
        long,
        env = "HUBSPOT_QBO_OPERATOR_KEY",
        hide_env_values = true,
        global = true,
        value_name = "KEY",
        help_heading = GLOBAL
    )]
    pub key: Option<Secret>,
    /// Print the API's JSON answer (pretty) instead of tables
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the connections (portal ↔ company)
    Connections,
    /// Each object of a connection: whether it syncs, and its records by status
    Overview {
        /// Connection id (as `connections` lists it)
        connection: String,
    },
    /// List an object's records, filtered and paged
    Records {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        #[command(flatten)]
        filter: Filter,
        #[command(flatten)]
        page: Page,
    },
    /// List an object's failing records with their category and reason
    Failing {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        /// Only failures of this category
        #[arg(long)]
        category: Option<String>,
        /// Text looked for in ids, match key and reason
        #[arg(long)]
        search: Option<String>,
        #[command(flatten)]
        page: Page,
    },
    /// One record: its state, its failure explained, its activity
    Record {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        /// The side the record id is from
        side: Side,
        /// The record's id on that side
        record: String,
    },
    /// Download an object's records as CSV
    Export {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        #[command(flatten)]
        filter: Filter,
        /// File to write (stdout without it)
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Try failing records again now
    Retry {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        #[command(flatten)]
        target: RetryTarget,
    },
    /// Read or change an object's sync settings
    Settings {
        #[command(subcommand)]
        action: SettingsCommand,
    },
    /// What candidate settings would do, without writing anything
    Preview {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        /// Candidate settings (JSON); without it, the saved settings
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// The connection's recent workflow-action runs
    Runs {
        /// Connection id (as `connections` lists it)
        connection: String,
    },
    /// Every failure category: what it means and what to do
    Categories,
}

#[derive(Debug, Subcommand)]
pub enum SettingsCommand {
    /// Print an object's settings and their version
    Show {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
    },
    /// Replace an object's settings with a JSON file
    Edit {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
        /// The settings document (JSON): the `settings` of `settings show --json`
        #[arg(long, value_name = "FILE")]
        file: PathBuf,
        /// The version read (refused if the settings changed since)
        #[arg(long, value_name = "N")]
        version: Option<u64>,
    },
    /// Delete an object's settings
    Delete {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
    },
    /// Add the recommended settings back
    Restore {
        /// Connection id (as `connections` lists it)
        connection: String,
        /// The synced object
        object: Object,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct Filter {
    /// Only records of this status
    #[arg(long)]
    pub status: Option<Status>,
    /// Only failures of this category
    #[arg(long)]
    pub category: Option<String>,
    /// Text looked for in ids, match key and reason
    #[arg(long)]
    pub search: Option<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct Page {
    /// Records per page (1 to 500)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=500))]
    pub limit: Option<u16>,
    /// Continue after this page position (a previous page's `next`)
    #[arg(long, value_name = "CURSOR")]
    pub after: Option<String>,
}

/// One record (`--record hubspot:51`), a category, or every failing record.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct RetryTarget {
    /// One record, as <hubspot|qbo>:<id>
    #[arg(long, value_name = "SIDE:ID")]
    pub record: Option<RecordRef>,
    /// Every failing record of this category
    #[arg(long)]
    pub category: Option<String>,
    /// Every failing record
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Object {
    Contact,
    Product,
    Invoice,
}

impl Object {
    pub fn as_str(self) -> &'static str {
        match self {
            Object::Contact => "contact",
            Object::Product => "product",
            Object::Invoice => "invoice",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Side {
    Hubspot,
    #[value(alias = "quickbooks")]
    Qbo,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Hubspot => "hubspot",
            Side::Qbo => "qbo",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Status {
    Synced,
    Failing,
    Excluded,
    Pending,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Synced => "synced",
            Status::Failing => "failing",
            Status::Excluded => "excluded",
            Status::Pending => "pending",
        }
    }
}

/// A record named by its side and id: `hubspot:51`, `qbo:7`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRef {
    pub side: Side,
    pub id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordRefError(String);

impl fmt::Display for RecordRefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RecordRefError {}

impl FromStr for RecordRef {
    type Err = RecordRefError;

    fn from_str(text: &str) -> Result<Self, RecordRefError> {
        let Some((side, id)) = text.split_once(':') else {
            return Err(RecordRefError(format!(
                "{text:?} is not <hubspot|qbo>:<id> (like hubspot:51)"
            )));
        };
        let side = match side.trim().to_ascii_lowercase().as_str() {
            "hubspot" => Side::Hubspot,
            "qbo" | "quickbooks" => Side::Qbo,
            other => {
                return Err(RecordRefError(format!(
                    "{other:?} is not hubspot or qbo (like hubspot:51)"
                )))
            }
        };
        let id = id.trim();
        if id.is_empty() {
            return Err(RecordRefError(format!(
                "the record id after \"{}:\" is empty",
                side.as_str()
            )));
        }
        Ok(Self {
            side,
            id: id.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn record_refs() {
        type Want = Result<(Side, &'static str), &'static str>;
        let cases: &[(&str, Want)] = &[
            ("hubspot:51", Ok((Side::Hubspot, "51"))),
            ("qbo:7", Ok((Side::Qbo, "7"))),
            ("QuickBooks: 7 ", Ok((Side::Qbo, "7"))),
            ("hubspot:a:b", Ok((Side::Hubspot, "a:b"))),
            ("51", Err("is not <hubspot|qbo>:<id>")),
            ("salesforce:51", Err("\"salesforce\" is not hubspot or qbo")),
            ("hubspot:", Err("the record id after \"hubspot:\" is empty")),
            (":51", Err("\"\" is not hubspot or qbo")),
        ];
        for (text, want) in cases {
            let got = text.parse::<RecordRef>();
            match (want, got) {
                (Ok((side, id)), Ok(r)) => {
                    assert_eq!((r.side, r.id.as_str()), (*side, *id), "{text}")
                }
                (Err(part), Err(e)) => assert!(e.to_string().contains(part), "{text}: {e}"),
                (want, got) => panic!("{text}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn retry_needs_exactly_one_target() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["hubspot-qbo", "retry", "c1", "contact"].iter().chain(args))
        };
        assert!(parse(&[]).is_err());
        assert!(parse(&["--all", "--category", "x"]).is_err());
        let err = parse(&["--record", "nope"]).unwrap_err().to_string();
        assert!(err.contains("is not <hubspot|qbo>:<id>"), "{err}");
        match parse(&["--record", "hubspot:51"]).unwrap().command {
            Command::Retry { target, .. } => assert_eq!(
                target.record,
                Some(RecordRef {
                    side: Side::Hubspot,
                    id: "51".into()
                })
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn limit_is_bounded() {
        let parse = |n: &str| {
            Cli::try_parse_from(["hubspot-qbo", "records", "c1", "contact", "--limit", n])
        };
        assert!(parse("0").is_err());
        assert!(parse("501").is_err());
        assert!(parse("500").is_ok());
    }

    #[test]
    fn key_is_not_in_debug_of_the_command_line() {
        let cli =
            Cli::try_parse_from(["hubspot-qbo", "--key", "op-key-42", "connections"]).unwrap();
        assert!(!format!("{cli:?}").contains("op-key-42"));
    }
}
