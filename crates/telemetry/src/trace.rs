//! Traces: the W3C trace context of each hop a call makes (gateway, worker, delivery to an app), and the export
//! of the hops' spans over OTLP/gRPC when the operator names a collector.
//!
//! A [`Hop`] is one span: taken as the child of the caller's `traceparent`, or the root of a new trace. Its
//! own `traceparent` is what the next hop receives (over the bus, in a CloudEvent, in the headers of a call to
//! an app) and what the caller gets back. The ids are made here rather than by the OpenTelemetry SDK's
//! tracer, because every call carries a trace context whether or not anything is exported, and because the
//! ids must be known before the span ends; finished spans go to the SDK's batch processor and OTLP exporter
//! as plain span data.
//!
//! Sampling follows daprd: a caller's sampled flag decides (parent-based), a new trace is sampled by its id at
//! the App ID's `tracing.samplingRate`, and a rate of 0 records nothing. Recording costs nothing but the ids
//! when no collector is set.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
pub use opentelemetry::trace::SpanKind;
use opentelemetry::trace::{SpanContext, SpanId, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::InstrumentationScope;
pub use opentelemetry::KeyValue;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanData, SpanEvents, SpanLinks, SpanProcessor};
use opentelemetry_sdk::Resource;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};

/// Longest `tracestate` passed on (daprd's bound); a longer one is dropped, as the W3C rules allow.
const MAX_TRACESTATE_LEN: usize = 512;

/// The ids of one span and whether its trace is sampled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpanIds {
    /// 16 bytes, never all zero.
    pub trace_id: [u8; 16],
    /// 8 bytes, never all zero.
    pub span_id: [u8; 8],
    /// The `sampled` flag.
    pub sampled: bool,
}

impl SpanIds {
    /// A `traceparent` header's ids: `00-<32 hex>-<16 hex>-<2 hex>` (a later version may append fields), or
    /// `None` when it breaks the W3C rules (then a new trace starts).
    pub fn parse(traceparent: &str) -> Option<SpanIds> {
        // Its fields are read at their fixed places (dashes at 2, 35 and 52): split on dashes, a delivery's two
        // parses cost ~2,500 instructions.
        let text = traceparent.as_bytes().trim_ascii();
        let dashes_at = |places: [usize; 3]| places.iter().all(|place| text.get(*place) == Some(&b'-'));
        if text.len() < 55 || !dashes_at([2, 35, 52]) {
            return None;
        }
        let version = hex_bytes::<1>(&text[..2])?[0];
        // Version ff is invalid; version 00 has exactly four fields; later versions may add more, after a dash.
        let more = text.len() > 55;
        if version == 0xff || (more && (version == 0 || text[55] != b'-')) {
            return None;
        }
        let (trace_id, span_id) = (hex_bytes::<16>(&text[3..35])?, hex_bytes::<8>(&text[36..52])?);
        let flags = hex_bytes::<1>(&text[53..55])?[0];
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(SpanIds { trace_id, span_id, sampled: flags & 1 == 1 })
    }

    /// The `traceparent` header naming this span.
    pub fn traceparent(&self) -> String {
        ascii_string(&self.traceparent_text())
    }

    /// The `traceparent` as a header's value, made without a `String` in between (the gateway sets it on each
    /// answer). Marked never to be indexed by HTTP/2's header compression: every span's value is new, so HPACK
    /// would search its table for it, insert it and evict what is worth keeping (~3,000 instructions a gRPC
    /// answer); HTTP/1 ignores the mark.
    pub fn traceparent_header(&self) -> HeaderValue {
        let mut value = HeaderValue::from_bytes(&self.traceparent_text()).expect("a traceparent is visible ASCII");
        value.set_sensitive(true);
        value
    }

    /// [`traceparent`](Self::traceparent), on the stack.
    fn traceparent_text(&self) -> [u8; 55] {
        let mut text = *b"00-................................-................-00";
        hex_into(&mut text[3..35], &self.trace_id);
        hex_into(&mut text[36..52], &self.span_id);
        if self.sampled {
            text[54] = b'1';
        }
        text
    }

    /// The ids of a new span of the same trace (a child of this one, whatever names its parent).
    pub fn child(&self) -> SpanIds {
        SpanIds { span_id: random_id(), ..*self }
    }

    /// The span id in hex.
    pub fn span_id_hex(&self) -> String {
        let mut text = [0; 16];
        hex_into(&mut text, &self.span_id);
        ascii_string(&text)
    }

    /// The ids as the API log keeps them.
    pub fn call_span(&self) -> outrigger_store::CallSpan {
        outrigger_store::CallSpan { trace_id: self.trace_id, span_id: self.span_id }
    }
}

