//! One call as a block holds it, and a block's encoding: MessagePack. Blocks are written in format 4, `[4,
//! newest_at, [call, …]]`, each call an array of the fields of [`CompactCall`] in their order, as `rmp_serde` writes
//! such a struct (a test holds the two to the same bytes); blocks of formats 1 to 3, `[format, [call, …]]`, each call
//! the fields of [`StoredCall`], are still read.
//!
//! Format 4 stores a logged HTTP call in ~16 bytes fewer than format 3's ~125: its time as its age in the block (a
//! millisecond timestamp took 9 bytes), protocol, direction and a stream's end as bits, the two span ids as one
//! `bin`, and at most 15 fields, so that a call's array length is one byte. Every byte a call takes is copied
//! several times on its way into SQLite's pages, and the fields left out were each a push and a copy on the request
//! path (logging a state GET: 1,015 instructions in format 3, 849 in format 4).
//!
//! A block is written field by field (the [`pack`] module) rather than through serde: serde's path cost ~70
//! instructions a field, a tenth of what logging a call cost. A recorded call's span ids and address stay values
//! from the request path into the block, where they are written as bytes: no string is made for them.

use std::net::IpAddr;
use std::ops::Range;

use super::batch::LoggedCall;
use super::pack;

use crate::api_calls::{ApiCall, ApiCallFilter, CallDirection, CallSpan};
use crate::{Error, ProjectId, Result};

/// The version of the blocks' encoding, first in every block. Span ids and addresses may be `bin` from format 2
/// on, only text in format 1; a call has its 17th field (`stream_ended`) from format 3 on; format 4 is the
/// compact one ([`CompactCall`]). This version reads all four; one that reads fewer says so rather than misreading.
const BLOCK_FORMAT: u8 = 4;
/// The formats before it, whose calls are [`StoredCall`]s.
const STORED_CALL_FORMATS: [u8; 3] = [1, 2, 3];

/// Fields of a format-4 call: at most 15, so that its array's length is one byte.
const COMPACT_FIELDS: usize = 14;
/// The bits of a format-4 call's `flags`.
const TO_APP: u8 = 1;
const STREAM_ENDED: u8 = 2;
const GRPC: u8 = 4;

/// One call as a block stores it: the project is the block's, the direction a flag.
#[derive(Clone, Copy, serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
pub(super) struct StoredCall<'a> {
    pub(super) at: i64,
    pub(super) app_id: &'a str,
    target: Option<&'a str>,
    pub(super) api: &'a str,
    protocol: &'a str,
    method: &'a str,
    path: &'a str,
    component: Option<&'a str>,
    pub(super) status: u16,
    grpc_code: Option<i32>,
    latency_us: i64,
    #[serde(borrow)]
    trace_id: Option<Binary<'a>>,
    #[serde(borrow)]
    span_id: Option<Binary<'a>>,
    user_agent: Option<&'a str>,
    #[serde(borrow)]
    caller_addr: Option<Binary<'a>>,
    to_app: bool,
    /// Absent before format 3: no stream's end was logged then.
    #[serde(default)]
    stream_ended: bool,
}

/// A call as format 4 holds it: what [`StoredCall`] holds, in fewer bytes. Its time is its age, the milliseconds
/// before the block's newest call; its span one `bin` of the trace id then the span id; its protocol (`http` or
/// `grpc`), direction and whether it ends a stream are bits of `flags`; a gRPC call's method, its path's last
/// segment, is left out (`nil`) and read back from the path.
#[derive(serde::Deserialize)]
#[cfg_attr(test, derive(serde::Serialize))]
struct CompactCall<'a> {
    age: i64,
    app_id: &'a str,
    target: Option<&'a str>,
    api: &'a str,
    method: Option<&'a str>,
    path: &'a str,
    component: Option<&'a str>,
    status: u16,
    grpc_code: Option<i32>,
    latency_us: i64,
    #[serde(borrow)]
    span: Option<Binary<'a>>,
    user_agent: Option<&'a str>,
    #[serde(borrow)]
    caller_addr: Option<Binary<'a>>,
    flags: u8,
}

