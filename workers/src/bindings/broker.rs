//! What the message-broker bindings (`bindings.rabbitmq`, `bindings.mqtt3`) share: reading the broker's URL from
//! the component, refusing the TLS settings not served yet, and pinning the broker's address through the egress
//! rule.

use crate::boundary::Boundary;
use crate::state::open::{Fields, OpenError};

/// How a broker type names and reaches its broker.
pub(crate) struct BrokerKind {
    /// The Dapr component type.
    pub(crate) component_type: &'static str,
    /// The metadata field holding the broker's URL.
    pub(crate) field: &'static str,
    /// The URL schemes served.
    pub(crate) schemes: &'static [&'static str],
    /// The port when the URL names none.
    pub(crate) default_port: u16,
    /// An example of the URL, for errors.
    pub(crate) example: &'static str,
    /// Fields that ask for TLS, which is not served yet.
    pub(crate) tls_fields: &'static [&'static str],
}

/// The broker a component names: where to connect (the address the egress rule judged, for a tenant), with the
/// URL's credentials and path.
pub(crate) struct BrokerAddress {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The user and password of the URL, percent-decoded.
    pub(crate) credentials: Option<(String, String)>,
    /// The URL's path without its leading `/`, percent-decoded.
    pub(crate) path: String,
}

fn decoded(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

impl BrokerKind {
    /// The broker of the component `fields` describe, reachable within `boundary`.
    pub(crate) async fn address(&self, fields: &Fields<'_>, boundary: &Boundary) -> Result<BrokerAddress, OpenError> {
        let text = fields.required(self.field, self.example)?;
        let url = url::Url::parse(text)
            .ok()
            .filter(|url| self.schemes.contains(&url.scheme()) && url.host_str().is_some())
            .ok_or_else(|| {
                let schemes: Vec<String> = self.schemes.iter().map(|scheme| format!("{scheme}://")).collect();
                let schemes = schemes.join(" or ");
                fields.invalid(self.field, format!("'{text}' is not a {schemes} URL (TLS is not served yet)"))
            })?;
        for tls in self.tls_fields {
            if fields.get(tls).is_some_and(|value| !value.is_empty() && value != "false") {
                return Err(fields.invalid(self.tls_fields[0], format!("{tls}: TLS to the broker is not served yet")));
            }
        }
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = url.port().unwrap_or(self.default_port);
        let pinned = boundary.host(self.component_type, self.field, host, port).await?;
        let (host, port) = pinned.map_or((host.to_owned(), port), |address| (address.ip().to_string(), address.port()));
        let credentials = (!url.username().is_empty())
            .then(|| (decoded(url.username()), url.password().map(decoded).unwrap_or_default()));
        Ok(BrokerAddress { host, port, credentials, path: decoded(url.path().trim_start_matches('/')) })
    }
}
