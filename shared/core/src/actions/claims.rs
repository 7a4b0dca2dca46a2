//! Exactly once: each workflow-action execution (its portal and `callbackId`) is claimed in the
//! store before any external write, with a lease. A retry or a duplicate of it finds the claim:
//! done, it gets the first answer; in progress under a live lease, it is told to wait; in
//! progress under a lapsed lease (a worker died), it takes the claim over and makes the same
//! document with the same `requestid`, so QuickBooks answers the first one instead of making a
//! second. The outcome is recorded before HubSpot is answered.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::request::ActionOutcome;
use super::ActionKind;
use crate::domain::{PortalId, QboRequestId};
use crate::store::{
    keys, CasOutcome, Item, ItemKey, Store, StoreError, Table, TransactOutcome, TransactWrite,
};

/// How long a claim holds before another attempt may take it over.
pub const CLAIM_LEASE_SECONDS: i64 = 120;
/// How long a finished run is remembered (HubSpot retries for days at most).
pub const RUN_TTL_SECONDS: i64 = 30 * 24 * 3600;

/// One execution as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRun {
    pub kind: String,
    pub callback_id: String,
    /// The QBO `requestid` its document is made with (the same on every attempt).
    pub requestid: String,
    pub started_at: i64,
    pub attempts: u32,
    /// HubSpot was answered BLOCK: the outcome goes to its callback API.
    #[serde(default)]
    pub deferred: bool,
    /// The outcome reached HubSpot's callback API.
    #[serde(default)]
    pub completed: bool,
    #[serde(flatten)]
    pub state: RunState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RunState {
    InProgress {
        lease_until: i64,
    },
    /// Answered BLOCK: the deferred-work queue finishes it and completes it through
    /// HubSpot's callback API.
    Deferred {
        since: i64,
    },
    Done {
        outcome: ActionOutcome,
        finished_at: i64,
    },
}

/// Who claims: HubSpot's call (which must not take over deferred work) or the deferred-work
/// consumer (which takes it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claimant {
    Call,
    DeferredWork,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This attempt runs the execution; `version` is what its record must be written over.
    Run {
        version: u64,
        requestid: QboRequestId,
        /// A lapsed attempt was taken over (its document may exist: the requestid settles it).
        taken_over: bool,
    },
    /// Another attempt runs it now.
    Busy,
    /// It answered BLOCK and is finished by the deferred-work queue.
    Deferred,
    /// It ran: the first answer.
    Done(ActionOutcome),
}

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another attempt took this execution over; its answer stands")]
    Lost,
    #[error("{0}")]
    Invalid(String),
}

pub struct ActionClaims {
    store: Arc<dyn Store>,
}

fn key(portal: &PortalId, callback_id: &str) -> ItemKey {
    keys::action_runs::run(portal, callback_id)
}