/// The trace context's headers, named once: a header named by a `&str` is parsed at every lookup (~160
/// instructions each, and a call looks up several).
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Lower-case hex digits. Hex is written and read by hand, into a buffer on the stack: `format!("{:02x}")` per
/// byte cost ~5k instructions per `traceparent`, pushing chars onto a `String` ~400 per trace id, and every
/// call writes several.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Every byte's two hex digits, so that a byte is written with one look-up (a digit per nibble cost ~8
/// instructions a byte, ~200 a `traceparent`).
const HEX_PAIRS: [[u8; 2]; 256] = {
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX_DIGITS[byte >> 4], HEX_DIGITS[byte & 0x0f]];
        byte += 1;
    }
    pairs
};

/// Every byte's value as a hex digit, or [`NOT_HEX`]: lower-case only, as the W3C rules refuse upper-case hex.
/// A digit is read with one look-up (a `match` per digit cost ~18 instructions, ~900 for a `traceparent`).
const HEX_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        values[HEX_DIGITS[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};
const NOT_HEX: u8 = 0xff;

fn hex_bytes<const N: usize>(text: &[u8]) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut bytes = [0; N];
    // A digit's value is below 16: any high bit left in `seen` was a byte that is not a digit.
    let mut seen = 0;
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        let (high, low) = (HEX_VALUES[usize::from(pair[0])], HEX_VALUES[usize::from(pair[1])]);
        seen |= high | low;
        *byte = high << 4 | low;
    }
    (seen < 16).then_some(bytes)
}

/// Writes `bytes` in hex into `text`, which is twice as long.
fn hex_into(text: &mut [u8], bytes: &[u8]) {
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
}

fn ascii_string(text: &[u8]) -> String {
    std::str::from_utf8(text).expect("hex and dashes are ASCII").to_owned()
}

thread_local! {
    /// Ids come from a fast generator per thread, seeded from the system's: an id must be unique, not
    /// unpredictable (OpenTelemetry's SDK makes its ids so too); the ChaCha generator behind `rand::random` cost
    /// ~150 instructions an id.
    static IDS: RefCell<SmallRng> = RefCell::new(SmallRng::from_entropy());
}

/// A random id of `N` bytes, never all zero (W3C's invalid id): made of whole 64-bit draws, as `fill_bytes`
/// went through the generator's byte-filling loop (~45 instructions an id more).
fn random_id<const N: usize>() -> [u8; N] {
    IDS.with_borrow_mut(|ids| loop {
        let mut id = [0; N];
        for chunk in id.chunks_mut(8) {
            chunk.copy_from_slice(&ids.next_u64().to_le_bytes()[..chunk.len()]);
        }
        if id != [0; N] {
            return id;
        }
    })
}

/// Whether a new trace is sampled at `rate` (0 to 1), decided by its id as OpenTelemetry's
/// `TraceIdRatioBased` does, so every process decides alike.
pub fn sampled_at(trace_id: &[u8; 16], rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate.is_nan() || rate <= 0.0 {
        return false;
    }
    let low = u64::from_be_bytes(trace_id[8..].try_into().expect("8 bytes")) >> 1;
    // `rate` is below 1, so the bound fits in 63 bits.
    low < (rate * (1u64 << 63) as f64) as u64
}

/// One hop of a call: its span's ids, its parent's span, and whether it is recorded for export.
#[derive(Clone, Debug)]
pub struct Hop {
    ids: SpanIds,
    parent: Option<[u8; 8]>,
    tracestate: Option<String>,
    recorded: bool,
    started: SystemTime,
}

impl Hop {
    /// The hop of a call arriving with `traceparent`/`tracestate` (or none): a child of the caller's span, or
    /// the first span of a new trace, sampled by its id at `sampling_rate` (the caller's App ID's; 0 records
    /// nothing, even when the caller's trace is sampled). `None` when calls carry no trace context.
    pub fn arriving(traceparent: Option<&str>, tracestate: Option<&str>, sampling_rate: f64) -> Option<Hop> {
        if !context_on() {
            return None;
        }
        let parent = traceparent.and_then(SpanIds::parse);
        let exporting = exporter().is_some();
        match parent {
            Some(parent) => {
                let recorded = exporting && parent.sampled && sampling_rate > 0.0;
                let ids = SpanIds { span_id: random_id(), ..parent };
                let tracestate = tracestate.filter(|state| state.len() <= MAX_TRACESTATE_LEN).map(str::to_owned);
                Some(Hop { ids, parent: Some(parent.span_id), tracestate, recorded, started: start_time(recorded) })
            }
            None => {
                let trace_id = random_id();
                let recorded = exporting && sampled_at(&trace_id, sampling_rate);
                let ids = SpanIds { trace_id, span_id: random_id(), sampled: recorded };
                Some(Hop { ids, parent: None, tracestate: None, recorded, started: start_time(recorded) })
            }
        }
    }

