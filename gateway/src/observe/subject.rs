//! What a call is about, for its metrics, span and log entry: the building block, component and target, read
//! from an HTTP path or a gRPC request.

use std::borrow::Cow;

use dapr::dapr::proto::runtime::v1 as pb;
use dapr_durabletask_proto as wf;

/// The building block, component and target of a call: borrowed from its path where it names them.
pub(crate) struct Subject<'a> {
    pub(crate) api: &'static str,
    pub(crate) component: Option<Cow<'a, str>>,
    pub(crate) target: Option<Cow<'a, str>>,
}

impl Subject<'_> {
    /// The subject of an HTTP call of the Dapr API, from its path: `/<version>/<api>/<name>/…`.
    pub(crate) fn of_http_path<'a>(path: &'a str) -> Subject<'a> {
        // Segment by segment with a byte search: `split('/')` behind `skip` cost ~500 instructions a call.
        let mut rest = path.trim_start_matches('/');
        let mut next = || {
            let (segment, after) = match rest.bytes().position(|byte| byte == b'/') {
                Some(end) => (&rest[..end], &rest[end + 1..]),
                None => (rest, ""),
            };
            rest = after;
            Some(segment).filter(|segment| !segment.is_empty())
        };
        next(); // the API's version
        let (word, name) = (next().unwrap_or_default(), next());
        let component = |name: Option<&'a str>| name.map(Cow::Borrowed);
        match word {
            "state" => Subject { api: "state", component: component(name), target: None },
            // `/v1.0-alpha1/publish/bulk/{pubsub}/{topic}`: the topic is the publish's target.
            "publish" if name == Some("bulk") => {
                let pubsub = component(next());
                Subject { api: "pubsub", component: pubsub, target: component(next()) }
            }
            "publish" => Subject { api: "pubsub", component: component(name), target: component(next()) },
            "invoke" => Subject { api: "invocation", component: None, target: component(name) },
            "secrets" => Subject { api: "secrets", component: component(name), target: None },
            "bindings" => Subject { api: "bindings", component: component(name), target: None },
            "lock" | "unlock" => Subject { api: "lock", component: component(name), target: None },
            "configuration" => Subject { api: "configuration", component: component(name), target: None },
            "jobs" => Subject { api: "jobs", component: None, target: None },
            "workflows" => Subject { api: "workflows", component: component(name), target: None },
            "metadata" => Subject { api: "metadata", component: None, target: None },
            _ => Subject { api: "other", component: None, target: None },
        }
    }

    /// An invocation of `target` by daprd's fallback route.
    pub(crate) fn invocation<'a>(target: &str) -> Subject<'a> {
        Subject { api: "invocation", component: None, target: Some(Cow::Owned(target.to_owned())) }
    }
}

/// What a gRPC request names: its component or target. The building block comes from the rpc.
pub(crate) trait RpcSubject {
    fn component(&self) -> Option<&str> {
        None
    }
    fn target(&self) -> Option<&str> {
        None
    }
}

macro_rules! rpc_subjects {
    (component: $($with:ty => $field:ident),* ; target: $($to:ty => $target:ident),* ; none: $($without:ty),* $(,)?) => {
        $(impl RpcSubject for $with {
            fn component(&self) -> Option<&str> {
                Some(self.$field.as_str())
            }
        })*
        $(impl RpcSubject for $to {
            fn target(&self) -> Option<&str> {
                Some(self.$target.as_str())
            }
        })*
        $(impl RpcSubject for $without {})*
    };
}

rpc_subjects! {
    component: pb::GetStateRequest => store_name, pb::GetBulkStateRequest => store_name, pb::SaveStateRequest => store_name,
        pb::DeleteStateRequest => store_name, pb::DeleteBulkStateRequest => store_name,
        pb::ExecuteStateTransactionRequest => store_name, pb::QueryStateRequest => store_name,
        pb::GetSecretRequest => store_name, pb::GetBulkSecretRequest => store_name,
        pb::InvokeBindingRequest => name, pb::TryLockRequest => store_name, pb::UnlockRequest => store_name,
        pb::GetConfigurationRequest => store_name, pb::UnsubscribeConfigurationRequest => store_name;
    target: pb::InvokeServiceRequest => id;
    none: pb::ScheduleJobRequest, pb::GetJobRequest, pb::DeleteJobRequest, pb::ListJobsRequest,
        pb::ListJobsRequestAlpha1, pb::DeleteJobsByPrefixRequest, pb::DeleteJobsByPrefixRequestAlpha1,
        pb::GetMetadataRequest, pb::SetMetadataRequest, pb::ShutdownRequest, (),
        // durabletask's messages: workflows have no component to name.
        wf::CreateInstanceRequest, wf::GetInstanceRequest, wf::RaiseEventRequest, wf::TerminateRequest,
        wf::SuspendRequest, wf::ResumeRequest, wf::PurgeInstancesRequest, wf::GetInstanceHistoryRequest,
        wf::ListInstanceIDsRequest, wf::WorkflowResponse, wf::ActivityResponse,
}

/// A publish names its pub/sub and, as its target, its topic.
macro_rules! publish_subjects {
    ($($request:ty),*) => {
        $(impl RpcSubject for $request {
            fn component(&self) -> Option<&str> {
                Some(self.pubsub_name.as_str())
            }
            fn target(&self) -> Option<&str> {
                Some(self.topic.as_str())
            }
        })*
    };
}

publish_subjects!(pb::PublishEventRequest, pb::BulkPublishRequest);

/// The building block of an rpc, from its name. Every call asks it: words are found by comparing bytes, as
/// `str::contains` and `trim_end_matches` with a `&str` set up a substring searcher each (~1,100 instructions a
/// call for the nine look-ups).
pub(crate) fn rpc_api(path: &str) -> &'static str {
    if path.starts_with("/TaskHubSidecarService/") {
        return "workflows";
    }
    let name = rpc_name(path).as_bytes();
    let stem = name.strip_suffix(b"Alpha1").or_else(|| name.strip_suffix(b"Alpha2")).unwrap_or(name);
    let has = |word: &[u8]| stem.windows(word.len()).any(|window| window == word);
    match stem {
        _ if has(b"State") => "state",
        _ if has(b"Publish") || has(b"TopicEvents") => "pubsub",
        b"InvokeService" => "invocation",
        _ if has(b"Secret") => "secrets",
        b"InvokeBinding" => "bindings",
        b"TryLock" | b"Unlock" => "lock",
        _ if has(b"Configuration") => "configuration",
        _ if has(b"Job") => "jobs",
        b"GetMetadata" | b"SetMetadata" => "metadata",
        _ if has(b"Workflow") => "workflows",
        _ => "other",
    }
}

/// The rpc's name, the last segment of its path: found by a byte search, as `rsplit` with a `char` sets up a
/// UTF-8 searcher (~400 instructions a call, asked twice per call).
pub(crate) fn rpc_name(path: &str) -> &str {
    path.bytes().rposition(|byte| byte == b'/').map_or(path, |slash| &path[slash + 1..])
}