impl<'a> CompactCall<'a> {
    /// The call of a block whose newest call is at `newest_at`.
    fn stored(self, newest_at: i64) -> StoredCall<'a> {
        let (trace_id, span_id) = match self.span {
            Some(Binary::Bytes(ids)) if ids.len() == 24 => {
                (Some(Binary::Bytes(&ids[..16])), Some(Binary::Bytes(&ids[16..])))
            }
            _ => (None, None),
        };
        let grpc = self.flags & GRPC != 0;
        StoredCall {
            at: newest_at.saturating_sub(self.age),
            app_id: self.app_id,
            target: self.target,
            api: self.api,
            protocol: if grpc { "grpc" } else { "http" },
            method: self.method.unwrap_or_else(|| rpc_name(self.path)),
            path: self.path,
            component: self.component,
            status: self.status,
            grpc_code: self.grpc_code,
            latency_us: self.latency_us,
            trace_id,
            span_id,
            user_agent: self.user_agent,
            caller_addr: self.caller_addr,
            to_app: self.flags & TO_APP != 0,
            stream_ended: self.flags & STREAM_ENDED != 0,
        }
    }
}

/// A gRPC call's rpc name: its path's last segment.
fn rpc_name(path: &str) -> &str {
    path.bytes().rposition(|byte| byte == b'/').map_or(path, |slash| &path[slash + 1..])
}

/// A span id or address of a stored call, as read back. Blocks hold them as MessagePack `bin` (the id's bytes,
/// the address's 4 or 16 octets); blocks of format 1 held them as text (hex, the address as `Display` writes it),
/// which is still read. Calls are written from what was logged ([`append`]), never from this.
#[derive(Clone, Copy)]
enum Binary<'a> {
    Bytes(&'a [u8]),
    /// An address as a logged call has it: only the tests' stored forms of logged calls hold one.
    #[cfg(test)]
    Address(IpAddr),
    Text(&'a str),
}

impl<'de: 'a, 'a> serde::Deserialize<'de> for Binary<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Binary<'a>, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Binary<'de>;
            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("bytes, or text")
            }
            fn visit_borrowed_bytes<E>(self, bytes: &'de [u8]) -> std::result::Result<Binary<'de>, E> {
                Ok(Binary::Bytes(bytes))
            }
            fn visit_borrowed_str<E>(self, text: &'de str) -> std::result::Result<Binary<'de>, E> {
                Ok(Binary::Text(text))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
impl serde::Serialize for Binary<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Binary::Bytes(bytes) => serializer.serialize_bytes(bytes),
            Binary::Address(IpAddr::V4(address)) => serializer.serialize_bytes(&address.octets()),
            Binary::Address(IpAddr::V6(address)) => serializer.serialize_bytes(&address.octets()),
            Binary::Text(text) => serializer.serialize_str(text),
        }
    }
}

impl Binary<'_> {
    /// The id of `N` bytes the field holds.
    fn id<const N: usize>(self) -> Option<[u8; N]> {
        match self {
            Binary::Bytes(bytes) => bytes.try_into().ok(),
            Binary::Text(text) => {
                let mut bytes = [0; N];
                hex::decode_to_slice(text, &mut bytes).ok().map(|()| bytes)
            }
            #[cfg(test)]
            Binary::Address(_) => None,
        }
    }

    /// The address the field holds.
    fn address(self) -> Option<IpAddr> {
        match self {
            #[cfg(test)]
            Binary::Address(address) => Some(address),
            Binary::Bytes(bytes) => match bytes.len() {
                4 => <[u8; 4]>::try_from(bytes).ok().map(IpAddr::from),
                16 => <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from),
                _ => None,
            },
            Binary::Text(text) => text.parse().ok(),
        }
    }
}

