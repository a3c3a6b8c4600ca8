//! The vendors this build knows: one row each. A vendor is a folder of the step
//! library (`route53/`, `accelerator/`, `aurora/`, `pgo/`, …) that says everything
//! about itself through [`Vendor`]: the role section it is configured in and how that
//! section is read and checked, its actions, the roles it plays, how one of its
//! endpoints proves which site it is, which of its API's error codes trying again
//! cannot fix, and the guards it adds. The roles (`roles.rs`), the identity guard
//! (`preflight.rs`), the environment file's validation (`config/`) and the retry
//! decision loop over this list and name no vendor.
//!
//! A new vendor: its folder, with a `vendor.rs` implementing [`Vendor`]
//! (`crate::vendor`), and one row in [`all`].

use crate::config::{Concern, SiteConfig, VendorSection};
pub use crate::vendor::Vendor;

/// Every vendor, one row each.
pub fn all() -> [&'static dyn Vendor; 6] {
    [
        &crate::route53::vendor::VENDOR,
        &crate::accelerator::vendor::VENDOR,
        &crate::aurora::vendor::VENDOR,
        &crate::pgo::vendor::VENDOR,
        &crate::haproxy::vendor::VENDOR,
        &crate::cnpg::vendor::VENDOR,
    ]
}

/// The vendors' configuration sections, for the environment file's schema.
pub fn sections() -> Vec<&'static dyn VendorSection> {
    all()
        .into_iter()
        .map(|v| v as &'static dyn VendorSection)
        .collect()
}

/// The vendor named `name` for `concern`.
pub fn named(concern: Concern, name: &str) -> Option<&'static dyn Vendor> {
    all()
        .into_iter()
        .find(|v| v.concern() == concern && v.vendor() == name)
}

/// The vendor a site's section names for `concern`.
pub fn of_site(site: &SiteConfig, concern: Concern) -> Option<&'static dyn Vendor> {
    named(concern, site.vendor(concern)?)
}

/// The vendor whose endpoint `action` talks to, if any.
pub fn touched_by(action: &str) -> Option<&'static dyn Vendor> {
    all().into_iter().find(|v| v.touches(action))
}

/// What the operator writes to name a vendor for `concern`, for messages.
pub fn examples(concern: Concern) -> String {
    let each: Vec<String> = all()
        .into_iter()
        .filter(|v| v.concern() == concern)
        .map(|v| format!("{}: {{ {} }}", concern.as_str(), v.example()))
        .collect();
    each.join(" or ")
}

