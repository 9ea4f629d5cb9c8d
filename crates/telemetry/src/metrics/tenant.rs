//! Whose calls a series counts: a tenant's label values (project, project id, App ID), their hash kept by
//! whoever keeps a tenant for many calls, and the folded labels every tenant past the limit is counted under.

use std::num::NonZeroU64;
use std::sync::LazyLock;

use super::series::label_hash;

/// The label values calls beyond the limit are counted under.
pub(super) const FOLDED: &str = "other";

/// Whose calls a series counts: its first three label values, `project`, `project_id` and `app_id`, and their
/// hash when it was kept: a tenant kept for many calls hashes its labels once ([`TenantLabels::hashed`]), where
/// hashing them for each call's series cost ~170 instructions. Others are hashed when they are counted.
#[derive(Clone, Copy, Debug)]
pub struct TenantLabels<'a> {
    /// The project's name (unique within its organization).
    pub project: &'a str,
    /// The project's id (unique in the installation).
    pub project_id: &'a str,
    /// The App ID.
    pub app_id: &'a str,
    kept_hash: Option<TenantHash>,
}

/// The hash of a tenant's labels, kept beside them by whoever keeps them for many calls. Never zero, so that an
/// `Option` of it takes no more room than the hash: a label set hashing to zero is not kept, only hashed again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TenantHash(NonZeroU64);

/// Labels are alike when their values are, whether or not their hash was kept.
impl PartialEq for TenantLabels<'_> {
    fn eq(&self, other: &TenantLabels<'_>) -> bool {
        self.values() == other.values()
    }
}

impl Eq for TenantLabels<'_> {}

impl<'a> TenantLabels<'a> {
    pub fn new(project: &'a str, project_id: &'a str, app_id: &'a str) -> TenantLabels<'a> {
        TenantLabels { project, project_id, app_id, kept_hash: None }
    }

    /// The labels of a tenant whose [`hash`](Self::hash) was kept with them.
    pub fn hashed(project: &'a str, project_id: &'a str, app_id: &'a str, hash: TenantHash) -> TenantLabels<'a> {
        let labels = TenantLabels { project, project_id, app_id, kept_hash: Some(hash) };
        debug_assert_eq!(Some(hash), TenantLabels::new(project, project_id, app_id).hash(), "a hash of other labels");
        labels
    }

    /// The hash to keep with the labels (none for the one label set in 2^64 that hashes to zero).
    pub fn hash(&self) -> Option<TenantHash> {
        NonZeroU64::new(self.hash_value()).map(TenantHash)
    }

    /// The labels' hash: kept, or made now.
    pub(super) fn hash_value(&self) -> u64 {
        match self.kept_hash {
            Some(kept) => kept.0.get(),
            None => label_hash(&self.values()),
        }
    }

    /// The labels calls of tenants past the series limit are counted under.
    pub(super) const FOLDED: TenantLabels<'static> =
        TenantLabels { project: FOLDED, project_id: FOLDED, app_id: FOLDED, kept_hash: None };

    /// The label values, in the order of the label names [`TENANT_LABELS`] starts a series' names with.
    pub(super) fn values(self) -> [&'a str; 3] {
        [self.project, self.project_id, self.app_id]
    }

    /// Whether these are the folded tenants' labels.
    pub(super) fn folded(self) -> bool {
        self.project_id == FOLDED
    }
}

/// [`TenantLabels::FOLDED`] with their hash kept, made once: every call of a tenant past the limit is counted under
/// them, and hashing them for each cost ~100 instructions.
pub(super) static FOLDED_TENANT: LazyLock<TenantLabels<'static>> = LazyLock::new(|| {
    let folded = TenantLabels::FOLDED;
    TenantLabels { kept_hash: folded.hash(), ..folded }
});

/// A label naming one of a tenant's own things (a topic, a workflow): folded tenants' names are not kept.
pub(super) fn named(folded: bool, name: &str) -> &str {
    if folded {
        FOLDED
    } else {
        name
    }
}

/// The label names of a series counted per tenant start with these.
pub(super) const TENANT_LABELS: [&str; 3] = ["project", "project_id", "app_id"];

/// The label names of a series counted per tenant: [`TENANT_LABELS`], then `more`.
pub(crate) fn tenant_labels(more: &[&'static str]) -> Vec<&'static str> {
    TENANT_LABELS.iter().chain(more).copied().collect()
}
