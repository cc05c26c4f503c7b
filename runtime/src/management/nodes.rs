//! The nodes of an installation as the Management API lists them: what each last reported
//! (address, version, the revision it applied, its heartbeat), and whether it still runs.

use super::{Caller, Management, ManagementError};
use crate::model::NodeReport;
use crate::proto::{NodeView, NodesView};
use crate::store::Store;

/// How often a node reports itself, in seconds.
pub const HEARTBEAT_EVERY: u64 = 5;

/// A node silent for longer than this many seconds is listed as not live.
pub const LIVE_WITHIN: u64 = 3 * HEARTBEAT_EVERY;

/// `report` as the list shows it at `now`, against the current revision.
fn view(report: NodeReport, current: Option<i64>, now: u64) -> NodeView {
    let behind = match (current, report.applied_revision) {
        (Some(current), Some(applied)) => Some((current - applied).max(0)),
        _ => None,
    };
    NodeView {
        live: now.saturating_sub(report.heartbeat_at) <= LIVE_WITHIN,
        name: report.name,
        address: report.address,
        version: report.version,
        started_at: report.started_at,
        applied_revision: report.applied_revision,
        heartbeat_at: report.heartbeat_at,
        behind,
    }
}

impl Management {
    /// Every node sharing this installation's database, with the current revision; on sled,
    /// this node alone.
    pub async fn nodes(&self, _caller: &Caller, now: u64) -> Result<NodesView, ManagementError> {
        match &self.store {
            Store::Postgres(shared) => {
                let (current, reports) = shared.nodes().await?;
                Ok(NodesView {
                    revision: Some(current),
                    nodes: reports
                        .into_iter()
                        .map(|report| view(report, Some(current), now))
                        .collect(),
                })
            }
            Store::Sled(_) => {
                let this = NodeReport {
                    heartbeat_at: now,
                    ..self.node.clone()
                };
                Ok(NodesView {
                    revision: None,
                    nodes: vec![view(this, None, now)],
                })
            }
        }
    }

    /// This node as it reports itself at `now`, having applied revision `applied`.
    pub fn node_report(&self, applied: Option<i64>, now: u64) -> NodeReport {
        NodeReport {
            applied_revision: applied,
            heartbeat_at: now,
            ..self.node.clone()
        }
    }

    /// Runs `work` (a management operation) and says which revision of the change feed its
    /// writes produced (`None` when it wrote nothing, or on sled).
    pub async fn revision_written_by<F: Future>(work: F) -> (F::Output, Option<i64>) {
        crate::store::revision_written_by(work).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(applied: Option<i64>, heartbeat_at: u64) -> NodeReport {
        NodeReport {
            name: "a".into(),
            address: "127.0.0.1:1".into(),
            version: "0".into(),
            started_at: 0,
            applied_revision: applied,
            heartbeat_at,
        }
    }

    #[test]
    fn a_node_is_live_while_it_reports_and_behind_by_what_it_has_not_applied() {
        let now = 1_000;
        let fresh = view(report(Some(7), now - LIVE_WITHIN), Some(9), now);
        assert!(fresh.live);
        assert_eq!(fresh.behind, Some(2));
        let silent = view(report(Some(9), now - LIVE_WITHIN - 1), Some(9), now);
        assert!(!silent.live);
        assert_eq!(silent.behind, Some(0));
        assert_eq!(view(report(None, now), None, now).behind, None);
    }
}
