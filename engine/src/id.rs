//! Run ids.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A run's id: a number the store hands out once per journal, counting from 1 (short,
/// because operators type them), shown as `r-N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RunId(pub u64);

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "r-{}", self.0)
    }
}

/// Text that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a run id (they look like `r-12`)")]
pub struct BadRunId(pub String);

impl FromStr for RunId {
    type Err = BadRunId;
    fn from_str(s: &str) -> Result<RunId, BadRunId> {
        let digits = s.strip_prefix("r-").unwrap_or(s);
        digits
            .parse::<u64>()
            .map(RunId)
            .map_err(|_| BadRunId(s.to_string()))
    }
}

impl From<RunId> for String {
    fn from(id: RunId) -> String {
        id.to_string()
    }
}

impl TryFrom<String> for RunId {
    type Error = BadRunId;
    fn try_from(s: String) -> Result<RunId, BadRunId> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_parse_with_or_without_prefix() {
        assert_eq!("r-12".parse::<RunId>().unwrap(), RunId(12));
        assert_eq!("12".parse::<RunId>().unwrap(), RunId(12));
        assert!("r-x".parse::<RunId>().is_err());
    }
}
