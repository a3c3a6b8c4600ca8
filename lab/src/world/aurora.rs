//! The lab's Aurora cluster: one writer, a failover to the other instance.

#[allow(unused_imports)]
use super::*;

impl World {
    /// Start a failover to `target` (or to the other instance). Errors carry the AWS code.
    pub fn aurora_failover(
        &mut self,
        cluster: &str,
        target: Option<&str>,
        now: Instant,
    ) -> Result<(), (&'static str, String)> {
        if cluster != self.aurora.cluster {
            return Err((
                "DBClusterNotFoundFault",
                format!("DBCluster {cluster} not found."),
            ));
        }
        if self.aurora.failover.is_some() {
            return Err((
                "InvalidDBClusterStateFault",
                format!("DBCluster {cluster} is in a state which is not valid for failover: failing-over"),
            ));
        }
        let target = match target {
            Some(t) => {
                if !self.aurora.instances.iter().any(|i| i.id == t) {
                    return Err((
                        "InvalidDBInstanceState",
                        format!("Database instance {t} is not a member of DBCluster {cluster}"),
                    ));
                }
                t.to_string()
            }
            None => self
                .aurora
                .instances
                .iter()
                .find(|i| i.id != self.aurora.writer)
                .map(|i| i.id.clone())
                .unwrap_or_default(),
        };
        let t = self.scaled(production::AURORA_FAILOVER);
        self.aurora.failover = Some((target, now + t));
        Ok(())
    }

    pub fn aurora_status(&self) -> &'static str {
        if self.aurora.failover.is_some() {
            "failing-over"
        } else {
            "available"
        }
    }
}
