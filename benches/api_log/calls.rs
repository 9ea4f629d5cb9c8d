//! Realistic API log rows: the calls a gateway hands to `ApiLog::record` (several projects with a few busy ones,
//! App IDs, every building block over HTTP and gRPC, a few failures, trace ids, user agents), made from an index
//! so that a baseline and the writer write the same rows; and the calls of the query part's fill, over 1,000
//! projects of which three are heavy.

use std::net::IpAddr;

use outrigger_store::{ApiCall, CallDirection, CallSpan, ProjectId};

/// Projects the written calls spread over: project 0 makes 20 % of them, projects 1-9 40 %, 10-99 the rest.
pub const WRITE_PROJECTS: u64 = 100;

/// The columns of the baseline's bare table (a row per call, as the log once was), after `id`.
pub const STORED_COLUMNS: &str = "project_id, at, app_id, target, api, protocol, method, path, component, status, \
                                  grpc_code, latency_us, trace_id, span_id, user_agent, caller_addr, direction";
/// Values per row.
pub const VALUES_PER_ROW: usize = 17;

/// SplitMix64: the bench's reproducible randomness, from a row index and a salt.
fn mix(index: u64, salt: u64) -> u64 {
    let mut x = index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The identifiers of the write part's projects (the log keeps no reference to `projects`).
pub fn write_projects() -> Vec<ProjectId> {
    (0..WRITE_PROJECTS)
        .map(|index| ProjectId::received(format!("prj_{:016x}{:016x}", mix(index, 1), mix(index, 2))))
        .collect()
}

/// The `index`th call, made at `at` (Unix milliseconds).
pub fn call(projects: &[ProjectId], index: u64, at: i64) -> ApiCall {
    let pick = |salt: u64, modulo: u64| mix(index, salt) % modulo;
    let share = pick(3, 1000);
    let project = match share {
        0..200 => 0,
        200..600 => 1 + share % 9,
        _ => 10 + share % 90,
    } as usize;
    let app_id = match pick(4, 10) {
        0..6 => "checkout",
        6..9 => "cart",
        _ => "orders",
    };
    let key = pick(5, 100_000);
    let grpc = pick(6, 5) == 0;
    let failure = pick(7, 1000);
    let (status, grpc_code) = match failure {
        0..5 => (500, 13),
        5..8 => (503, 14),
        8..28 => (404, 5),
        28..33 => (400, 3),
        _ => (200, 0),
    };
    let to_app = pick(8, 10) == 0;
    // (api, rpc, HTTP method, HTTP path, component, target)
    let (api, rpc, method, path, component, target): (&str, &str, &str, String, Option<&str>, Option<String>) =
        if to_app {
            ("pubsub", "OnTopicEvent", "POST", "/events/orders".to_owned(), Some("pubsub"), Some("orders".to_owned()))
        } else {
            match pick(9, 1000) {
                0..450 if pick(10, 10) < 7 => (
                    "state",
                    "GetState",
                    "GET",
                    format!("/v1.0/state/statestore/order-{key}"),
                    Some("statestore"),
                    None,
                ),
                0..450 => ("state", "SaveState", "POST", "/v1.0/state/statestore".to_owned(), Some("statestore"), None),
                450..650 => {
                    let callee = if key % 2 == 0 { "payments" } else { "inventory" };
                    (
                        "invocation",
                        "InvokeService",
                        "POST",
                        format!("/v1.0/invoke/{callee}/method/orders/order-{key}"),
                        None,
                        Some(callee.to_owned()),
                    )
                }
                650..800 => (
                    "pubsub",
                    "PublishEvent",
                    "POST",
                    "/v1.0/publish/pubsub/orders".to_owned(),
                    Some("pubsub"),
                    Some("orders".to_owned()),
                ),
                800..850 => (
                    "workflows",
                    "StartWorkflowBeta1",
                    "POST",
                    "/v1.0-beta1/workflows/dapr/OrderWorkflow/start".to_owned(),
                    Some("dapr"),
                    None,
                ),
                850..900 => {
                    ("secrets", "GetSecret", "GET", "/v1.0/secrets/vault/db-password".to_owned(), Some("vault"), None)
                }
                900..940 => ("bindings", "InvokeBinding", "POST", "/v1.0/bindings/smtp".to_owned(), Some("smtp"), None),
                940..980 => (
                    "configuration",
                    "GetConfiguration",
                    "GET",
                    "/v1.0/configuration/configstore".to_owned(),
                    Some("configstore"),
                    None,
                ),
                _ => (
                    "jobs",
                    "ScheduleJobAlpha1",
                    "POST",
                    format!("/v1.0-alpha1/jobs/reminder-{key}"),
                    None,
                    Some(format!("reminder-{key}")),
                ),
            }
        };
    let grpc = grpc && !to_app;
    let latency_us = if pick(11, 100) == 0 { 20_000 + pick(12, 200_000) } else { 300 + pick(12, 4_000) };
    let call = ApiCall {
        project_id: projects[project % projects.len()].clone(),
        at,
        app_id: app_id.to_owned(),
        target,
        api: api.into(),
        protocol: if grpc { "grpc" } else { "http" }.into(),
        method: if grpc { rpc } else { method }.into(),
        path: if grpc { format!("/dapr.proto.runtime.v1.Dapr/{rpc}") } else { path },
        component: component.map(str::to_owned),
        status: if status == 200 && method == "POST" && api == "state" { 204 } else { status },
        grpc_code: grpc.then_some(grpc_code),
        latency_us: latency_us as i64,
        span: None,
        user_agent: None,
        caller_addr: None,
        direction: if to_app { CallDirection::ToApp } else { CallDirection::FromApp },
        stream_ended: false,
    };
    with_caller(call, index, 13, key)
}

/// `call` with the trace ids, user agent and address of the `index`th call (its randomness from `salt` on).
fn with_caller(call: ApiCall, index: u64, salt: u64, key: u64) -> ApiCall {
    let user_agent = if call.protocol == "grpc" {
        "grpc-go/1.64.0"
    } else if call.app_id == "checkout" {
        "dapr-sdk-go/v1.12.0"
    } else {
        "python-requests/2.32.3"
    };
    ApiCall {
        span: Some(CallSpan {
            trace_id: (u128::from(mix(index, salt)) << 64 | u128::from(mix(index, salt + 1))).to_be_bytes(),
            span_id: mix(index, salt + 2).to_be_bytes(),
        }),
        user_agent: Some(user_agent.to_owned()),
        caller_addr: Some(IpAddr::from([10, 0, (key % 256) as u8, ((key / 256) % 256) as u8])),
        ..call
    }
}

/// Calls `from..to`, about 100 per millisecond from `start` (Unix milliseconds).
pub fn calls(projects: &[ProjectId], from: u64, to: u64, start: i64) -> Vec<ApiCall> {
    (from..to).map(|index| call(projects, index, start + (index / 100) as i64)).collect()
}

/// Bytes of a call's text columns, on average over `calls`.
pub fn mean_text_bytes(calls: &[ApiCall]) -> f64 {
    let text = |call: &ApiCall| {
        let optional = [&call.target, &call.component, &call.user_agent];
        // As the log shows them: the ids in hex, the address as text.
        let span = call.span.map_or(0, |span| span.trace_id_hex().len() + span.span_id_hex().len());
        let address = call.caller_addr.map_or(0, |address| address.to_string().len());
        call.project_id.as_str().len()
            + call.app_id.len()
            + call.api.len()
            + call.protocol.len()
            + call.method.len()
            + call.path.len()
            + call.direction.as_str().len()
            + optional.iter().map(|value| value.as_ref().map_or(0, String::len)).sum::<usize>()
            + span
            + address
    };
    calls.iter().map(text).sum::<usize>() as f64 / calls.len().max(1) as f64
}

/// The bare table of the write baseline: a row per call with its columns and two indexes (the log's time order,
/// expiry), nothing else (no per-minute counts).
pub fn bare_table(postgres: bool) -> [String; 3] {
    let id = if postgres { "id BIGSERIAL PRIMARY KEY" } else { "id INTEGER PRIMARY KEY AUTOINCREMENT" };
    [
        format!(
            "CREATE TABLE bare_api_calls ({id}, project_id TEXT NOT NULL, at BIGINT NOT NULL, app_id TEXT NOT NULL, \
             target TEXT, api TEXT NOT NULL, protocol TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, \
             component TEXT, status BIGINT NOT NULL, grpc_code BIGINT, latency_us BIGINT NOT NULL, trace_id TEXT, \
             span_id TEXT, user_agent TEXT, caller_addr TEXT, direction TEXT NOT NULL DEFAULT 'from_app')"
        ),
        "CREATE INDEX bare_api_calls_by_time ON bare_api_calls (project_id, at, id)".to_owned(),
        "CREATE INDEX bare_api_calls_expiry ON bare_api_calls (at)".to_owned(),
    ]
}

// === the query part's fill ===

/// Projects of the query part: the first three hold 30 %, 15 % and 5 % of the rows, the other 997 share the rest.
pub const QUERY_PROJECTS: usize = 1000;
pub const HEAVY_SHARES: [f64; 3] = [0.30, 0.15, 0.05];

/// The name of the query part's `index`th project.
pub fn query_project(index: usize) -> String {
    format!("logs{index:04}")
}

/// App IDs of every project of the query part, with the share of its calls each makes.
const QUERY_APPS: [(&str, f64); 8] = [
    ("checkout", 0.40),
    ("cart", 0.20),
    ("orders", 0.15),
    ("payments", 0.10),
    ("inventory", 0.08),
    ("shipping", 0.05),
    ("notifications", 0.015),
    ("audit", 0.005),
];

/// A building block of the query part: its share, rpc, HTTP method, HTTP path, component and target, the last
/// three for the call's key `k`.
struct QueryApi {
    api: &'static str,
    share: f64,
    rpc: &'static str,
    method: &'static str,
    path: fn(u64) -> String,
    component: Option<&'static str>,
    target: fn(u64) -> Option<String>,
}

const QUERY_APIS: [QueryApi; 8] = [
    QueryApi {
        api: "state",
        share: 0.45,
        rpc: "GetState",
        method: "GET",
        path: |k| format!("/v1.0/state/statestore/order-{k}"),
        component: Some("statestore"),
        target: |_| None,
    },
    QueryApi {
        api: "invocation",
        share: 0.20,
        rpc: "InvokeService",
        method: "POST",
        path: |k| format!("/v1.0/invoke/payments/method/orders/order-{k}"),
        component: None,
        target: |_| Some("payments".to_owned()),
    },
    QueryApi {
        api: "pubsub",
        share: 0.15,
        rpc: "PublishEvent",
        method: "POST",
        path: |_| "/v1.0/publish/pubsub/orders".to_owned(),
        component: Some("pubsub"),
        target: |_| Some("orders".to_owned()),
    },
    QueryApi {
        api: "workflows",
        share: 0.05,
        rpc: "StartWorkflowBeta1",
        method: "POST",
        path: |_| "/v1.0-beta1/workflows/dapr/OrderWorkflow/start".to_owned(),
        component: Some("dapr"),
        target: |_| None,
    },
    QueryApi {
        api: "secrets",
        share: 0.05,
        rpc: "GetSecret",
        method: "GET",
        path: |_| "/v1.0/secrets/vault/db-password".to_owned(),
        component: Some("vault"),
        target: |_| None,
    },
    QueryApi {
        api: "bindings",
        share: 0.04,
        rpc: "InvokeBinding",
        method: "POST",
        path: |_| "/v1.0/bindings/smtp".to_owned(),
        component: Some("smtp"),
        target: |_| None,
    },
    QueryApi {
        api: "configuration",
        share: 0.04,
        rpc: "GetConfiguration",
        method: "GET",
        path: |_| "/v1.0/configuration/configstore".to_owned(),
        component: Some("configstore"),
        target: |_| None,
    },
    QueryApi {
        api: "jobs",
        share: 0.02,
        rpc: "ScheduleJobAlpha1",
        method: "POST",
        path: |k| format!("/v1.0-alpha1/jobs/reminder-{k}"),
        component: None,
        target: |k| Some(format!("reminder-{k}")),
    },
];

/// Share of the calls per HTTP status (the rest are 200), with the gRPC code paired with it.
const QUERY_FAILURES: [(u16, f64, i32); 4] = [(500, 0.005, 13), (503, 0.003, 14), (404, 0.020, 5), (400, 0.005, 3)];

/// The index of the first of `shares` whose cumulative share exceeds `uniform` (the last one otherwise).
fn choose(uniform: f64, shares: impl Iterator<Item = f64>) -> usize {
    let mut bound = 0.0;
    let mut last = 0;
    for (index, share) in shares.enumerate() {
        bound += share;
        if uniform < bound {
            return index;
        }
        last = index;
    }
    last
}

/// The query part's `index`th call, made at `at`, by one of `projects` (the first three holding [`HEAVY_SHARES`]).
pub fn query_call(projects: &[ProjectId], index: u64, at: i64) -> ApiCall {
    let uniform = |salt: u64| (mix(index, salt) >> 11) as f64 / (1u64 << 53) as f64;
    let project = match choose(uniform(20), HEAVY_SHARES.into_iter().chain([1.0])) {
        heavy if heavy < HEAVY_SHARES.len() => heavy,
        _ => HEAVY_SHARES.len() + (mix(index, 21) % (projects.len() - HEAVY_SHARES.len()) as u64) as usize,
    };
    let app_id = QUERY_APPS[choose(uniform(22), QUERY_APPS.iter().map(|(_, share)| *share))].0;
    let api = &QUERY_APIS[choose(uniform(23), QUERY_APIS.iter().map(|api| api.share))];
    let failure = choose(uniform(24), QUERY_FAILURES.iter().map(|(_, share, _)| *share).chain([1.0]));
    let (status, grpc_code) = QUERY_FAILURES.get(failure).map_or((200, 0), |(status, _, code)| (*status, *code));
    let grpc = uniform(25) < 0.2;
    let key = mix(index, 26) % 100_000;
    let latency_us =
        if uniform(27) > 0.99 { 20_000 + (mix(index, 28) % 4000) * 50 } else { 300 + mix(index, 28) % 4000 };
    let call = ApiCall {
        project_id: projects[project].clone(),
        at,
        app_id: app_id.to_owned(),
        target: (api.target)(key),
        api: api.api.into(),
        protocol: if grpc { "grpc" } else { "http" }.into(),
        method: if grpc { api.rpc } else { api.method }.into(),
        path: if grpc { format!("/dapr.proto.runtime.v1.Dapr/{}", api.rpc) } else { (api.path)(key) },
        component: api.component.map(str::to_owned),
        status,
        grpc_code: grpc.then_some(grpc_code),
        latency_us: latency_us as i64,
        span: None,
        user_agent: None,
        caller_addr: None,
        direction: if uniform(32) < 0.1 { CallDirection::ToApp } else { CallDirection::FromApp },
        stream_ended: false,
    };
    with_caller(call, index, 29, key)
}