/// Every AWS error code some vendor says trying again cannot fix.
pub fn permanent_codes() -> Vec<&'static str> {
    all()
        .into_iter()
        .flat_map(|v| v.permanent_codes().iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use engine::env::Environment;

    use crate::config::{of, sites, Concern};

    const ROLES: &str = "aws: { region: eu-west-1 }\nsites:\n  site-a:\n    traffic:\n      route53: { health_check_id: hc-a, hosted_zone_id: Z1, client_domain: kc.example }\n    database:\n      aurora: { cluster: kc, instance: kc-1, zone: eu-west-1a }\n  site-b:\n    traffic:\n      route53: { health_check_id: hc-b, hosted_zone_id: Z1 }\n    database:\n      aurora: { cluster: kc, instance: kc-2, zone: eu-west-1b }\n";

    fn parse(text: &str) -> Result<Environment, String> {
        Environment::parse(text, Path::new("env.yaml"), &crate::schema()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_role_section_is_typed_by_the_vendor_it_names() {
        let env = parse(ROLES).unwrap();
        let s = sites(&env);
        let r = crate::route53::config::section(&s["site-a"]).unwrap();
        assert_eq!(r.health_check_id, "hc-a");
        assert_eq!(
            crate::aurora::vendor::section(&s["site-b"])
                .unwrap()
                .instance,
            "kc-2"
        );
        assert_eq!(
            crate::route53::config::deployment(&env),
            (Some("Z1".into()), Some("kc.example".into()))
        );
        assert_eq!(crate::aurora::vendor::cluster(&env).as_deref(), Some("kc"));
        assert!(of(&env).deprecated.is_empty(), "{:?}", of(&env).deprecated);
        // Another vendor's view of the same section is nothing.
        assert!(crate::accelerator::vendor::section(&s["site-a"]).is_none());
    }

    #[test]
    fn the_old_keys_convert_into_the_current_shape_and_are_noted() {
        let old = "aws: { region: eu-west-1, aurora_cluster: kc, hosted_zone_id: Z9, client_domain: d.example }\nsites:\n  site-a:\n    route53: { health_check_id: hc-a }\n    aurora: { instance: kc-1 }\n";
        let env = parse(old).unwrap();
        let a = &sites(&env)["site-a"];
        // What the actions read is the current shape, whole.
        let r = crate::route53::config::section(a).unwrap();
        assert_eq!(
            (r.health_check_id.as_str(), r.hosted_zone_id.as_deref()),
            ("hc-a", Some("Z9"))
        );
        assert_eq!(a.vendor(Concern::Database), Some("aurora"));
        assert_eq!(crate::aurora::vendor::cluster(&env).as_deref(), Some("kc"));
        assert!(
            a.route53.is_none() && a.aurora.is_none(),
            "nothing reads the old keys"
        );
        let d = &of(&env).deprecated;
        assert!(
            d.iter()
                .any(|n| n
                    .contains("sites.site-a.route53: write it as sites.site-a.traffic.route53")),
            "{d:?}"
        );
        assert!(d.iter().any(|n| n.contains("aws.aurora_cluster")), "{d:?}");
    }

    #[test]
    fn a_setting_given_twice_or_a_vendor_given_both_ways_is_refused_where_it_is() {
        let twice = ROLES.replace(
            "{ cluster: kc, instance: kc-2",
            "{ cluster: other, instance: kc-2",
        );
        let e = parse(&twice).unwrap_err();
        assert!(
            e.contains("the Aurora cluster is given twice, as `kc` and `other`"),
            "{e}"
        );
        let both = "sites:\n  site-a:\n    route53: { health_check_id: x }\n    traffic:\n      route53: { health_check_id: y }\n";
        let e = parse(both).unwrap_err();
        assert!(e.contains("gives Route53 twice"), "{e}");
        let two = "sites:\n  site-a:\n    database:\n      aurora: { instance: i-1 }\n      pgo: { cluster: hippo, address: \"a:1\" }\n";
        let e = parse(two).unwrap_err();
        assert!(e.contains("names two vendors (aurora and pgo)"), "{e}");
    }

    #[test]
    fn a_vendor_checks_its_own_section_and_an_unknown_one_is_named_with_its_line() {
        let pgo = "sites:\n  site-a:\n    database:\n      pgo: { cluster: hippo, address: \"pg-a.example.com:5432\" }\n";
        let env = parse(pgo).unwrap();
        assert_eq!(sites(&env)["site-a"].vendor(Concern::Database), Some("pgo"));
        let bad = "sites:\n  site-a:\n    database:\n      pgo:\n        cluster: hippo\n        address: pg-a.example.com\n";
        let e = parse(bad).unwrap_err();
        assert!(
            e.contains("is not host:port") && e.starts_with("env.yaml:6:"),
            "{e}"
        );
        let typo = "sites:\n  site-a:\n    x: 1\n  site-b:\n    traffic:\n      accelerator:\n        name: ga\n        load_balancr: nlb\n";
        let e = parse(typo).unwrap_err();
        assert!(e.contains("unknown field `x`"), "{e}");
        let typo = typo.replace("    x: 1\n", "");
        let e = parse(&typo).unwrap_err();
        assert!(
            e.starts_with(
                "env.yaml:7:1: sites.site-b.traffic.accelerator: unknown field `load_balancr`"
            ),
            "{e}"
        );
        let unknown = "sites:\n  site-a:\n    traffic:\n      f5: { pool: p }\n";
        let e = parse(unknown).unwrap_err();
        assert!(
            e.starts_with("env.yaml:4:1: sites.site-a.traffic: unknown traffic vendor `f5` (this build knows: route53, accelerator"),
            "{e}"
        );
    }

    #[test]
    fn every_vendor_plays_only_roles_of_its_concern_and_registers_its_actions() {
        let registry = crate::registry();
        for v in super::all() {
            for (role, action) in v.plays() {
                assert_eq!(
                    crate::roles::concern_of(role),
                    Some(v.concern()),
                    "{} plays {role}",
                    v.vendor()
                );
                assert!(registry.get(action.name()).is_some(), "{}", action.name());
            }
            for a in v.actions() {
                assert!(registry.get(a.name()).is_some(), "{}", a.name());
            }
        }
        // The retry decision knows each vendor's permanent codes.
        for code in super::permanent_codes() {
            assert!(!engine::StepError::aws(code, "x").retryable, "{code}");
        }
        assert!(engine::StepError::aws("ThrottlingException", "x").retryable);
    }
}