    /// The hop that continues a trace another process started (`traceparent` of its span): recorded when that
    /// span was sampled and this process exports. `None` when there is no valid parent, or calls carry no trace
    /// context.
    pub fn continuing(traceparent: &str, tracestate: Option<&str>) -> Option<Hop> {
        if !context_on() {
            return None;
        }
        let parent = SpanIds::parse(traceparent)?;
        let recorded = parent.sampled && exporter().is_some();
        let ids = SpanIds { span_id: random_id(), ..parent };
        let tracestate = tracestate.filter(|state| !state.is_empty() && state.len() <= MAX_TRACESTATE_LEN);
        Some(Hop {
            ids,
            parent: Some(parent.span_id),
            tracestate: tracestate.map(str::to_owned),
            recorded,
            started: start_time(recorded),
        })
    }

    /// The same hop with the span id given out before the span ends (a workflow's, which its activities
    /// name as their parent while it runs).
    pub fn with_span_id(mut self, span_id: [u8; 8]) -> Hop {
        self.ids.span_id = span_id;
        self
    }

    /// The same hop, its span begun at `started` (a workflow's activity: when it was scheduled).
    pub fn started_at(mut self, started: SystemTime) -> Hop {
        self.started = started;
        self
    }

    /// This span's ids.
    pub fn ids(&self) -> &SpanIds {
        &self.ids
    }

    /// The caller's `tracestate`, passed on unchanged.
    pub fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// Whether the span will be exported; attributes need not be gathered otherwise.
    pub fn recorded(&self) -> bool {
        self.recorded
    }

    /// Ends the span now, exporting it if it is recorded. `error` marks it failed with that description.
    pub fn finish(
        self,
        name: impl Into<Cow<'static, str>>,
        kind: SpanKind,
        attributes: Vec<KeyValue>,
        error: Option<String>,
    ) {
        if !self.recorded {
            return;
        }
        let Some(exporter) = exporter() else { return };
        let state = self.tracestate.as_deref().and_then(|state| state.parse::<TraceState>().ok()).unwrap_or_default();
        let context = SpanContext::new(
            TraceId::from_bytes(self.ids.trace_id),
            SpanId::from_bytes(self.ids.span_id),
            TraceFlags::SAMPLED,
            false,
            state,
        );
        exporter.processor.on_end(SpanData {
            span_context: context,
            parent_span_id: self.parent.map_or(SpanId::INVALID, SpanId::from_bytes),
            parent_span_is_remote: self.parent.is_some(),
            span_kind: kind,
            name: name.into(),
            start_time: self.started,
            end_time: SystemTime::now(),
            attributes,
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: error.map_or(Status::Unset, Status::error),
            instrumentation_scope: exporter.scope.clone(),
        });
    }
}

/// Where finished spans go.
struct Exporter {
    processor: BatchSpanProcessor,
    scope: InstrumentationScope,
    /// The rate new traces are sampled at where an App ID's Configuration sets none.
    default_sampling_rate: f64,
}

static EXPORTER: OnceLock<Exporter> = OnceLock::new();

/// Whether calls carry trace context (`OUTRIGGER_TRACE_CONTEXT`); off, no hop is made anywhere.
static CONTEXT_ON: AtomicBool = AtomicBool::new(true);

/// When a span begins: now for a recorded one; only a recorded span's start is read, and the clock costs ~100
/// instructions a call.
fn start_time(recorded: bool) -> SystemTime {
    if recorded {
        SystemTime::now()
    } else {
        SystemTime::UNIX_EPOCH
    }
}

/// Stops trace context for the rest of the process: no hop is taken, started or passed on from now on.
pub fn turn_off_context() {
    CONTEXT_ON.store(false, Ordering::Relaxed);
}

/// Whether calls carry trace context: off, a call's trace headers need not even be read.
pub fn context_on() -> bool {
    CONTEXT_ON.load(Ordering::Relaxed)
}

fn exporter() -> Option<&'static Exporter> {
    EXPORTER.get()
}

/// Why trace export could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot export traces to {endpoint}: {reason}")]
pub struct ExportError {
    endpoint: String,
    reason: String,
}

/// How spans reach the collector: OTLP over gRPC, or over HTTP with protobuf bodies.
pub use opentelemetry_otlp::Protocol as OtlpProtocol;

