//! The lab's Keycloak at each site: its instances as they scale and roll, its database.

#[allow(unused_imports)]
use super::*;

impl World {
    fn per_instance(&self, scaling_down: bool) -> Duration {
        let mut d = self.scaled(production::KEYCLOAK_INSTANCE);
        if scaling_down {
            for f in &self.faults {
                if let Fault::SlowScaleDown { extra } = f {
                    d += *extra;
                }
            }
        }
        d
    }

    /// Ready instances now: they follow `spec` one instance per scaled period.
    pub fn keycloak_ready(&self, site: &str, now: Instant) -> u32 {
        let Some(s) = self.sites.get(site) else {
            return 0;
        };
        if self.site_down(site) {
            return 0;
        }
        let k = &s.keycloak;
        if k.rolling_until.is_some_and(|t| now < t) && k.spec > 0 {
            return k.spec - 1;
        }
        let down = k.spec < k.from;
        let per = self.per_instance(down);
        let steps = if per.is_zero() {
            u32::MAX
        } else {
            (now.saturating_duration_since(k.changed_at).as_nanos() / per.as_nanos().max(1))
                .min(u32::MAX as u128) as u32
        };
        if down {
            k.from.saturating_sub(steps).max(k.spec)
        } else {
            k.from.saturating_add(steps).min(k.spec)
        }
    }

    /// Set `spec.instances`, as a patch to the Keycloak CR or its scale subresource does.
    pub fn scale_keycloak(
        &mut self,
        site: &str,
        instances: u32,
        now: Instant,
    ) -> Result<(), IspnError> {
        let ready = self.keycloak_ready(site, now);
        let s = self.site_mut(site)?;
        if s.keycloak.spec != instances {
            s.keycloak.from = ready;
            s.keycloak.spec = instances;
            s.keycloak.generation += 1;
            s.keycloak.changed_at = now;
        }
        Ok(())
    }

    /// Set `spec.db`: a new value rolls the pods, one at a time (the operator's
    /// StatefulSet update), each taking an instance's start time.
    pub fn set_keycloak_db(&mut self, site: &str, db: Json, now: Instant) -> Result<(), IspnError> {
        let per = self.per_instance(false);
        let s = self.site_mut(site)?;
        if s.keycloak.db != db {
            s.keycloak.db = db;
            s.keycloak.generation += 1;
            s.keycloak.changed_at = now;
            s.keycloak.rolling_until = Some(now + per * s.keycloak.spec.max(1));
        }
        Ok(())
    }

    /// The Keycloak CR's `status`, as the operator writes it.
    pub fn keycloak_status(&self, site: &str, now: Instant) -> Json {
        let Some(s) = self.sites.get(site) else {
            return json!({});
        };
        let k = &s.keycloak;
        let ready = self.keycloak_ready(site, now);
        // The operator notices a new generation after a moment.
        let observed =
            if now.saturating_duration_since(k.changed_at) >= self.per_instance(false) / 4 {
                k.generation
            } else {
                k.observed_generation.max(k.generation.saturating_sub(1))
            };
        let rolling = ready != k.spec && k.spec > 0;
        // The real operator reports Ready=True at 0 instances at once, before the pods
        // are gone: do the same, so the steps must not trust it.
        let is_ready = k.spec == 0 || (ready == k.spec && !self.site_down(site));
        let cond = |t: &str, v: bool, msg: &str| json!({"type": t, "status": if v { "True" } else { "False" }, "message": msg, "observedGeneration": observed, "lastTransitionTime": "2026-01-01T00:00:00Z"});
        let mut status = json!({
            "selector": format!("app=keycloak,app.kubernetes.io/instance={}", k.name),
            "observedGeneration": observed,
            "conditions": [
                cond("Ready", is_ready, if is_ready { "" } else { "Waiting for more replicas" }),
                cond("HasErrors", false, ""),
                cond("RollingUpdate", rolling, if rolling { "Rolling out deployment update" } else { "" }),
            ],
        });
        if ready > 0 {
            status["instances"] = json!(ready);
        }
        status
    }

    /// Pods of the Keycloak StatefulSet that exist now (scaling down removes them one
    /// per period; scaling up adds ready ones).
    pub fn keycloak_pods(&self, site: &str, now: Instant) -> u32 {
        self.keycloak_ready(site, now)
    }
}
