//! "Did you mean": the closest of the known names to a mistyped one, by the
//! Jaro-Winkler similarity clap uses for its own suggestions.

/// `; did you mean `NAME`?` for the known name most like `typed`, when one is close
/// enough (similarity above 0.8, as clap's threshold); else nothing.
pub fn did_you_mean<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    // A pack's prefix (`keycloak-26/`) is compared with and without.
    fn bare(s: &str) -> &str {
        s.rsplit('/').next().unwrap_or(s)
    }
    known
        .into_iter()
        .map(|k| {
            let score =
                strsim::jaro_winkler(typed, k).max(strsim::jaro_winkler(bare(typed), bare(k)));
            (score, k)
        })
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!("; did you mean `{k}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn a_close_name_is_suggested_and_a_far_one_is_not() {
        let known = [
            "switchover",
            "switchback",
            "failover",
            "recover-passive-site",
        ];
        assert_eq!(
            did_you_mean("swichover", known),
            "; did you mean `switchover`?"
        );
        assert_eq!(
            did_you_mean("recover-pasive-site", known),
            "; did you mean `recover-passive-site`?"
        );
        assert_eq!(did_you_mean("zzz", known), "");
        assert_eq!(
            did_you_mean(
                "keycloak-26/take-site-ofline",
                ["keycloak-26/take-site-offline", "keycloak-26/fence-site"]
            ),
            "; did you mean `keycloak-26/take-site-offline`?"
        );
        assert_eq!(
            did_you_mean("secondry", ["primary", "secondary"]),
            "; did you mean `secondary`?"
        );
    }
}