/// Starts exporting recorded spans to the OTLP collector at `endpoint` over `protocol`: gRPC (e.g.
/// `http://collector:4317`), or HTTP, posted to `<endpoint>/v1/traces` as OpenTelemetry's exporters do with a
/// base endpoint (e.g. `http://collector:4318`); as service `service_name` (`outrigger-gateway`, …). Batches
/// leave at least every `flush_every`; traces this process starts are sampled at `default_sampling_rate` unless
/// the App ID's Configuration says otherwise. Must be called inside the Tokio runtime, once per process; a second
/// call changes nothing.
pub fn export_to(
    endpoint: &str,
    protocol: OtlpProtocol,
    service_name: &str,
    flush_every: Duration,
    default_sampling_rate: f64,
) -> Result<(), ExportError> {
    use opentelemetry_otlp::WithExportConfig;
    let failed = |reason: String| ExportError { endpoint: endpoint.to_owned(), reason };
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match protocol {
        OtlpProtocol::Grpc => builder.with_tonic().with_endpoint(endpoint).build(),
        http => builder
            .with_http()
            .with_protocol(http)
            .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
            .build(),
    }
    .map_err(|err| failed(err.to_string()))?;
    let config = opentelemetry_sdk::trace::BatchConfigBuilder::default().with_scheduled_delay(flush_every).build();
    let mut processor = BatchSpanProcessor::builder(exporter).with_batch_config(config).build();
    processor.set_resource(&Resource::builder_empty().with_service_name(service_name.to_owned()).build());
    let scope = InstrumentationScope::builder("outrigger").with_version(env!("CARGO_PKG_VERSION")).build();
    let _ = EXPORTER.set(Exporter { processor, scope, default_sampling_rate });
    Ok(())
}

/// Sends the spans still queued (at shutdown).
pub fn flush() {
    if let Some(exporter) = exporter() {
        if let Err(err) = exporter.processor.force_flush() {
            tracing::warn!(error = %err, "spans could not be exported at shutdown");
        }
    }
}

/// The rate traces this process starts are sampled at where an App ID's Configuration sets none; 0 when spans
/// are not exported (nothing would be recorded).
pub fn default_sampling_rate() -> f64 {
    exporter().map_or(0.0, |exporter| exporter.default_sampling_rate)
}

/// Whether spans are exported by this process.
pub fn exporting() -> bool {
    exporter().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn traceparents_follow_the_w3c_rules() {
        let ids = SpanIds::parse(PARENT).unwrap();
        assert_eq!(ids.traceparent(), PARENT);
        assert_eq!(ids.call_span().trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
        assert!(ids.sampled);
        assert!(!SpanIds::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00").unwrap().sampled);
        for invalid in [
            "",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
            "00-0af7651916cd43dd8448eb211c8031-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0F",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
            "00-0af7651916cd43dd8448eb211c80319cb-7ad6b7169203331-01",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033é-01",
            "0-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-",
        ] {
            assert_eq!(SpanIds::parse(invalid), None, "{invalid:?}");
        }
        // A later version may carry more fields; blanks around the value are not part of it.
        assert!(SpanIds::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-more").is_some());
        assert_eq!(SpanIds::parse(&format!("  {PARENT} ")), Some(ids));
    }

    #[test]
    fn a_hop_continues_its_callers_trace_or_starts_one() {
        let child = Hop::arriving(Some(PARENT), Some("congo=t61rcWkgMzE"), 1.0).unwrap();
        let parent = SpanIds::parse(PARENT).unwrap();
        assert_eq!(child.ids().trace_id, parent.trace_id);
        assert_ne!(child.ids().span_id, parent.span_id);
        assert_eq!(child.parent, Some(parent.span_id));
        // The caller's flag is passed on, and its tracestate.
        assert!(child.ids().sampled);
        assert_eq!(child.tracestate(), Some("congo=t61rcWkgMzE"));
        let started = Hop::arriving(Some("garbage"), None, 1.0).unwrap();
        assert_ne!(started.ids().trace_id, parent.trace_id);
        assert_eq!(started.parent, None);
        // Without a collector nothing is recorded, and a new trace says so in its flag.
        assert!(!started.recorded() && !started.ids().sampled);
        assert!(Hop::continuing("garbage", None).is_none());
        let next = Hop::continuing(&child.ids().traceparent(), child.tracestate()).unwrap();
        assert_eq!((next.ids().trace_id, next.parent), (parent.trace_id, Some(child.ids().span_id)));
    }

    #[test]
    fn sampling_follows_the_rate_by_trace_id() {
        let low = [0u8; 16];
        let mut high = [0u8; 16];
        high[8..].copy_from_slice(&u64::MAX.to_be_bytes());
        assert!(sampled_at(&low, 1e-4) && !sampled_at(&high, 0.99));
        assert!(sampled_at(&high, 1.0) && !sampled_at(&low, 0.0) && !sampled_at(&low, f64::NAN));
        let sampled = (0..10_000u64)
            .filter(|seed| {
                let mut id = [0u8; 16];
                id[8..].copy_from_slice(&seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
                sampled_at(&id, 0.25)
            })
            .count();
        assert!((2_000..3_000).contains(&sampled), "{sampled} of 10000 sampled at 0.25");
    }
}
