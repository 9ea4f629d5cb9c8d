//! Calls on their way into the API log: encoded as they are logged, on the request path, into one buffer the
//! writer takes whole. A logged call is borrowed ([`LoggedCall`]), not built: no string is copied for it,
//! no structure of owned strings queued, moved and freed on another thread. The writer then makes each
//! project's block by copying the calls' bytes, already in the block's encoding, one after the other.
//!
//! Beside its bytes, a batch keeps of each call what the block's columns and the per-minute counts need,
//! its App ID and API as places in those bytes.

use std::net::IpAddr;
use std::ops::Range;

use super::stored_call;
use crate::api_calls::{ApiCall, CallDirection, CallSpan};
use crate::ProjectId;

/// One call as the code that saw it logs it: everything borrowed.
#[derive(Clone, Copy, Debug)]
pub struct LoggedCall<'a> {
    /// The caller's project.
    pub project_id: &'a ProjectId,
    /// When the call arrived (Unix milliseconds).
    pub at: i64,
    /// The calling App ID.
    pub app_id: &'a str,
    /// The App ID or HTTP endpoint an invocation went to, the topic of a publish or delivery, or a job's name.
    pub target: Option<&'a str>,
    /// The building block (`state`, `pubsub`, `invocation`, `workflows`, …).
    pub api: &'a str,
    /// `http` or `grpc`.
    pub protocol: &'a str,
    /// The HTTP method, or the rpc's name.
    pub method: &'a str,
    /// The HTTP path, or the rpc's full path.
    pub path: &'a str,
    /// The component the call named.
    pub component: Option<&'a str>,
    /// The HTTP status (for gRPC, the one daprd pairs with the code).
    pub status: u16,
    /// The gRPC status code of a gRPC call.
    pub grpc_code: Option<i32>,
    /// How long the call took, in microseconds.
    pub latency_us: i64,
    /// The W3C ids of the call's span.
    pub span: Option<CallSpan>,
    /// The caller's `User-Agent`.
    pub user_agent: Option<&'a str>,
    /// The address the call came from.
    pub caller_addr: Option<IpAddr>,
    /// Whether the App ID made the call or received it.
    pub direction: CallDirection,
    /// Whether this records a stream's end ([`ApiCall::stream_ended`]).
    pub stream_ended: bool,
}

impl LoggedCall<'_> {
    /// The call, owning its text.
    pub fn to_call(&self) -> ApiCall {
        let owned = |text: Option<&str>| text.map(str::to_owned);
        ApiCall {
            project_id: self.project_id.clone(),
            at: self.at,
            app_id: self.app_id.to_owned(),
            target: owned(self.target),
            api: self.api.to_owned().into(),
            protocol: self.protocol.to_owned().into(),
            method: self.method.to_owned().into(),
            path: self.path.to_owned(),
            component: owned(self.component),
            status: self.status,
            grpc_code: self.grpc_code,
            latency_us: self.latency_us,
            span: self.span,
            user_agent: owned(self.user_agent),
            caller_addr: self.caller_addr,
            direction: self.direction,
            stream_ended: self.stream_ended,
        }
    }
}

impl ApiCall {
    /// The call, borrowed, as it is logged.
    pub fn logged(&self) -> LoggedCall<'_> {
        LoggedCall {
            project_id: &self.project_id,
            at: self.at,
            app_id: &self.app_id,
            target: self.target.as_deref(),
            api: &self.api,
            protocol: &self.protocol,
            method: &self.method,
            path: &self.path,
            component: self.component.as_deref(),
            status: self.status,
            grpc_code: self.grpc_code,
            latency_us: self.latency_us,
            span: self.span,
            user_agent: self.user_agent.as_deref(),
            caller_addr: self.caller_addr,
            direction: self.direction,
            stream_ended: self.stream_ended,
        }
    }
}

/// Calls encoded, in the order they were logged, waiting to be written.
#[derive(Debug, Default)]
pub struct CallBatch {
    bytes: Vec<u8>,
    calls: Vec<BatchedCall>,
}

/// What a batch keeps of a call beside its bytes.
#[derive(Debug)]
pub(crate) struct BatchedCall {
    pub(crate) project_id: ProjectId,
    pub(crate) at: i64,
    pub(crate) status: u16,
    pub(crate) latency_us: i64,
    pub(crate) direction: CallDirection,
    pub(crate) stream_ended: bool,
    /// The call's encoding in the batch's bytes: its fields after its age, which its block starts it with.
    encoded: Range<usize>,
    /// Its App ID's text there.
    app_id: Range<usize>,
    /// Its API's text there.
    api: Range<usize>,
    /// Whether its App ID and API are those of the call before it in the batch: the block and the per-minute
    /// counts ask it of neighbours about twice a call, and comparing the text each time cost ~100 instructions.
    names_as_previous: bool,
}

