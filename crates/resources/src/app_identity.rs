//! AppIdentity: Outrigger's document for an App ID, so that apply and export carry App IDs
//! alongside the Dapr resources that are scoped to them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fields::{as_object, check_http_url, check_one_of, optional_string};
use crate::{validate_resource_name, Document, Invalid, Kind};

/// Protocols the sidecar can use to talk to an app.
pub const APP_PROTOCOLS: [&str; 2] = ["http", "grpc"];

/// The typed spec of an AppIdentity document.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppIdentitySpec {
    /// Where the sidecar reaches the app: an absolute http(s) URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_endpoint: Option<String>,
    /// How the sidecar talks to the app: one of [`APP_PROTOCOLS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// Path the sidecar polls for the app's health; starts with `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_health_check_path: Option<String>,
    /// Token the sidecar sends the app so the app can tell calls come from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_token: Option<String>,
    /// Name of the Configuration the App ID runs with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
}

impl Document {
    /// The typed spec of an AppIdentity document, checking every field it reads. Other spec
    /// fields are ignored (and kept in the document).
    pub fn app_identity_spec(&self) -> Result<AppIdentitySpec, Invalid> {
        if self.kind != Kind::AppIdentity {
            return Err(Invalid::at("kind", format!("expected an AppIdentity document, found {}", self.kind)));
        }
        let spec = as_object(&self.spec, "spec")?;
        let text = |key: &str| -> Result<Option<String>, Invalid> {
            Ok(optional_string(spec, key, "spec")?.map(str::to_owned))
        };
        let app_endpoint = text("appEndpoint")?;
        if let Some(endpoint) = &app_endpoint {
            check_http_url(endpoint, "spec.appEndpoint")?;
        }
        let app_protocol = text("appProtocol")?;
        if let Some(protocol) = &app_protocol {
            check_one_of(protocol, &APP_PROTOCOLS, false, "spec.appProtocol")?;
        }
        let app_health_check_path = text("appHealthCheckPath")?;
        if app_health_check_path.as_deref().is_some_and(|path| !path.starts_with('/')) {
            return Err(Invalid::at("spec.appHealthCheckPath", "must start with '/', like /healthz"));
        }
        let app_token = text("appToken")?;
        if app_token.as_deref() == Some("") {
            return Err(Invalid::at("spec.appToken", "is empty; leave appToken out to send the app no token"));
        }
        // Sent as the `dapr-api-token` header: a character a header cannot carry would leave the app unreachable.
        if app_token.as_deref().is_some_and(|token| !token.bytes().all(|byte| (0x20..0x7f).contains(&byte))) {
            return Err(Invalid::at(
                "spec.appToken",
                "must be printable ASCII (it is sent to the app as the dapr-api-token header); choose another",
            ));
        }
        let config = text("config")?;
        if let Some(config) = &config {
            validate_resource_name(config).map_err(|error| error.for_field("spec.config"))?;
        }
        Ok(AppIdentitySpec { app_endpoint, app_protocol, app_health_check_path, app_token, config })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::{fixtures, parse_document};

    fn with_spec(spec: Value) -> Document {
        let mut document = parse_document(fixtures::APP_IDENTITY.as_bytes(), true).unwrap();
        document.spec = spec;
        document
    }

    #[test]
    fn reads_the_fixture() {
        let document = parse_document(fixtures::APP_IDENTITY.as_bytes(), true).unwrap();
        let spec = document.app_identity_spec().unwrap();
        assert_eq!(
            spec,
            AppIdentitySpec {
                app_endpoint: Some("http://checkout.internal:8080".into()),
                app_protocol: Some("http".into()),
                app_health_check_path: Some("/healthz".into()),
                app_token: Some("s3cr3t-app-token".into()),
                config: Some("appconfig".into()),
            }
        );
        let rebuilt = Document::new(Kind::AppIdentity, "checkout", serde_json::to_value(&spec).unwrap());
        assert_eq!(rebuilt, document);
    }

    #[test]
    fn everything_is_optional_and_unknown_fields_are_ignored() {
        let document = with_spec(json!({"appPort": 8080}));
        assert_eq!(document.app_identity_spec(), Ok(AppIdentitySpec::default()));
        assert_eq!(serde_json::to_value(AppIdentitySpec::default()).unwrap(), json!({}));
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                json!({"appEndpoint": "checkout:8080"}),
                "spec.appEndpoint: 'checkout:8080' is not an absolute http(s) URL",
            ),
            (json!({"appProtocol": "https"}), "spec.appProtocol: 'https' is not allowed; use one of: http, grpc"),
            (json!({"appHealthCheckPath": "healthz"}), "spec.appHealthCheckPath: must start with '/'"),
            (json!({"appToken": ""}), "spec.appToken: is empty"),
            (json!({"appToken": 5}), "spec.appToken: must be a string"),
            (json!({"appToken": "line\nbreak"}), "spec.appToken: must be printable ASCII"),
            (json!({"appToken": "schlüssel"}), "spec.appToken: must be printable ASCII"),
            (json!({"config": "App Config"}), "spec.config: 'App Config' contains ' '"),
            (json!([]), "spec: must be a mapping"),
        ];
        for (spec, expected) in cases {
            let error = with_spec(spec.clone()).app_identity_spec().expect_err(&spec.to_string());
            assert!(error.to_string().starts_with(expected), "{spec}: {error}");
        }
    }

    #[test]
    fn only_app_identities_have_one() {
        let component = parse_document(fixtures::REDIS_STATESTORE.as_bytes(), true).unwrap();
        let error = component.app_identity_spec().unwrap_err();
        assert_eq!(error.to_string(), "kind: expected an AppIdentity document, found Component");
    }
}
