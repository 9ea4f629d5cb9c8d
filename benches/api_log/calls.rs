//! Realistic API log rows: the calls a gateway hands to `ApiLog::record` (several projects with a few busy ones,
//! App IDs, every building block over HTTP and gRPC, a few failures, trace ids, user agents), made from an index
//! so that a baseline and the writer write the same rows; and the bulk fill of the query part, which makes the
//! same kind of rows inside the database (`INSERT ... SELECT` over `generate_series` on PostgreSQL, a recursive
//! CTE on SQLite).

use outrigger_store::{ApiCall, CallDirection, ProjectId};

/// Projects the written calls spread over: project 0 makes 20 % of them, projects 1-9 40 %, 10-99 the rest.
pub const WRITE_PROJECTS: u64 = 100;

/// The API log's columns in the order of `api_calls`, after `id`.
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
    ApiCall {
        project_id: projects[project % projects.len()].clone(),
        at,
        app_id: app_id.to_owned(),
        target,
        api: api.to_owned(),
        protocol: if grpc { "grpc" } else { "http" }.to_owned(),
        method: if grpc { rpc } else { method }.to_owned(),
        path: if grpc { format!("/dapr.proto.runtime.v1.Dapr/{rpc}") } else { path },
        component: component.map(str::to_owned),
        status: if status == 200 && method == "POST" && api == "state" { 204 } else { status },
        grpc_code: grpc.then_some(grpc_code),
        latency_us: latency_us as i64,
        trace_id: Some(format!("{:016x}{:016x}", mix(index, 13), mix(index, 14))),
        span_id: Some(format!("{:016x}", mix(index, 15))),
        user_agent: Some(
            if grpc {
                "grpc-go/1.64.0"
            } else if app_id == "checkout" {
                "dapr-sdk-go/v1.12.0"
            } else {
                "python-requests/2.32.3"
            }
            .to_owned(),
        ),
        caller_addr: Some(format!("10.0.{}.{}", key % 256, (key / 256) % 256)),
        direction: if to_app { CallDirection::ToApp } else { CallDirection::FromApp },
    }
}

/// Calls `from..to`, about 100 per millisecond from `start` (Unix milliseconds).
pub fn calls(projects: &[ProjectId], from: u64, to: u64, start: i64) -> Vec<ApiCall> {
    (from..to).map(|index| call(projects, index, start + (index / 100) as i64)).collect()
}

/// Bytes of a call's text columns, on average over `calls`.
pub fn mean_text_bytes(calls: &[ApiCall]) -> f64 {
    let text = |call: &ApiCall| {
        let optional =
            [&call.target, &call.component, &call.trace_id, &call.span_id, &call.user_agent, &call.caller_addr];
        call.project_id.as_str().len()
            + call.app_id.len()
            + call.api.len()
            + call.protocol.len()
            + call.method.len()
            + call.path.len()
            + call.direction.as_str().len()
            + optional.iter().map(|value| value.as_ref().map_or(0, String::len)).sum::<usize>()
    };
    calls.iter().map(text).sum::<usize>() as f64 / calls.len().max(1) as f64
}

/// The bare table of the write baseline: `api_calls`' columns and indexes, nothing else (no per-minute counts).
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
pub const QUERY_APPS: [(&str, f64); 8] = [
    ("checkout", 0.40),
    ("cart", 0.20),
    ("orders", 0.15),
    ("payments", 0.10),
    ("inventory", 0.08),
    ("shipping", 0.05),
    ("notifications", 0.015),
    ("audit", 0.005),
];

/// (API, share, rpc, HTTP method, HTTP path, component, target): one row of [`QUERY_APIS`].
type QueryApi = (&'static str, f64, &'static str, &'static str, &'static str, &'static str, &'static str);

/// Building blocks and their shares, with the rpc, HTTP method and path (a SQL expression over `r.k`, the
/// key) of their calls, and component and target (SQL expressions).
const QUERY_APIS: [QueryApi; 8] = [
    ("state", 0.45, "GetState", "GET", "'/v1.0/state/statestore/order-' || CAST(r.k AS TEXT)", "'statestore'", "NULL"),
    (
        "invocation",
        0.20,
        "InvokeService",
        "POST",
        "'/v1.0/invoke/payments/method/orders/order-' || CAST(r.k AS TEXT)",
        "NULL",
        "'payments'",
    ),
    ("pubsub", 0.15, "PublishEvent", "POST", "'/v1.0/publish/pubsub/orders'", "'pubsub'", "'orders'"),
    (
        "workflows",
        0.05,
        "StartWorkflowBeta1",
        "POST",
        "'/v1.0-beta1/workflows/dapr/OrderWorkflow/start'",
        "'dapr'",
        "NULL",
    ),
    ("secrets", 0.05, "GetSecret", "GET", "'/v1.0/secrets/vault/db-password'", "'vault'", "NULL"),
    ("bindings", 0.04, "InvokeBinding", "POST", "'/v1.0/bindings/smtp'", "'smtp'", "NULL"),
    ("configuration", 0.04, "GetConfiguration", "GET", "'/v1.0/configuration/configstore'", "'configstore'", "NULL"),
    (
        "jobs",
        0.02,
        "ScheduleJobAlpha1",
        "POST",
        "'/v1.0-alpha1/jobs/reminder-' || CAST(r.k AS TEXT)",
        "NULL",
        "'reminder-' || CAST(r.k AS TEXT)",
    ),
];

/// Share of the calls per HTTP status (the rest are 200), with the gRPC code paired with it.
const QUERY_FAILURES: [(i64, f64, i64); 4] = [(500, 0.005, 13), (503, 0.003, 14), (404, 0.020, 5), (400, 0.005, 3)];