impl ActionClaims {
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self { store }
    }

    /// Claims an execution for this attempt at `now`.
    pub async fn claim(
        &self,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        now: i64,
    ) -> Result<Claim, ClaimError> {
        self.claim_as(Claimant::Call, portal, callback_id, kind, now)
            .await
    }

    /// Claims an execution for `claimant`: the deferred-work consumer takes deferred work
    /// over, a call is told it is deferred.
    pub async fn claim_as(
        &self,
        claimant: Claimant,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        now: i64,
    ) -> Result<Claim, ClaimError> {
        let requestid = super::request::requestid(portal, callback_id, kind)
            .map_err(|e| ClaimError::Invalid(e.to_string()))?;
        let key = key(portal, callback_id);
        // A race lost to another attempt is read again; a few rounds settle it.
        for _ in 0..4 {
            let found = self.store.get(Table::ActionRuns, &key, now).await?;
            let (previous, version) = match found {
                None => (None, None),
                Some(item) => (Some(item.to_value::<ActionRun>()?), Some(item.version)),
            };
            let attempts = match &previous {
                Some(ActionRun {
                    state: RunState::Done { outcome, .. },
                    ..
                }) => return Ok(Claim::Done(outcome.clone())),
                Some(ActionRun {
                    state: RunState::InProgress { lease_until },
                    ..
                }) if *lease_until > now => return Ok(Claim::Busy),
                Some(ActionRun {
                    state: RunState::Deferred { .. },
                    ..
                }) if claimant == Claimant::Call => return Ok(Claim::Deferred),
                Some(run) => run.attempts + 1,
                None => 1,
            };
            let run = ActionRun {
                kind: kind.document().to_owned(),
                callback_id: callback_id.to_owned(),
                requestid: requestid.as_str().to_owned(),
                started_at: previous.as_ref().map_or(now, |p| p.started_at),
                attempts,
                deferred: previous.as_ref().is_some_and(|p| p.deferred),
                completed: false,
                state: RunState::InProgress {
                    lease_until: now + CLAIM_LEASE_SECONDS,
                },
            };
            let item = Item::from_value(key.clone(), &run)?.expiring_at(now + RUN_TTL_SECONDS);
            match self
                .store
                .put_versioned(Table::ActionRuns, item, version)
                .await?
            {
                CasOutcome::Written { version } => {
                    return Ok(Claim::Run {
                        version,
                        requestid,
                        taken_over: previous.is_some(),
                    })
                }
                CasOutcome::VersionConflict => continue,
            }
        }
        Ok(Claim::Busy)
    }

    /// Records the outcome of the attempt that holds the claim (`version` from [`Claim::Run`]),
    /// with `records` (what the document links to), in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        version: u64,
        outcome: &ActionOutcome,
        records: Vec<(Table, Item)>,
        now: i64,
    ) -> Result<(), ClaimError> {
        let state = RunState::Done {
            outcome: outcome.clone(),
            finished_at: now,
        };
        self.move_to(portal, callback_id, kind, version, state, records, now)
            .await
    }

    /// Lets the next attempt take the execution over at once (this one could not finish it
    /// and says so to HubSpot, which tries again).
    pub async fn release(
        &self,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        version: u64,
        now: i64,
    ) -> Result<(), ClaimError> {
        let state = RunState::InProgress { lease_until: now };
        self.move_to(portal, callback_id, kind, version, state, Vec::new(), now)
            .await
    }

    /// Hands the execution to the deferred-work queue (HubSpot is answered BLOCK).
    pub async fn defer(
        &self,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        version: u64,
        now: i64,
    ) -> Result<(), ClaimError> {
        let state = RunState::Deferred { since: now };
        self.move_to(portal, callback_id, kind, version, state, Vec::new(), now)
            .await
    }

    /// Records that a deferred execution's outcome reached HubSpot's callback API.
    pub async fn mark_completed(
        &self,
        portal: &PortalId,
        callback_id: &str,
        now: i64,
    ) -> Result<(), ClaimError> {
        let key = key(portal, callback_id);
        for _ in 0..4 {
            let Some(item) = self.store.get(Table::ActionRuns, &key, now).await? else {
                return Err(ClaimError::Lost);
            };
            let mut run: ActionRun = item.to_value()?;
            if run.completed {
                return Ok(());
            }
            run.completed = true;
            let updated = Item::from_value(key.clone(), &run)?.expiring_at(now + RUN_TTL_SECONDS);
            match self
                .store
                .put_versioned(Table::ActionRuns, updated, Some(item.version))
                .await?
            {
                CasOutcome::Written { .. } => return Ok(()),
                CasOutcome::VersionConflict => continue,
            }
        }
        Err(ClaimError::Lost)
    }

    #[allow(clippy::too_many_arguments)]
    async fn move_to(
        &self,
        portal: &PortalId,
        callback_id: &str,
        kind: ActionKind,
        version: u64,
        state: RunState,
        records: Vec<(Table, Item)>,
        now: i64,
    ) -> Result<(), ClaimError> {
        let key = key(portal, callback_id);
        let Some(item) = self.store.get(Table::ActionRuns, &key, now).await? else {
            return Err(ClaimError::Lost);
        };
        if item.version != version {
            return Err(ClaimError::Lost);
        }
        let mut run: ActionRun = item.to_value()?;
        run.kind = kind.document().to_owned();
        run.deferred |= matches!(state, RunState::Deferred { .. });
        run.state = state;
        let item = Item::from_value(key, &run)?.expiring_at(now + RUN_TTL_SECONDS);
        let mut writes = vec![TransactWrite::PutVersioned {
            table: Table::ActionRuns,
            item,
            expected: Some(version),
        }];
        writes.extend(
            records
                .into_iter()
                .map(|(table, item)| TransactWrite::Put { table, item }),
        );
        match self.store.transact(writes).await? {
            TransactOutcome::Written => Ok(()),
            TransactOutcome::Conflict { .. } => Err(ClaimError::Lost),
        }
    }

    /// The recorded run of an execution, if any.
    pub async fn run(
        &self,
        portal: &PortalId,
        callback_id: &str,
        now: i64,
    ) -> Result<Option<ActionRun>, ClaimError> {
        match self
            .store
            .get(Table::ActionRuns, &key(portal, callback_id), now)
            .await?
        {
            Some(item) => Ok(Some(item.to_value()?)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::request::ExecutionState;
    use crate::store::memory::MemoryStore;
    use std::collections::BTreeMap;

    fn outcome(id: &str) -> ActionOutcome {
        ActionOutcome::new(
            ExecutionState::Success,
            BTreeMap::from([("qboDocumentId".to_owned(), id.to_owned())]),
        )
    }

    #[tokio::test]
    async fn each_execution_runs_once_and_retries_get_its_answer() {
        let claims = ActionClaims::new(Arc::new(MemoryStore::new()));
        let portal = PortalId::parse("62515").unwrap();
        let kind = ActionKind::CreateInvoice;
        let now = 1_000;
        let Claim::Run {
            version,
            requestid,
            taken_over,
        } = claims.claim(&portal, "ap-1", kind, now).await.unwrap()
        else {
            panic!("the first attempt runs");
        };
        assert!(!taken_over);
        // A duplicate while it runs waits; another execution runs on its own.
        assert_eq!(
            claims.claim(&portal, "ap-1", kind, now + 1).await.unwrap(),
            Claim::Busy
        );
        assert!(matches!(
            claims.claim(&portal, "ap-2", kind, now + 1).await.unwrap(),
            Claim::Run { .. }
        ));
        claims
            .finish(
                &portal,
                "ap-1",
                kind,
                version,
                &outcome("130"),
                Vec::new(),
                now + 2,
            )
            .await
            .unwrap();
        assert_eq!(
            claims.claim(&portal, "ap-1", kind, now + 3).await.unwrap(),
            Claim::Done(outcome("130"))
        );
        // A lapsed lease is taken over with the same requestid; the old holder's answer is lost.
        let Claim::Run { version: old, .. } =
            claims.claim(&portal, "ap-3", kind, now).await.unwrap()
        else {
            panic!("runs");
        };
        let later = now + CLAIM_LEASE_SECONDS + 1;
        let Claim::Run {
            version: new,
            requestid: again,
            taken_over,
        } = claims.claim(&portal, "ap-3", kind, later).await.unwrap()
        else {
            panic!("taken over");
        };
        assert!(taken_over);
        assert_eq!(
            again,
            crate::actions::request::requestid(&portal, "ap-3", kind).unwrap()
        );
        assert_ne!(again, requestid, "another execution, another requestid");
        assert!(matches!(
            claims
                .finish(&portal, "ap-3", kind, old, &outcome("1"), Vec::new(), later)
                .await,
            Err(ClaimError::Lost)
        ));
        claims
            .finish(&portal, "ap-3", kind, new, &outcome("2"), Vec::new(), later)
            .await
            .unwrap();
        assert_eq!(
            claims
                .claim(&portal, "ap-3", kind, later + 1)
                .await
                .unwrap(),
            Claim::Done(outcome("2"))
        );
    }

    #[tokio::test]
    async fn deferred_work_is_taken_by_the_worker_only_and_completed_once() {
        let claims = ActionClaims::new(Arc::new(MemoryStore::new()));
        let portal = PortalId::parse("62515").unwrap();
        let kind = ActionKind::CreateInvoice;
        let Claim::Run { version, .. } = claims.claim(&portal, "ap-9", kind, 10).await.unwrap()
        else {
            panic!("runs");
        };
        claims
            .defer(&portal, "ap-9", kind, version, 11)
            .await
            .unwrap();
        // HubSpot's retry of the call is told it is deferred; the worker takes it over.
        assert_eq!(
            claims.claim(&portal, "ap-9", kind, 12).await.unwrap(),
            Claim::Deferred
        );
        let Claim::Run {
            version,
            taken_over,
            ..
        } = claims
            .claim_as(Claimant::DeferredWork, &portal, "ap-9", kind, 12)
            .await
            .unwrap()
        else {
            panic!("the worker runs it");
        };
        assert!(taken_over);
        // A second worker while the first holds it waits.
        assert_eq!(
            claims
                .claim_as(Claimant::DeferredWork, &portal, "ap-9", kind, 13)
                .await
                .unwrap(),
            Claim::Busy
        );
        claims
            .finish(
                &portal,
                "ap-9",
                kind,
                version,
                &outcome("7"),
                Vec::new(),
                14,
            )
            .await
            .unwrap();
        let run = claims.run(&portal, "ap-9", 15).await.unwrap().unwrap();
        assert!(run.deferred && !run.completed);
        claims.mark_completed(&portal, "ap-9", 16).await.unwrap();
        claims.mark_completed(&portal, "ap-9", 17).await.unwrap();
        let run = claims.run(&portal, "ap-9", 18).await.unwrap().unwrap();
        assert!(run.deferred && run.completed);
        assert_eq!(
            claims.claim(&portal, "ap-9", kind, 19).await.unwrap(),
            Claim::Done(outcome("7"))
        );
        // A released claim is run again at once, with the same requestid.
        let Claim::Run {
            version, requestid, ..
        } = claims.claim(&portal, "ap-10", kind, 20).await.unwrap()
        else {
            panic!("runs");
        };
        claims
            .release(&portal, "ap-10", kind, version, 21)
            .await
            .unwrap();
        let Claim::Run {
            requestid: again, ..
        } = claims.claim(&portal, "ap-10", kind, 21).await.unwrap()
        else {
            panic!("runs again");
        };
        assert_eq!(again, requestid);
    }
}