#[inline(always)]
fn write_optional_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => pack::str(out, text),
        None => pack::nil(out),
    }
}

/// Appends `call`'s format-4 fields after its age (a call of a block is [started](start_call) with its age, known
/// once the block's calls are) to `out`; answers where its App ID and API went. Encoded from the logged call
/// itself, on the request path: building a [`StoredCall`] of it first cost ~95 instructions a call.
pub(super) fn append(call: &LoggedCall<'_>, out: &mut Vec<u8>) -> TextsAt {
    let text = |out: &mut Vec<u8>, text: &str| {
        pack::str(out, text);
        out.len() - text.len()..out.len()
    };
    let grpc = call.protocol == "grpc";
    let app_id = text(out, call.app_id);
    write_optional_str(out, call.target);
    let api = text(out, call.api);
    write_optional_str(out, Some(call.method).filter(|method| !grpc || *method != rpc_name(call.path)));
    pack::str(out, call.path);
    write_optional_str(out, call.component);
    pack::uint(out, u64::from(call.status));
    match call.grpc_code {
        Some(code) => pack::int(out, i64::from(code)),
        None => pack::nil(out),
    }
    pack::int(out, call.latency_us);
    match &call.span {
        Some(span) => {
            let mut ids = [0; 24];
            ids[..16].copy_from_slice(&span.trace_id);
            ids[16..].copy_from_slice(&span.span_id);
            pack::bin_array(out, &ids);
        }
        None => pack::nil(out),
    }
    write_optional_str(out, call.user_agent);
    match call.caller_addr {
        // An address as an array of its size, copied inline: as a slice, it was copied by a call to `memcpy`.
        Some(IpAddr::V4(address)) => pack::bin_array(out, &address.octets()),
        Some(IpAddr::V6(address)) => pack::bin_array(out, &address.octets()),
        None => pack::nil(out),
    }
    let flag = |set: bool, flag: u8| if set { flag } else { 0 };
    let to_app = call.direction == CallDirection::ToApp;
    pack::uint(out, u64::from(flag(to_app, TO_APP) | flag(call.stream_ended, STREAM_ENDED) | flag(grpc, GRPC)));
    TextsAt { app_id, api }
}

/// Where a call's App ID and API are, in the text it was appended to.
pub(super) struct TextsAt {
    pub(super) app_id: Range<usize>,
    pub(super) api: Range<usize>,
}

impl<'a> StoredCall<'a> {
    #[cfg(test)]
    pub(super) fn of(call: &'a LoggedCall<'a>) -> StoredCall<'a> {
        StoredCall {
            at: call.at,
            app_id: call.app_id,
            target: call.target,
            api: call.api,
            protocol: call.protocol,
            method: call.method,
            path: call.path,
            component: call.component,
            status: call.status,
            grpc_code: call.grpc_code,
            latency_us: call.latency_us,
            trace_id: call.span.as_ref().map(|span| Binary::Bytes(&span.trace_id)),
            span_id: call.span.as_ref().map(|span| Binary::Bytes(&span.span_id)),
            user_agent: call.user_agent,
            caller_addr: call.caller_addr.map(Binary::Address),
            to_app: call.direction == CallDirection::ToApp,
            stream_ended: call.stream_ended,
        }
    }

    pub(super) fn direction(&self) -> CallDirection {
        if self.to_app {
            CallDirection::ToApp
        } else {
            CallDirection::FromApp
        }
    }

    /// The call as `project`'s, borrowed, as it is logged (to be encoded again, or owned).
    pub(super) fn logged(self, project: &'a ProjectId) -> LoggedCall<'a> {
        let span = self
            .trace_id
            .and_then(Binary::id)
            .zip(self.span_id.and_then(Binary::id))
            .map(|(trace_id, span_id)| CallSpan { trace_id, span_id });
        LoggedCall {
            project_id: project,
            at: self.at,
            app_id: self.app_id,
            target: self.target,
            api: self.api,
            protocol: self.protocol,
            method: self.method,
            path: self.path,
            component: self.component,
            status: self.status,
            grpc_code: self.grpc_code,
            latency_us: self.latency_us,
            span,
            user_agent: self.user_agent,
            caller_addr: self.caller_addr.and_then(Binary::address),
            direction: self.direction(),
            stream_ended: self.stream_ended,
        }
    }

    pub(super) fn to_call(self, project: &ProjectId) -> ApiCall {
        self.logged(project).to_call()
    }

    /// Whether the call passes every condition of `filter` (`text` lower-cased).
    pub(super) fn matches(&self, filter: &ApiCallFilter, text: Option<&str>) -> bool {
        filter.app_id.as_deref().is_none_or(|app_id| self.app_id == app_id)
            && filter.api.as_deref().is_none_or(|api| self.api == api)
            && filter.status.is_none_or(|(from, to)| (from..to).contains(&self.status))
            && filter.direction.is_none_or(|direction| self.direction() == direction)
            && filter.since.is_none_or(|since| self.at >= since)
            && filter.until.is_none_or(|until| self.at < until)
            && text.is_none_or(|text| {
                [Some(self.path), Some(self.method), self.component, self.target, Some(self.app_id)]
                    .into_iter()
                    .flatten()
                    .any(|field| contains_lowercase(field, text))
            })
    }
}

