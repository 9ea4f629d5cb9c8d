//! Security group: a tenant's components open only what [`Boundary`] allows — files inside the project's own
//! directory (links out refused), hosts the egress rule accepts, connected at the address it judged.

use outrigger_outbound::{Egress, EgressRule, PlatformService, PrivateAddresses};
use outrigger_workers::secrets::{self, HostSecrets};
use outrigger_workers::{bindings, pubsub, state, Boundary};
use tempfile::TempDir;

use crate::backends::{metadata, put};

fn tenant(rule: EgressRule) -> (TempDir, Boundary) {
    let dir = tempfile::tempdir().unwrap();
    let boundary = Boundary::tenant(Egress::new(rule), dir.path().join("projects").join("prj_test"));
    (dir, boundary)
}

fn platform_redis() -> EgressRule {
    EgressRule { platform: vec![PlatformService::at("127.0.0.1:6379".parse().unwrap())], ..EgressRule::default() }
}

#[tokio::test]
async fn security_files_stay_inside_the_project_directory_even_through_links() {
    let (dir, boundary) = tenant(EgressRule::default());
    let outside = tempfile::tempdir().unwrap();
    let project_dir = dir.path().join("projects").join("prj_test");
    std::fs::create_dir_all(&project_dir).unwrap();
    std::os::unix::fs::symlink(outside.path(), project_dir.join("escape")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("target.db"), project_dir.join("link.db")).unwrap();
    for path in ["escape/x.db", "link.db", "/tmp/x.db", "../x.db"] {
        let entries = metadata(&[("connectionString", path)]);
        let Err(err) = state::open_within("state.sqlite", &entries, &boundary).await else {
            panic!("{path} opened");
        };
        assert!(err.to_string().contains("connectionString"), "{path}: {err}");
    }
    assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0, "nothing was created outside");

    let store = state::open_within("state.sqlite", &metadata(&[("connectionString", "nested/own.db")]), &boundary)
        .await
        .expect("a relative name opens");
    store.set(&put("k", "v")).await.unwrap();
    assert!(project_dir.join("nested/own.db").exists());

    let secrets_file = outside.path().join("secrets.json");
    std::fs::write(&secrets_file, r#"{"a": "b"}"#).unwrap();
    let entries = metadata(&[("secretsFile", secrets_file.to_str().unwrap())]);
    let Err(err) = secrets::open("secretstores.local.file", &entries, HostSecrets::Allowed, &boundary).await else {
        panic!("an absolute secrets file opened");
    };
    assert!(err.to_string().contains("secretsFile"), "{err}");
}

#[tokio::test]
async fn security_components_cannot_dial_the_platforms_own_services() {
    let (_dir, boundary) = tenant(platform_redis());
    for host in ["127.0.0.1:6379", "localhost:6379", "127.0.0.1", "[::ffff:127.0.0.1]:6379"] {
        let entries = metadata(&[("redisHost", host)]);
        let Err(err) = state::open_within("state.redis", &entries, &boundary).await else { panic!("{host} opened") };
        assert!(err.to_string().contains("own services"), "{host}: {err}");
        let Err(err) = pubsub::open_within("pubsub.redis", &entries, &boundary).await else { panic!("{host} opened") };
        assert!(err.to_string().contains("own services"), "{host}: {err}");
        let Err(err) = bindings::open_within("bindings.redis", &entries, &boundary).await else {
            panic!("{host} opened")
        };
        assert!(err.to_string().contains("own services"), "{host}: {err}");
    }
    for host in ["127.0.0.1:6379", "localhost:6379", "[::ffff:127.0.0.1]:6379"] {
        let brokers = [
            ("bindings.rabbitmq", metadata(&[("host", &format!("amqp://{host}")), ("queueName", "q")])),
            ("bindings.mqtt3", metadata(&[("url", &format!("mqtt://{host}")), ("topic", "t")])),
        ];
        for (component_type, entries) in brokers {
            let Err(err) = bindings::open_input_within(component_type, &entries, &boundary).await else {
                panic!("{component_type} opened {host}")
            };
            assert!(err.to_string().contains("own services"), "{component_type} {host}: {err}");
        }
    }
    for url in ["http://127.0.0.1:6379/", "http://localhost:6379/x", "http://[::ffff:127.0.0.1]:6379"] {
        let entries = metadata(&[("url", url)]);
        let Err(err) = bindings::open_within("bindings.http", &entries, &boundary).await else {
            panic!("{url} opened")
        };
        assert!(err.to_string().contains("own services"), "{url}: {err}");
    }
    let (_dir, refusing) = tenant(EgressRule { private: PrivateAddresses::Refused, ..EgressRule::default() });
    let entries = metadata(&[("natsURL", "nats://10.1.2.3:4222,nats://127.0.0.1:4222")]);
    let Err(err) = pubsub::open_within("pubsub.jetstream", &entries, &refusing).await else { panic!("NATS opened") };
    assert!(err.to_string().contains("private"), "{err}");
    let entries = metadata(&[("connectionString", "host=/var/run/postgresql user=postgres")]);
    let Err(err) = state::open_within("state.postgresql", &entries, &boundary).await else { panic!("socket opened") };
    assert!(err.to_string().contains("Unix sockets"), "{err}");
}

#[tokio::test]
async fn security_allowed_hosts_are_reached_at_the_address_judged() {
    // Redis on this machine is not the platform's in this rule: the tenant's store works, pinned to 127.0.0.1.
    let (_dir, boundary) = tenant(EgressRule::default());
    let store = state::open_within("state.redis", &metadata(&[("redisHost", "localhost:6379")]), &boundary)
        .await
        .expect("an allowed host opens");
    let key = format!("security-boundary-{}", uuid::Uuid::new_v4());
    store.set(&put(&key, "v")).await.expect("the pinned address serves");
    assert_eq!(store.get(&key).await.unwrap().map(|item| item.value), Some(b"v".to_vec()));
}

#[tokio::test]
async fn security_sql_bindings_cannot_reach_the_platforms_database() {
    let platform = PlatformService::at("127.0.0.1:5432".parse().unwrap());
    let (_dir, boundary) = tenant(EgressRule { platform: vec![platform], ..EgressRule::default() });
    let reaching = [
        "postgres://postgres@127.0.0.1:5432/postgres",
        "postgresql://postgres@localhost/postgres",
        "host=127.0.0.1 user=postgres",
        "host=localhost port=5432 dbname=postgres",
        "postgres://x@elsewhere.invalid/db?host=127.0.0.1",
    ];
    for component_type in ["bindings.postgresql", "bindings.postgres"] {
        for connection_string in reaching {
            let entries = metadata(&[("connectionString", connection_string)]);
            let Err(err) = bindings::open_within(component_type, &entries, &boundary).await else {
                panic!("{component_type} opened {connection_string}")
            };
            assert!(err.to_string().contains("own services"), "{connection_string}: {err}");
        }
        let entries = metadata(&[("connectionString", "host=/var/run/postgresql user=postgres")]);
        let Err(err) = bindings::open_within(component_type, &entries, &boundary).await else {
            panic!("socket opened")
        };
        assert!(err.to_string().contains("Unix sockets"), "{err}");
    }
}