/// The bytes a logged call takes in a batch, about: a state GET's ~110, with room for longer paths.
const CALL_BYTES: usize = 160;

impl CallBatch {
    /// An empty batch with room for `calls` calls: a batch that grows while it is filled copies what it holds
    /// each time it does (~140 instructions a call in a profile taken while the writer's two batches grew).
    pub fn with_room(calls: usize) -> CallBatch {
        CallBatch { bytes: Vec::with_capacity(calls * CALL_BYTES), calls: Vec::with_capacity(calls) }
    }

    /// The batch of `calls`, in their order.
    pub fn of<'a>(calls: impl IntoIterator<Item = &'a ApiCall>) -> CallBatch {
        let mut batch = CallBatch::default();
        for call in calls {
            batch.push(&call.logged());
        }
        batch
    }

    /// Encodes `call` at the batch's end.
    pub fn push(&mut self, call: &LoggedCall<'_>) {
        let start = self.bytes.len();
        let texts = stored_call::append(call, &mut self.bytes);
        let bytes = |range: &Range<usize>| &self.bytes[range.clone()];
        let names_as_previous = self.calls.last().is_some_and(|previous| {
            bytes(&previous.app_id) == bytes(&texts.app_id) && bytes(&previous.api) == bytes(&texts.api)
        });
        self.calls.push(BatchedCall {
            project_id: call.project_id.clone(),
            at: call.at,
            status: call.status,
            latency_us: call.latency_us,
            direction: call.direction,
            stream_ended: call.stream_ended,
            encoded: start..self.bytes.len(),
            app_id: texts.app_id,
            api: texts.api,
            names_as_previous,
        });
    }

    /// Calls in the batch.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The memory the batch holds, in bytes, whether used or only room.
    pub fn held_bytes(&self) -> usize {
        self.calls.capacity() * std::mem::size_of::<BatchedCall>() + self.bytes.capacity()
    }

    /// Empties the batch, keeping its room.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.calls.clear();
    }

    /// Every call of the batch.
    pub fn all(&self) -> Calls<'_> {
        Calls { bytes: &self.bytes, calls: &self.calls }
    }

    /// The batch in runs of at most `most` calls, in order.
    pub fn runs(&self, most: usize) -> impl Iterator<Item = Calls<'_>> {
        self.calls.chunks(most.max(1)).map(|calls| Calls { bytes: &self.bytes, calls })
    }
}

/// Calls of a batch, written together.
#[derive(Clone, Copy)]
pub struct Calls<'a> {
    bytes: &'a [u8],
    pub(crate) calls: &'a [BatchedCall],
}

impl<'a> Calls<'a> {
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The project of each call, in order.
    pub fn project_ids(&self) -> impl Iterator<Item = &'a ProjectId> + 'a {
        self.calls.iter().map(|call| &call.project_id)
    }

    /// The call's encoding.
    pub(crate) fn encoded(&self, call: &BatchedCall) -> &'a [u8] {
        &self.bytes[call.encoded.clone()]
    }

    /// Whether two calls have the same App ID and API: known when one came right after the other, else their
    /// bytes compared (no text is checked for it).
    pub(crate) fn same_names(&self, a: &BatchedCall, b: &BatchedCall) -> bool {
        if a.encoded.end == b.encoded.start {
            return b.names_as_previous;
        }
        if b.encoded.end == a.encoded.start {
            return a.names_as_previous;
        }
        let bytes = |range: &Range<usize>| &self.bytes[range.clone()];
        bytes(&a.app_id) == bytes(&b.app_id) && bytes(&a.api) == bytes(&b.api)
    }

    /// The call's App ID.
    pub(crate) fn app_id(&self, call: &BatchedCall) -> &'a str {
        self.text(&call.app_id)
    }

    /// The call's API.
    pub(crate) fn api(&self, call: &BatchedCall) -> &'a str {
        self.text(&call.api)
    }

    /// Text of the batch, checked again (once per run of calls that share their names, not per call).
    fn text(&self, range: &Range<usize>) -> &'a str {
        std::str::from_utf8(&self.bytes[range.clone()]).expect("a batch's text was written from a str")
    }
}
