//! `bindings.http`: daprd's HTTP output binding. The operation is the HTTP method (`create` is `POST`), the
//! request's `path` metadata is appended to the component's `url`, its other metadata entries are sent as
//! headers, and the answer's status and headers come back as metadata (`statusCode`, `status`, each header).
//! A status outside 2xx fails the call unless `errorIfNot2XX` is false. Every connection passes the egress rule.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use outrigger_bus::{BindingResponse, Metadata};
use outrigger_resources::{optional, required, secret, BuildingBlock, ComponentType, MetadataField};
use reqwest::header::{HeaderName, HeaderValue};

use super::{BindingError, BindingRequest, OutputBinding};
use crate::components::{Backend, Opener, Opening};
use crate::state::open::OpenError;

/// How long a call may take when the component names no `responseTimeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Request metadata that steers the binding rather than going out as headers.
const NOT_HEADERS: [&str; 3] = ["path", "errorIfNot2XX", "ttlInSeconds"];

/// Dapr's HTTP binding.
pub struct HttpBinding {
    url: reqwest::Url,
    client: reqwest::Client,
    timeout: Duration,
    error_if_not_2xx: bool,
    /// `securityTokenHeader: securityToken`, sent on every call.
    token: Option<(HeaderName, HeaderValue)>,
}

impl HttpBinding {
    /// The Dapr component type this binding serves.
    pub const COMPONENT_TYPE: &'static str = "bindings.http";
}

/// Go's `strconv.ParseBool`, for the request's `errorIfNot2XX`.
fn truthy(text: &str) -> Option<bool> {
    match text.trim() {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[async_trait]
impl OutputBinding for HttpBinding {
    fn operations(&self) -> &'static [&'static str] {
        &["create", "get", "head", "post", "put", "patch", "delete", "options", "trace"]
    }

    async fn invoke(&self, request: BindingRequest<'_>) -> Result<BindingResponse, BindingError> {
        let method = match request.operation {
            "create" => reqwest::Method::POST,
            other => reqwest::Method::from_bytes(other.to_ascii_uppercase().as_bytes())
                .map_err(|_| BindingError::Failed(format!("operation {other} is not an HTTP method")))?,
        };
        let mut url = self.url.clone();
        if let Some(path) = request.metadata.get("path").filter(|path| !path.is_empty()) {
            let joined = format!("{}/{}", url.path().trim_end_matches('/'), path.trim_start_matches('/'));
            match joined.split_once('?') {
                Some((path, query)) => {
                    url.set_path(path);
                    url.set_query(Some(query));
                }
                None => url.set_path(&joined),
            }
        }
        let mut call = self.client.request(method, url).timeout(self.timeout).body(request.data.to_vec());
        let has_content_type = request.metadata.keys().any(|name| name.eq_ignore_ascii_case("content-type"));
        if !has_content_type && !request.data.is_empty() {
            call = call.header("content-type", "application/json; charset=utf-8");
        }
        for (name, value) in request.metadata {
            if NOT_HEADERS.contains(&name.as_str()) {
                continue;
            }
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
                call = call.header(name, value);
            }
        }
        if let Some((name, value)) = &self.token {
            call = call.header(name.clone(), value.clone());
        }
        let answer =
            call.send().await.map_err(|err| BindingError::Failed(format!("error invoking HTTP binding: {err}")))?;
        let status = answer.status();
        let mut metadata = Metadata::new();
        metadata.insert("statusCode".into(), status.as_u16().to_string());
        metadata
            .insert("status".into(), format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default()));
        for name in answer.headers().keys() {
            let values: Vec<&str> =
                answer.headers().get_all(name).iter().filter_map(|value| value.to_str().ok()).collect();
            metadata.insert(name.to_string(), values.join(", "));
        }
        let data = answer.bytes().await.map_err(|err| BindingError::Failed(format!("reading the answer: {err}")))?;
        let error_if_not_2xx =
            request.metadata.get("errorIfNot2XX").and_then(|text| truthy(text)).unwrap_or(self.error_if_not_2xx);
        if error_if_not_2xx && !status.is_success() {
            return Err(BindingError::Failed(format!("received status code {}", status.as_u16())));
        }
        Ok(BindingResponse { data: data.to_vec(), metadata })
    }
}

const HTTP_FIELDS: &[MetadataField] = &[
    required("url"),
    secret("securityToken"),
    optional("securityTokenHeader"),
    optional("errorIfNot2XX").defaults_to("true"),
    optional("responseTimeout"),
    // daprd cuts answers at 100Mi; this worker reads them whole, so it declares no default.
    optional("maxResponseBodySize"),
    optional("MTLSRootCA"),
    optional("MTLSClientCert"),
    secret("MTLSClientKey"),
    optional("MTLSRenegotiation"),
    optional("insecureSkipTLSVerify"),
];

/// `bindings.http`: an HTTP(S) service the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(HttpBinding::COMPONENT_TYPE, BuildingBlock::Bindings, &[HTTP_FIELDS]),
    opener: Opener::Binding { output: Some(open), input: None },
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn OutputBinding>, OpenError>> {
    Box::pin(async move {
        let fields = &opening.fields;
        let text = fields.required("url", "the base URL to call, e.g. https://api.example.com/v1")?;
        let url = reqwest::Url::parse(text)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .ok_or_else(|| fields.invalid("url", format!("'{text}' is not an absolute http(s) URL")))?;
        // Judged when the component opens (a refused host never opens), and again on every connection.
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().unwrap_or(80);
        opening.boundary.host(HttpBinding::COMPONENT_TYPE, "url", host, port).await?;
        for unsupported in ["MTLSRootCA", "MTLSClientCert", "MTLSClientKey"] {
            if fields.get(unsupported).is_some() {
                return Err(
                    fields.invalid("MTLSRootCA", format!("{unsupported}: mutual TLS is not served by this version"))
                );
            }
        }
        let token = match (fields.get("securityToken"), fields.get("securityTokenHeader")) {
            (Some(token), Some(header)) => {
                let name = HeaderName::try_from(header)
                    .map_err(|_| fields.invalid("securityTokenHeader", format!("'{header}' is not a header name")))?;
                let value = HeaderValue::from_str(token)
                    .map_err(|_| fields.invalid("securityToken", "not a valid header value".to_owned()))?;
                Some((name, value))
            }
            (Some(_), None) => {
                return Err(fields.invalid("securityTokenHeader", "name the header securityToken is sent in".to_owned()))
            }
            _ => None,
        };
        let error_if_not_2xx = match fields.get("errorIfNot2XX") {
            None => true,
            Some(_) => fields.flag("errorIfNot2XX")?,
        };
        Ok(Arc::new(HttpBinding {
            url,
            client: opening.boundary.http_client(),
            timeout: fields.duration("responseTimeout", Duration::from_millis(1))?.unwrap_or(DEFAULT_TIMEOUT),
            error_if_not_2xx,
            token,
        }) as _)
    })
}
