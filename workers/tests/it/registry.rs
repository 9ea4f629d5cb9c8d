//! The component registry: every declared type opens through the public opening functions, against the real
//! backends, and works; the registry's declarations say what Dapr's components say.

use std::collections::BTreeMap;
use std::time::Duration;

use outrigger_resources::BuildingBlock;
use outrigger_workers::bindings::{self, BindingRequest};
use outrigger_workers::secrets::{self, HostSecrets};
use outrigger_workers::{component_types, configuration, lock, pubsub, state, Boundary};

use crate::backends::{
    delete_redis_keys, drop_table, fresh_table_name, metadata, postgres_url, put, redis_metadata, redis_url,
    set_redis_string, unique_prefix,
};
use crate::pubsub_backends::{delete_stream, jetstream_metadata, unique_id};

/// Metadata that opens `type_name` against this machine's services (and `http_url`, a server of the test), and
/// what to clean up afterwards.
fn sample(type_name: &str, dir: &std::path::Path, id: &str, http_url: &str) -> (BTreeMap<String, String>, CleanUp) {
    match type_name {
        "bindings.http" => (metadata(&[("url", http_url)]), CleanUp::Nothing),
        "bindings.cron" => (metadata(&[("schedule", "@every 1s")]), CleanUp::Nothing),
        "configuration.postgresql" | "configuration.postgres" => {
            let table = fresh_table_name();
            (metadata(&[("connectionString", &postgres_url()), ("table", &table)]), CleanUp::Table(table))
        }
        "bindings.rabbitmq" => {
            let queue = format!("registry-{id}");
            (
                metadata(&[("host", "amqp://127.0.0.1:5672"), ("queueName", &queue), ("deleteWhenUnused", "true")]),
                CleanUp::Nothing,
            )
        }
        "bindings.mqtt3" => {
            (metadata(&[("url", "mqtt://127.0.0.1:1883"), ("topic", &format!("registry/{id}"))]), CleanUp::Nothing)
        }
        "bindings.postgresql" | "bindings.postgres" => {
            (metadata(&[("connectionString", &postgres_url())]), CleanUp::Nothing)
        }
        "state.in-memory" | "pubsub.in-memory" | "secretstores.local.env" => (BTreeMap::new(), CleanUp::Nothing),
        "state.sqlite" => {
            let file = dir.join("registry.db");
            (metadata(&[("connectionString", file.to_str().expect("UTF-8 path"))]), CleanUp::Nothing)
        }
        "state.postgresql" => {
            let table = fresh_table_name();
            (metadata(&[("connectionString", &postgres_url()), ("tableName", &table)]), CleanUp::Table(table))
        }
        "state.redis" | "pubsub.redis" | "lock.redis" | "configuration.redis" | "bindings.redis" => {
            (redis_metadata(), CleanUp::RedisKeys(format!("*{id}*")))
        }
        "pubsub.jetstream" => (jetstream_metadata(id), CleanUp::Stream(format!("IT_{id}"))),
        "secretstores.local.file" => {
            let file = dir.join("secrets.json");
            std::fs::write(&file, format!(r#"{{"{id}": "found"}}"#)).expect("write the secrets file");
            (metadata(&[("secretsFile", file.to_str().expect("UTF-8 path"))]), CleanUp::Nothing)
        }
        other => panic!("{other} is declared but this test has no metadata to open it with; add it to `sample`"),
    }
}

/// A write and a read through an opened output binding, with the operations its type takes.
async fn write_then_read(type_name: &str, binding: &dyn bindings::OutputBinding, key: String) {
    if matches!(type_name, "bindings.rabbitmq" | "bindings.mqtt3") {
        // Publish only: what they publish is read back through their input side (broker_bindings.rs).
        let request = BindingRequest { operation: "create", data: b"payload", metadata: &BTreeMap::new() };
        binding.invoke(request).await.unwrap_or_else(|err| panic!("{type_name}: {err}"));
        return;
    }
    if type_name.starts_with("bindings.postgres") {
        let metadata = metadata(&[("sql", "SELECT $1::text"), ("params", r#"["payload"]"#)]);
        let answer = binding.invoke(BindingRequest { operation: "query", data: b"", metadata: &metadata });
        assert_eq!(answer.await.expect("query through the opened binding").data, br#"[["payload"]]"#, "{type_name}");
        return;
    }
    let metadata = BTreeMap::from([("key".to_owned(), key)]);
    let request = |operation| BindingRequest { operation, data: b"payload", metadata: &metadata };
    binding.invoke(request("create")).await.expect("create through the opened binding");
    let answer = binding.invoke(request(if type_name == "bindings.http" { "post" } else { "get" }));
    assert_eq!(answer.await.expect("read through the opened binding").data, b"payload", "{type_name}");
}

enum CleanUp {
    Nothing,
    Table(String),
    RedisKeys(String),
    Stream(String),
}

impl CleanUp {
    async fn run(self) {
        match self {
            CleanUp::Nothing => {}
            CleanUp::Table(table) => drop_table(&postgres_url(), &table).await,
            CleanUp::RedisKeys(pattern) => delete_redis_keys(redis_url().as_str(), &pattern).await,
            CleanUp::Stream(name) => delete_stream(&name).await,
        }
    }
}

#[tokio::test]
async fn every_registered_type_opens_and_works() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let echo = axum::Router::new().fallback(|body: axum::body::Bytes| async move { body });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a local port");
    let http_url = format!("http://{}", listener.local_addr().expect("its address"));
    tokio::spawn(async move { axum::serve(listener, echo).await });
    let mut opened = Vec::new();
    for declared in component_types().types() {
        if !declared.user_creatable() {
            // The managed types are the platform's own stores, served to every project; they open from the
            // operator's configuration, never from a component.
            assert!(state::open(declared.name, &BTreeMap::new()).await.is_err(), "{} opened", declared.name);
            assert!(pubsub::open(declared.name, &BTreeMap::new()).await.is_err(), "{} opened", declared.name);
            continue;
        }
        let id = unique_id();
        let (mut entries, clean_up) = sample(declared.name, dir.path(), &id, &http_url);
        // Every declared default, written out: the backend must accept each value it says it applies.
        for field in declared.fields() {
            if let Some(default) = field.default {
                entries.entry(field.name.to_owned()).or_insert_with(|| default.to_owned());
            }
        }
        match declared.building_block {
            BuildingBlock::State => {
                let store = state::open(declared.name, &entries).await.unwrap_or_else(|err| panic!("{err}"));
                let key = format!("{}{id}", unique_prefix());
                store.set(&put(&key, "value")).await.expect("write through the opened store");
                let item = store.get(&key).await.expect("read through the opened store").expect("the item");
                assert_eq!(item.value, b"value", "{}", declared.name);
            }
            BuildingBlock::PubSub => {
                let broker = pubsub::open(declared.name, &entries).await.unwrap_or_else(|err| panic!("{err}"));
                let topic = format!("topic{id}");
                broker.ensure_group(&topic, "group").await.expect("create the group");
                broker.publish(&topic, b"event").await.expect("publish through the opened broker");
                let wait = Duration::from_secs(10);
                let fetched = broker.fetch(&topic, "group", 1, wait, wait).await.expect("fetch");
                assert_eq!(fetched.first().map(|delivery| &delivery.payload[..]), Some(&b"event"[..]));
                broker.ack(&topic, "group", &fetched[0].id).await.expect("ack");
            }
            BuildingBlock::Lock => {
                let locks = lock::open_within(declared.name, &entries, &Boundary::operator())
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
                let key = format!("{}{id}", unique_prefix());
                let minute = Duration::from_secs(60);
                assert!(locks.try_lock(&key, "owner", minute).await.expect("lock through the opened store"));
                let status = locks.unlock(&key, "owner").await.expect("unlock through the opened store");
                assert_eq!(status, outrigger_bus::UnlockStatus::Success, "{}", declared.name);
            }
            // Input only: the scheduler fires it (tests/sdk/python/test_input_bindings.py); it has no output side.
            BuildingBlock::Bindings if declared.name == "bindings.cron" => {
                let refused = bindings::open_within(declared.name, &entries, &Boundary::operator()).await;
                assert!(refused.is_err(), "bindings.cron opened as an output binding");
            }
            BuildingBlock::Bindings => {
                let binding = bindings::open_within(declared.name, &entries, &Boundary::operator())
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
                let key = format!("{}{id}", unique_prefix());
                write_then_read(declared.name, &*binding, key).await;
            }
            BuildingBlock::Configuration => {
                let store = configuration::open_within(declared.name, &entries, &Boundary::operator())
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
                // daprd's PostgreSQL store reads only keys of letters, digits, '.', '/' and '_'.
                let key = if matches!(clean_up, CleanUp::Table(_)) {
                    format!("key_{id}")
                } else {
                    format!("{}{id}", unique_prefix())
                };
                if let CleanUp::Table(table) = &clean_up {
                    let columns =
                        "KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON";
                    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
                    sqlx::query(&format!("CREATE TABLE {table} ({columns})")).execute(&pool).await.unwrap();
                    let insert = format!("INSERT INTO {table} VALUES ($1, 'blue', '7', NULL)");
                    sqlx::query(&insert).bind(&key).execute(&pool).await.unwrap();
                } else {
                    set_redis_string(&key, "blue||7").await;
                }
                let items = store.get(std::slice::from_ref(&key)).await.expect("read through the opened store");
                assert_eq!((items[&key].value.as_str(), items[&key].version.as_str()), ("blue", "7"));
            }
            BuildingBlock::SecretStores => {
                let boundary = Boundary::operator();
                let store = secrets::open(declared.name, &entries, HostSecrets::Allowed, &boundary)
                    .await
                    .unwrap_or_else(|err| panic!("{err}"));
                // The environment store reads this process's own variables.
                let (name, expected) = if declared.name.ends_with(".env") {
                    ("PATH".to_owned(), std::env::var("PATH").expect("PATH is set"))
                } else {
                    (id.clone(), "found".to_owned())
                };
                let secret = store.get(&name).await.expect("read through the opened store");
                assert_eq!(secret.get(&name), Some(&expected), "{}", declared.name);
            }
        }
        clean_up.run().await;
        opened.push(declared.name);
    }
    assert!(opened.len() >= 13, "only {opened:?} opened");
}

#[test]
fn declarations_follow_dapr() {
    let types = component_types();
    let cases = [
        ("state.redis", "redisHost", true, false),
        ("state.redis", "redisPassword", false, true),
        ("state.redis", "keyPrefix", false, false),
        ("state.redis", "actorStateStore", false, false),
        ("state.postgresql", "connectionString", true, true),
        ("state.postgresql", "cleanupInterval", false, false),
        ("state.sqlite", "connectionString", true, false),
        ("state.sqlite", "busyTimeout", false, false),
        ("pubsub.redis", "redisHost", true, false),
        ("pubsub.redis", "consumerID", false, false),
        ("pubsub.redis", "allowedTopics", false, false),
        ("pubsub.jetstream", "natsURL", true, false),
        ("pubsub.jetstream", "seedKey", false, true),
        ("pubsub.jetstream", "tls_client_key", false, true),
        ("secretstores.local.file", "secretsFile", true, false),
        ("secretstores.local.file", "multiValued", false, false),
        ("secretstores.local.env", "prefix", false, false),
        ("lock.redis", "redisHost", true, false),
        ("lock.redis", "redisPassword", false, true),
        ("lock.redis", "keyPrefix", false, false),
        ("configuration.redis", "redisHost", true, false),
        ("configuration.redis", "redisPassword", false, true),
        ("configuration.postgresql", "connectionString", true, true),
        ("configuration.postgresql", "table", true, false),
        ("configuration.postgres", "notifyChannel", false, false),
        ("bindings.http", "url", true, false),
        ("bindings.http", "securityToken", false, true),
        ("bindings.redis", "redisHost", true, false),
        ("bindings.redis", "direction", false, false),
        ("bindings.cron", "schedule", true, false),
        ("bindings.rabbitmq", "host", true, false),
        ("bindings.rabbitmq", "queueName", true, false),
        ("bindings.rabbitmq", "prefetchCount", false, false),
        ("bindings.mqtt3", "url", true, false),
        ("bindings.mqtt3", "topic", true, false),
        ("bindings.mqtt3", "backOffMaxRetries", false, false),
        ("bindings.cron", "route", false, false),
        ("bindings.postgresql", "connectionString", true, true),
        ("bindings.postgresql", "timeout", false, false),
        ("bindings.postgres", "connectionString", true, true),
        ("bindings.postgres", "route", false, false),
    ];
    for (type_name, field_name, required, sensitive) in cases {
        let field = types.lookup(type_name).unwrap().field(field_name);
        let field = field.unwrap_or_else(|| panic!("{type_name} lacks {field_name}"));
        assert_eq!((field.required, field.sensitive), (required, sensitive), "{type_name} {field_name}");
    }
    let defaults = [
        ("state.redis", "redisDB", Some("0")),
        ("lock.redis", "keyPrefix", Some("appid")),
        ("state.sqlite", "cleanupInterval", Some("1h")),
        ("pubsub.jetstream", "deliverPolicy", Some("all")),
        ("bindings.http", "errorIfNot2XX", Some("true")),
        ("bindings.mqtt3", "backOffMaxRetries", Some("0")),
        ("bindings.postgresql", "timeout", Some("20s")),
        ("secretstores.local.file", "nestedSeparator", Some(":")),
        ("state.redis", "redisHost", None),
        ("pubsub.redis", "processingTimeout", None),
    ];
    for (type_name, field_name, default) in defaults {
        let field = types.lookup(type_name).unwrap().field(field_name).unwrap();
        assert_eq!(field.default, default, "{type_name} {field_name}");
    }
    assert!(types.lookup("state.redis").unwrap().field("consumerID").is_none());
    assert!(types.lookup("pubsub.redis").unwrap().field("keyPrefix").is_none());
    for in_memory in ["state.in-memory", "pubsub.in-memory"] {
        assert!(types.lookup(in_memory).unwrap().fields().all(|field| !field.required), "{in_memory}");
    }
    for declared in types.types() {
        let mut seen = std::collections::BTreeSet::new();
        for field in declared.fields() {
            assert!(seen.insert(field.name), "{} lists {} twice", declared.name, field.name);
        }
    }
}

#[test]
fn users_create_all_but_the_managed_types() {
    let types = component_types();
    let supported: Vec<_> = types.supported_types().collect();
    assert_eq!(
        supported,
        [
            "bindings.cron",
            "bindings.http",
            "bindings.mqtt3",
            "bindings.postgres",
            "bindings.postgresql",
            "bindings.rabbitmq",
            "bindings.redis",
            "configuration.postgres",
            "configuration.postgresql",
            "configuration.redis",
            "lock.redis",
            "pubsub.in-memory",
            "pubsub.jetstream",
            "pubsub.redis",
            "secretstores.local.env",
            "secretstores.local.file",
            "state.in-memory",
            "state.postgresql",
            "state.redis",
            "state.sqlite",
        ]
    );
    let managed: Vec<_> = types.managed().map(|declared| (declared.managed_component, declared.name)).collect();
    let expected = [
        (Some("configstore"), "configuration.outrigger"),
        (Some("pubsub"), "pubsub.outrigger"),
        (Some("kvstore"), "state.outrigger"),
    ];
    assert_eq!(managed, expected);
}
