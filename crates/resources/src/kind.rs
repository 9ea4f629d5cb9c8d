//! The kinds of resource a project holds.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{validate_dns_label, validate_resource_name, Invalid};

/// The kind of a resource document. Serialized as its `kind` string ([`Kind::as_str`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum Kind {
    /// A Dapr component (state store, pub/sub...).
    Component,
    /// A Dapr declarative subscription.
    Subscription,
    /// A Dapr resiliency policy set.
    Resiliency,
    /// A Dapr configuration (access control, tracing, features...).
    Configuration,
    /// A Dapr HTTP endpoint for service invocation of non-Dapr services.
    #[serde(rename = "HTTPEndpoint")]
    HttpEndpoint,
    /// Outrigger's own document for an App ID, so that apply and export cover App IDs too.
    AppIdentity,
}

impl Kind {
    /// The five Dapr kinds, in the order the control API lists them.
    pub const DAPR: [Kind; 5] =
        [Kind::Component, Kind::Subscription, Kind::Resiliency, Kind::Configuration, Kind::HttpEndpoint];

    /// Every kind: the Dapr kinds, then [`Kind::AppIdentity`].
    pub const ALL: [Kind; 6] = [
        Kind::Component,
        Kind::Subscription,
        Kind::Resiliency,
        Kind::Configuration,
        Kind::HttpEndpoint,
        Kind::AppIdentity,
    ];

    /// The `kind` string of documents of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Component => "Component",
            Kind::Subscription => "Subscription",
            Kind::Resiliency => "Resiliency",
            Kind::Configuration => "Configuration",
            Kind::HttpEndpoint => "HTTPEndpoint",
            Kind::AppIdentity => "AppIdentity",
        }
    }

    /// The kind whose `kind` string is `text` (case-sensitive, as in Kubernetes).
    pub fn from_kind_str(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    /// The path segment of this kind's collection in the control API.
    pub fn collection(self) -> &'static str {
        match self {
            Kind::Component => "components",
            Kind::Subscription => "subscriptions",
            Kind::Resiliency => "resiliencies",
            Kind::Configuration => "configurations",
            Kind::HttpEndpoint => "httpendpoints",
            Kind::AppIdentity => "appids",
        }
    }

    /// The kind whose collection path segment is `segment`.
    pub fn from_collection(segment: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.collection() == segment)
    }

    /// The `apiVersion`s accepted for this kind; the first is the one stored and exported.
    pub fn api_versions(self) -> &'static [&'static str] {
        match self {
            Kind::Component | Kind::Resiliency | Kind::Configuration | Kind::HttpEndpoint => &["dapr.io/v1alpha1"],
            Kind::Subscription => &["dapr.io/v2alpha1", "dapr.io/v1alpha1"],
            Kind::AppIdentity => &["outrigger.io/v1alpha1", "cra.diagrid.io/v1beta1"],
        }
    }

    /// Checks `metadata.name`: Dapr resources follow Kubernetes' object name rule, App IDs
    /// are DNS labels because they become host names.
    pub(crate) fn check_name(self, name: &str) -> Result<(), Invalid> {
        match self {
            Kind::AppIdentity => validate_dns_label(name),
            _ => validate_resource_name(name),
        }
    }

    /// Why documents of this kind take no `scopes`, or `None` if they do.
    pub(crate) fn scopes_refusal(self) -> Option<&'static str> {
        match self {
            Kind::Configuration => {
                Some("Configuration documents take no scopes; an App ID picks its configuration with its config field")
            }
            Kind::AppIdentity => Some("AppIdentity documents take no scopes"),
            _ => None,
        }
    }

    /// Whether documents of this kind may name a secret store in `auth`, as Dapr's
    /// Component and HTTPEndpoint resources do.
    pub(crate) fn takes_auth(self) -> bool {
        matches!(self, Kind::Component | Kind::HttpEndpoint)
    }

    /// Every kind string, for messages that list them.
    pub(crate) fn known_kinds() -> String {
        Kind::ALL.map(Kind::as_str).join(", ")
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_and_collection_strings_round_trip() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_kind_str(kind.as_str()), Some(kind));
            assert_eq!(Kind::from_collection(kind.collection()), Some(kind));
        }
        assert_eq!(Kind::HttpEndpoint.as_str(), "HTTPEndpoint");
        assert_eq!(Kind::AppIdentity.collection(), "appids");
        assert_eq!(Kind::from_kind_str("component"), None);
        assert_eq!(Kind::from_collection("component"), None);
    }

    #[test]
    fn serde_uses_the_kind_string() {
        for kind in Kind::ALL {
            let json = serde_json::to_value(kind).unwrap();
            assert_eq!(json, serde_json::Value::String(kind.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<Kind>(json).unwrap(), kind);
        }
        assert!(serde_json::from_str::<Kind>("\"HttpEndpoint\"").is_err());
    }

    #[test]
    fn dapr_kinds_exclude_app_identity_and_keep_their_order() {
        assert_eq!(Kind::DAPR, Kind::ALL[..5]);
        assert!(!Kind::DAPR.contains(&Kind::AppIdentity));
    }

    #[test]
    fn known_kinds_lists_every_kind() {
        assert_eq!(
            Kind::known_kinds(),
            "Component, Subscription, Resiliency, Configuration, HTTPEndpoint, AppIdentity"
        );
    }
}