/// Whether `field`, lower-cased, holds `text` (already lower-case); without allocating for ASCII fields.
fn contains_lowercase(field: &str, text: &str) -> bool {
    if field.is_ascii() {
        let (field, text) = (field.as_bytes(), text.as_bytes());
        text.is_empty() || field.windows(text.len()).any(|window| window.eq_ignore_ascii_case(text))
    } else {
        field.to_lowercase().contains(text)
    }
}

/// Starts a block's encoding of `calls` calls, the newest at `newest_at`, into `out`; each call then
/// [starts](start_call) and is [appended](append).
pub(super) fn start_block(out: &mut Vec<u8>, calls: usize, newest_at: i64) {
    pack::array_len(out, 3);
    pack::uint(out, u64::from(BLOCK_FORMAT));
    pack::int(out, newest_at);
    pack::array_len(out, calls);
}

/// Starts a call made at `at` of a block whose newest call is at `newest_at`.
pub(super) fn start_call(out: &mut Vec<u8>, newest_at: i64, at: i64) {
    pack::array_len(out, COMPACT_FIELDS);
    pack::int(out, newest_at.saturating_sub(at));
}

/// The calls of a stored block, newest first.
pub(super) fn decode(id: i64, body: &[u8]) -> Result<Vec<StoredCall<'_>>> {
    let corrupt = |reason: String| Error::Corrupt { kind: "API log block".into(), name: id.to_string(), reason };
    let unread = |format: u8| corrupt(format!("written in format {format}, which this version does not read"));
    // A block of format 4 on is an array of three; the formats before it wrote arrays of two.
    const ARRAY_OF_THREE: u8 = 0x93;
    if body.first() == Some(&ARRAY_OF_THREE) {
        let (format, newest_at, calls): (u8, i64, Vec<CompactCall<'_>>) =
            rmp_serde::from_slice(body).map_err(|err| corrupt(err.to_string()))?;
        return match format {
            BLOCK_FORMAT => Ok(calls.into_iter().map(|call| call.stored(newest_at)).collect()),
            _ => Err(unread(format)),
        };
    }
    let (format, calls): (u8, Vec<StoredCall<'_>>) =
        rmp_serde::from_slice(body).map_err(|err| corrupt(err.to_string()))?;
    if STORED_CALL_FORMATS.contains(&format) {
        Ok(calls)
    } else {
        Err(unread(format))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn call(index: u8) -> ApiCall {
        ApiCall {
            project_id: ProjectId::received("p1".to_owned()),
            at: 1_733_000_000_000 + i64::from(index),
            app_id: format!("app-{index}"),
            target: index.is_multiple_of(2).then(|| "orders".repeat(usize::from(index) * 7)),
            api: Cow::Borrowed("state"),
            protocol: Cow::Borrowed(if index % 4 == 1 { "grpc" } else { "http" }),
            // A gRPC call's method is its path's last segment, but for a test of one that is not.
            method: match index % 8 {
                1 => Cow::Owned("k".repeat(usize::from(index) * 40)),
                5 => Cow::Borrowed("GetState"),
                _ => Cow::Borrowed("GET"),
            },
            path: format!("/v1.0/state/kv/{}", "k".repeat(usize::from(index) * 40)),
            component: (!index.is_multiple_of(3)).then(|| "kv".to_owned()),
            status: [200, 404, 500, 65535][usize::from(index % 4)],
            grpc_code: [None, Some(0), Some(-1), Some(i32::MAX)][usize::from(index % 4)],
            latency_us: [0, 127, 128, 70_000, i64::from(u32::MAX) + 1][usize::from(index % 5)],
            span: (index % 2 == 1).then_some(CallSpan { trace_id: [index; 16], span_id: [0xab; 8] }),
            user_agent: (index % 3 == 1).then(|| "dapr-sdk-python/1.15".to_owned()),
            caller_addr: [None, Some("10.200.3.45".parse().unwrap()), Some("2001:db8::8a2e:370:7334".parse().unwrap())]
                [usize::from(index % 3)],
            direction: if index.is_multiple_of(2) { CallDirection::FromApp } else { CallDirection::ToApp },
            stream_ended: index % 4 == 3,
        }
    }

    /// `call` as format 4 holds it (`span`: its ids, one after the other), for serde to write: what the
    /// hand-written encoding must equal.
    fn compact<'a>(call: &StoredCall<'a>, newest_at: i64, span: Option<&'a [u8]>) -> CompactCall<'a> {
        let grpc = call.protocol == "grpc";
        CompactCall {
            age: newest_at - call.at,
            app_id: call.app_id,
            target: call.target,
            api: call.api,
            method: (!grpc || call.method != rpc_name(call.path)).then_some(call.method),
            path: call.path,
            component: call.component,
            status: call.status,
            grpc_code: call.grpc_code,
            latency_us: call.latency_us,
            span: span.map(Binary::Bytes),
            user_agent: call.user_agent,
            caller_addr: call.caller_addr,
            flags: u8::from(call.to_app) | u8::from(call.stream_ended) << 1 | u8::from(grpc) << 2,
        }
    }

    #[test]
    fn a_block_is_written_as_rmp_serde_writes_it_and_reads_back() {
        let calls: Vec<ApiCall> = (0..12).map(call).collect();
        let logged: Vec<LoggedCall<'_>> = calls.iter().map(ApiCall::logged).collect();
        let stored: Vec<StoredCall<'_>> = logged.iter().map(StoredCall::of).collect();
        let newest_at = stored.iter().map(|call| call.at).max().unwrap();
        let mut written = Vec::new();
        start_block(&mut written, stored.len(), newest_at);
        for call in &logged {
            start_call(&mut written, newest_at, call.at);
            let texts = append(call, &mut written);
            assert_eq!((&written[texts.app_id], &written[texts.api]), (call.app_id.as_bytes(), call.api.as_bytes()));
        }
        let spans: Vec<Option<Vec<u8>>> =
            calls.iter().map(|call| call.span.map(|span| [span.trace_id.as_slice(), &span.span_id].concat())).collect();
        let expected: Vec<CompactCall<'_>> =
            stored.iter().zip(&spans).map(|(call, span)| compact(call, newest_at, span.as_deref())).collect();
        assert_eq!(written, rmp_serde::to_vec(&(BLOCK_FORMAT, newest_at, &expected)).unwrap());
        assert!(
            expected.iter().any(|call| call.method.is_none()) && expected.iter().any(|call| call.flags & GRPC != 0)
        );
        let project = ProjectId::received("p1".to_owned());
        let read: Vec<ApiCall> = decode(1, &written).unwrap().into_iter().map(|call| call.to_call(&project)).collect();
        assert_eq!(read, calls);
        // Format 3, the one before, still reads.
        let format_3 = rmp_serde::to_vec(&(3, &stored)).unwrap();
        let read: Vec<ApiCall> = decode(1, &format_3).unwrap().into_iter().map(|call| call.to_call(&project)).collect();
        assert_eq!(read, calls);
        assert!(
            format_3.len() > written.len() + 12 * 12,
            "{} bytes in format 3, {} in 4",
            format_3.len(),
            written.len()
        );
    }

    #[test]
    fn blocks_of_formats_this_version_does_not_know_are_refused() {
        for body in [rmp_serde::to_vec(&(9, Vec::<u8>::new())), rmp_serde::to_vec(&(5, 0, Vec::<u8>::new()))] {
            let err = decode(7, &body.unwrap()).err().expect("refused");
            assert!(err.to_string().contains("does not read"), "{err}");
        }
    }

    #[test]
    fn blocks_that_held_ids_and_addresses_as_text_still_read() {
        let calls: Vec<ApiCall> = (0..6).map(call).collect();
        let (trace_ids, span_ids): (Vec<String>, Vec<String>) = calls
            .iter()
            .map(|call| call.span.map(|span| (span.trace_id_hex(), span.span_id_hex())).unwrap_or_default())
            .unzip();
        let addresses: Vec<String> =
            calls.iter().map(|call| call.caller_addr.map(|a| a.to_string()).unwrap_or_default()).collect();
        fn as_text(text: &str) -> Option<Binary<'_>> {
            (!text.is_empty()).then_some(Binary::Text(text))
        }
        let logged: Vec<LoggedCall<'_>> = calls.iter().map(ApiCall::logged).collect();
        let older: Vec<StoredCall<'_>> = logged
            .iter()
            .enumerate()
            .map(|(index, call)| StoredCall {
                trace_id: as_text(&trace_ids[index]),
                span_id: as_text(&span_ids[index]),
                caller_addr: as_text(&addresses[index]),
                ..StoredCall::of(call)
            })
            .collect();
        let body = rmp_serde::to_vec(&(1, &older)).unwrap();
        let project = ProjectId::received("p1".to_owned());
        let read: Vec<ApiCall> = decode(1, &body).unwrap().into_iter().map(|call| call.to_call(&project)).collect();
        assert_eq!(read, calls);
    }

    #[test]
    fn blocks_written_before_streams_ends_were_logged_still_read() {
        let calls: Vec<ApiCall> = (0..6).map(|index| ApiCall { stream_ended: false, ..call(index) }).collect();
        // Format 2's calls are format 3's without the last field: each an array of 16, not 17.
        let mut body = vec![0x92, 2];
        pack::array_len(&mut body, calls.len());
        for call in &calls {
            let fields = rmp_serde::to_vec(&StoredCall::of(&call.logged())).unwrap();
            assert_eq!((&fields[..3], fields.last()), (&[0xdc, 0, 17][..], Some(&0xc2)));
            body.extend_from_slice(&[0xdc, 0, 16]);
            body.extend_from_slice(&fields[3..fields.len() - 1]);
        }
        let project = ProjectId::received("p1".to_owned());
        let read: Vec<ApiCall> = decode(1, &body).unwrap().into_iter().map(|call| call.to_call(&project)).collect();
        assert_eq!(read, calls);
    }

    #[test]
    fn text_is_found_in_any_case() {
        assert!(contains_lowercase("/v1.0/state/Orders", "orders"));
        assert!(!contains_lowercase("/v1.0/state/kv", "orders"));
        assert!(contains_lowercase("Ünïcode-Orders", "ünïcode"));
    }
}
