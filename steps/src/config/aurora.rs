//! The Aurora family's part of a site's section: `sites.NAME.aurora`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AuroraConfig {
    /// The Aurora instance in this site's availability zone.
    pub instance: String,
    /// The availability zone this site's instance is in (`DescribeDBInstances`'
    /// `AvailabilityZone`): what proves the instance belongs to this site.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}