/// `CASE WHEN <uniform> < bound THEN value ... ELSE last END` over cumulative shares.
fn case(uniform: &str, choices: &[(f64, String)]) -> String {
    let mut sql = String::from("CASE");
    let mut bound = 0.0;
    for (share, value) in &choices[..choices.len() - 1] {
        bound += share;
        sql.push_str(&format!(" WHEN {uniform} < {bound:.4} THEN {value}"));
    }
    sql.push_str(&format!(" ELSE {} END", choices[choices.len() - 1].1));
    sql
}

/// The statement that adds rows `$1..=$2` (of `$5` in all, at `$3 + i * $4 / $5`) to `api_calls`: each row's
/// random numbers are drawn once (a sub-select PostgreSQL does not flatten; the rows of a recursive CTE on
/// SQLite), and the project comes from `bench_projects (idx, id)`.
pub fn fill_statement(postgres: bool) -> String {
    let quoted = |text: &str| format!("'{text}'");
    let app = case("r.ra", &QUERY_APPS.map(|(name, share)| (share, quoted(name))));
    let by_api = |column: fn(&QueryApi) -> String| case("r.rb", &QUERY_APIS.map(|api| (api.1, column(&api))));
    let api = by_api(|api| format!("'{}'", api.0));
    let rpc = by_api(|api| format!("'{}'", api.2));
    let http_method = by_api(|api| format!("'{}'", api.3));
    let http_path = by_api(|api| api.4.to_owned());
    let component = by_api(|api| api.5.to_owned());
    let target = by_api(|api| api.6.to_owned());
    let mut statuses: Vec<(f64, String)> =
        QUERY_FAILURES.iter().map(|(status, share, _)| (*share, status.to_string())).collect();
    statuses.push((1.0, "200".to_owned()));
    let status = case("r.rs", &statuses);
    let mut codes: Vec<(f64, String)> =
        QUERY_FAILURES.iter().map(|(_, share, code)| (*share, code.to_string())).collect();
    codes.push((1.0, "0".to_owned()));
    let grpc_code = case("r.rs", &codes);
    let (trace_id, span_id) = if postgres {
        ("md5(CAST(r.i AS TEXT))", "substr(md5(CAST(r.i AS TEXT) || 's'), 1, 16)")
    } else {
        ("lower(hex(randomblob(16)))", "lower(hex(randomblob(8)))")
    };
    let select = format!(
        "SELECT p.id, r.at, {app}, {target}, {api}, CASE WHEN r.rg < 0.2 THEN 'grpc' ELSE 'http' END, \
         CASE WHEN r.rg < 0.2 THEN {rpc} ELSE {http_method} END, \
         CASE WHEN r.rg < 0.2 THEN '/dapr.proto.runtime.v1.Dapr/' || {rpc} ELSE {http_path} END, \
         {component}, {status}, \
         CASE WHEN r.rg < 0.2 THEN {grpc_code} ELSE NULL END, \
         CASE WHEN r.rd > 0.99 THEN 20000 + r.lat * 50 ELSE 300 + r.lat END, {trace_id}, {span_id}, \
         CASE WHEN r.rg < 0.2 THEN 'grpc-go/1.64.0' WHEN r.ra < 0.4 THEN 'dapr-sdk-go/v1.12.0' \
         ELSE 'python-requests/2.32.3' END, \
         '10.0.' || CAST(r.k % 256 AS TEXT) || '.' || CAST((r.k / 256) % 256 AS TEXT), \
         CASE WHEN r.rd < 0.1 THEN 'to_app' ELSE 'from_app' END"
    );
    let heavy = HEAVY_SHARES
        .iter()
        .scan(0.0, |bound, share| {
            *bound += share;
            Some(*bound)
        })
        .enumerate()
        .map(|(index, bound)| format!("WHEN r.rp < {bound:.4} THEN {index}"))
        .collect::<Vec<_>>()
        .join(" ");
    let light = QUERY_PROJECTS - HEAVY_SHARES.len();
    let project = format!("CASE {heavy} ELSE {} + r.lp END", HEAVY_SHARES.len());
    if postgres {
        format!(
            "INSERT INTO api_calls ({STORED_COLUMNS}) {select} FROM (SELECT g AS i, \
             $3::BIGINT + (g * $4::BIGINT) / $5::BIGINT AS at, random() AS rp, \
             floor(random() * {light})::BIGINT AS lp, \
             random() AS ra, random() AS rb, random() AS rs, random() AS rg, random() AS rd, \
             floor(random() * 100000)::BIGINT AS k, floor(random() * 4000)::BIGINT AS lat \
             FROM generate_series($1::BIGINT, $2::BIGINT) AS g OFFSET 0) AS r \
             JOIN bench_projects AS p ON p.idx = {project}"
        )
    } else {
        let uniform = "((random() & 1048575) / 1048576.0)";
        let draws = format!(
            "{uniform}, (random() & 268435455) % {light}, {uniform}, {uniform}, {uniform}, {uniform}, {uniform}, \
             (random() & 268435455) % 100000, (random() & 268435455) % 4000"
        );
        // A correlated lookup rather than a join, so that SQLite walks the CTE once and finds each project by key.
        let select = select.replacen(
            "SELECT p.id, r.at",
            &format!("SELECT (SELECT id FROM bench_projects WHERE idx = {project}), $3 + (r.i * $4) / $5"),
            1,
        );
        format!(
            "WITH RECURSIVE r(i, rp, lp, ra, rb, rs, rg, rd, k, lat) AS (SELECT $1, {draws} UNION ALL \
             SELECT i + 1, {draws} FROM r WHERE i < $2) INSERT INTO api_calls ({STORED_COLUMNS}) {select} FROM r"
        )
    }
}
