//! The calls the platform makes to apps — pub/sub deliveries, job triggers, input binding events — as the
//! project's API log keeps them (direction `to_app`): which App ID was called, for what, with what answer and
//! how fast. Each is sent here and recorded once the app's answer (or its absence) is known.

use std::time::Instant;

use outrigger_outbound::{AppAnswer, AppCall, AppCallError, AppClient};
use outrigger_store::{CallDirection, LoggedCall, ProjectId};
use outrigger_telemetry::trace::SpanIds;
use outrigger_telemetry::ApiLog;

/// The status recorded when the app gave no answer: 504 when the call timed out, 502 otherwise (as a proxy
/// would say it).
fn unanswered_status(err: &AppCallError) -> u16 {
    if err.is_timeout() {
        504
    } else {
        502
    }
}

/// What a call to an app is about.
pub(crate) struct ToApp<'a> {
    pub(crate) log: &'a ApiLog,
    pub(crate) project_id: &'a ProjectId,
    /// The App ID called.
    pub(crate) app_id: &'a str,
    /// `pubsub`, `jobs` or `bindings`.
    pub(crate) api: &'static str,
    /// The pub/sub or binding component.
    pub(crate) component: Option<&'a str>,
    /// The topic of a delivery, the name of a job.
    pub(crate) target: Option<&'a str>,
}

impl ToApp<'_> {
    /// Sends `call` with `client` and records the call with the app's status; `span` is the span the call is
    /// (whose `traceparent` it carries), from its sender: read back from the header, it cost a parse per call.
    pub(crate) async fn send(
        &self,
        client: &AppClient,
        call: AppCall,
        span: Option<&SpanIds>,
    ) -> Result<AppAnswer, AppCallError> {
        if !self.log.enabled() {
            return client.send(call).await;
        }
        let (at, started) = (outrigger_store::now_millis(), Instant::now());
        let (method, path) = (call.method().clone(), call.path().to_owned());
        let answer = client.send(call).await;
        let status = match &answer {
            Ok(answer) => answer.status.as_u16(),
            Err(err) => unanswered_status(err),
        };
        self.log.record(&LoggedCall {
            project_id: self.project_id,
            at,
            app_id: self.app_id,
            target: self.target,
            api: self.api,
            protocol: "http",
            method: method.as_str(),
            path: &path,
            component: self.component,
            status,
            grpc_code: None,
            latency_us: i64::try_from(started.elapsed().as_micros()).unwrap_or(i64::MAX),
            span: span.map(SpanIds::call_span),
            user_agent: None,
            caller_addr: None,
            direction: CallDirection::ToApp,
            stream_ended: false,
        });
        answer
    }
}
