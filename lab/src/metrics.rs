//! Each site's Infinispan metrics as the server exposes them (`GET /metrics`, the
//! Prometheus text format; anonymous unless the server's metrics authentication is on),
//! the part the fencing alert reads: `vendor_jgroups_site_view_status`.
//!
//! Source, Infinispan 15.0.22.Final: `core/.../xsite/events/XSiteViewMetrics.java`
//! registers the gauge `SiteViewStatus` under the `jgroups_` prefix with the tags
//! `node` (the transport's address) and `site` (the remote site), exported with the
//! `vendor_` prefix (`server/tests/.../XSiteRestMetricsOperations2.java` reads
//! `vendor_jgroups_site_view_status`); the site master reports 1 (online) or 0
//! (offline) for each remote site, every other node 2 (n/a); `MetricsResource` serves
//! `GET /metrics`. The guide's rule takes the minimum over the pods
//! (keycloak-benchmark `provision/infinispan/ispn-helm/templates/infinispan-alerts.yaml`).

use std::fmt::Write;

use crate::world::World;

/// The Prometheus exposition of `site`'s Infinispan cluster (every node's gauges; the
/// lab serves them on one endpoint, as a Service in front of the pods would be
/// scraped pod by pod).
pub fn exposition(w: &World, site: &str) -> String {
    let mut out = String::new();
    let Ok(s) = w.site(site) else {
        return out;
    };
    let _ = writeln!(
        out,
        "# HELP vendor_jgroups_site_view_status Returns the site status in JGroups view (0 -> offline, 1 -> online, 2 -> n/a)"
    );
    let _ = writeln!(out, "# TYPE vendor_jgroups_site_view_status gauge");
    let down = w.site_down(site);
    for remote in w.sites.keys().filter(|r| *r != site) {
        let online = !w.partitioned() && !w.site_down(remote) && !down;
        for (i, node) in s.nodes.iter().enumerate() {
            // The first node is the site master (the one with the cross-site bridge).
            let value = if i > 0 {
                2
            } else if online {
                1
            } else {
                0
            };
            let _ = writeln!(
                out,
                "vendor_jgroups_site_view_status{{node=\"{node}\",site=\"{remote}\"}} {value}"
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_master_reports_the_remote_site_and_a_partition_makes_it_0() {
        let mut w = World::new(&crate::Shape::default(), std::time::Instant::now());
        let text = exposition(&w, "site-a");
        assert!(
            text.contains(
                "vendor_jgroups_site_view_status{node=\"site-a-infinispan-0\",site=\"site-b\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "vendor_jgroups_site_view_status{node=\"site-a-infinispan-1\",site=\"site-b\"} 2"
            ),
            "{text}"
        );
        w.faults.push(crate::Fault::Partition);
        let text = exposition(&w, "site-a");
        assert!(
            text.contains("{node=\"site-a-infinispan-0\",site=\"site-b\"} 0"),
            "{text}"
        );
    }
}
