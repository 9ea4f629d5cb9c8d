//! Configuration stores against their real backends: `configuration.redis` reads daprd's `value||version`
//! strings and hears keyspace notifications; `configuration.postgresql` reads daprd's table and hears its trigger's
//! notifications; the managed `configstore` reads the control-plane database and
//! hears the project's change events, and no other project's.

use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::ConfigurationItem;
use outrigger_store::{NewProject, Store};
use outrigger_workers::configuration::{self, ConfigurationStore, ManagedConfigurationStore};
use outrigger_workers::Boundary;

use crate::backends::{
    delete_redis_keys, drop_table, fresh_table_name, metadata, postgres_url, redis_metadata, redis_url,
    set_redis_string, unique_prefix,
};

/// Long enough for any change to be heard on a loaded machine; a listener that hears nothing fails by then.
const HEARD_WITHIN: Duration = Duration::from_secs(10);

fn item(value: &str, version: &str) -> ConfigurationItem {
    ConfigurationItem { value: value.into(), version: version.into(), metadata: Default::default() }
}

#[tokio::test]
async fn redis_items_are_daprds_strings_and_changes_are_heard() {
    let redis = ::redis::Client::open(redis_url().as_str()).unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    // daprd's Redis configuration store needs keyspace notifications on, as its docs tell operators.
    ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KA")
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
    let store =
        configuration::open_within("configuration.redis", &redis_metadata(), &Boundary::operator()).await.unwrap();
    let prefix = unique_prefix();
    let (color, size, missing) = (format!("{prefix}color"), format!("{prefix}size"), format!("{prefix}missing"));
    set_redis_string(&color, "blue||3").await;
    set_redis_string(&size, "large").await;
    let keys = vec![color.clone(), size.clone(), missing.clone()];
    let items = store.get(&keys).await.unwrap();
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items[&color], item("blue", "3"));
    assert_eq!(items[&size], item("large", ""));
    let all = store.get(&[]).await.unwrap();
    assert!(all.contains_key(&color) && all.contains_key(&size), "every key is read when none is named");

    let mut listener = store.listen(std::slice::from_ref(&color), &Default::default()).await.unwrap();
    set_redis_string(&size, "small").await;
    set_redis_string(&color, "green||4").await;
    tokio::time::timeout(HEARD_WITHIN, listener.changed()).await.expect("the change was heard").unwrap();
    assert_eq!(store.get(std::slice::from_ref(&color)).await.unwrap()[&color], item("green", "4"));
    delete_redis_keys(redis_url().as_str(), &format!("{prefix}*")).await;
}

#[tokio::test]
async fn the_managed_store_reads_the_project_and_hears_only_its_changes() {
    let dir = tempfile::tempdir().unwrap();
    let control =
        Store::connect(&format!("sqlite://{}?mode=rwc", dir.path().join("control.db").display())).await.unwrap();
    control.migrate().await.unwrap();
    let mut tx = control.begin().await.unwrap();
    let project = |name: &str| NewProject {
        org_id: outrigger_store::OrgId::default_org(),
        name: name.into(),
        managed_kvstore: true,
        managed_pubsub: true,
        pool: "default".into(),
    };
    let (shop, rival) =
        (tx.create_project(&project("shop")).await.unwrap(), tx.create_project(&project("rival")).await.unwrap());
    let metadata = [("owner".to_owned(), "team-a".to_owned())].into();
    tx.set_configuration_item(&shop.id, "color", "blue", &metadata).await.unwrap();
    tx.set_configuration_item(&shop.id, "color", "green", &metadata).await.unwrap();
    tx.set_configuration_item(&rival.id, "color", "red", &Default::default()).await.unwrap();
    tx.commit().await.unwrap();

    let changes = tokio::sync::broadcast::channel(16).0;
    let store = ManagedConfigurationStore::new(control.clone(), shop.id.clone(), changes.clone());
    let items = store.get(&["color".to_owned(), "size".to_owned()]).await.unwrap();
    let expected = ConfigurationItem { value: "green".into(), version: "2".into(), metadata };
    assert_eq!(items.into_iter().collect::<Vec<_>>(), [("color".to_owned(), expected)]);

    let mut listener = store.listen(&[], &Default::default()).await.unwrap();
    changes.send(Arc::from(rival.id.as_str())).unwrap();
    let heard = tokio::time::timeout(Duration::from_millis(200), listener.changed()).await;
    assert!(heard.is_err(), "another project's change was heard");
    changes.send(Arc::from(shop.id.as_str())).unwrap();
    tokio::time::timeout(HEARD_WITHIN, listener.changed()).await.expect("the project's change was heard").unwrap();
}

/// A configuration table as daprd's conformance tests make it, with the trigger daprd's docs give: each change
/// notifies `channel` with the row under `data`.
async fn configuration_table(table: &str, channel: &str) -> sqlx::PgPool {
    let pool = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let statements = [
        format!("CREATE TABLE {table} (KEY VARCHAR NOT NULL, VALUE VARCHAR NOT NULL, VERSION VARCHAR NOT NULL, METADATA JSON)"),
        format!(
            "CREATE FUNCTION notify_{table}() RETURNS TRIGGER AS $$ DECLARE row RECORD; BEGIN \
             IF (TG_OP = 'DELETE') THEN row = OLD; ELSE row = NEW; END IF; \
             PERFORM pg_notify('{channel}', json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', \
             row_to_json(row))::text); RETURN NULL; END; $$ LANGUAGE plpgsql"
        ),
        format!(
            "CREATE TRIGGER {table}_changed AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW \
             EXECUTE PROCEDURE notify_{table}()"
        ),
    ];
    for statement in statements {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool
}

#[tokio::test]
async fn postgres_items_are_daprds_rows_and_changes_are_heard_through_the_trigger() {
    let (table, channel) = (fresh_table_name(), format!("config_{}", uuid::Uuid::new_v4().simple()));
    let pool = configuration_table(&table, &channel).await;
    let insert = format!("INSERT INTO {table} VALUES ($1, $2, $3, $4::json)");
    for (key, value, version, metadata) in
        [("color", "blue", "1", r#"{"owner":"team-a"}"#), ("color", "navy", "2", "{}"), ("size", "large", "1", "null")]
    {
        sqlx::query(&insert).bind(key).bind(value).bind(version).bind(metadata).execute(&pool).await.unwrap();
    }
    let entries = metadata(&[("connectionString", &postgres_url()), ("table", &table)]);
    let store = configuration::open_within("configuration.postgres", &entries, &Boundary::operator()).await.unwrap();
    let items = store.get(&["color".to_owned(), "missing".to_owned()]).await.unwrap();
    assert_eq!(
        items.into_iter().collect::<Vec<_>>(),
        [("color".to_owned(), item("navy", "2"))],
        "the highest version wins"
    );
    let all = store.get(&[]).await.unwrap();
    assert_eq!(all.keys().collect::<Vec<_>>(), ["color", "size"]);
    let invalid = store.get(&["a-b".to_owned()]).await.unwrap_err();
    assert_eq!(invalid.to_string(), "invalid key : 'a-b'");

    // Without a channel in the component, the subscription names it; without either, it is refused.
    let refused = store.listen(&[], &Default::default()).await.err().expect("no channel");
    assert!(refused.to_string().contains("notifyChannel must be set"), "{refused}");
    let named = [("pgNotifyChannel".to_owned(), channel.clone())].into();
    let mut listener = store.listen(&["size".to_owned()], &named).await.unwrap();
    sqlx::query(&format!("UPDATE {table} SET VALUE = 'blue' WHERE KEY = 'color'")).execute(&pool).await.unwrap();
    sqlx::query(&format!("UPDATE {table} SET VALUE = 'small', VERSION = '2' WHERE KEY = 'size'"))
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::timeout(HEARD_WITHIN, listener.changed()).await.expect("the change was heard").unwrap();
    assert_eq!(store.get(&["size".to_owned()]).await.unwrap()["size"], item("small", "2"));

    let missing = metadata(&[("connectionString", &postgres_url()), ("table", "no_such_table")]);
    let absent = configuration::open_within("configuration.postgresql", &missing, &Boundary::operator()).await.unwrap();
    let err = absent.get(&[]).await.unwrap_err();
    assert_eq!(err.to_string(), "postgreSQL configuration table 'no_such_table' does not exist");
    let bad = metadata(&[("connectionString", &postgres_url()), ("table", "Config")]);
    assert!(configuration::open_within("configuration.postgresql", &bad, &Boundary::operator()).await.is_err());

    drop_table(&postgres_url(), &table).await;
    sqlx::query(&format!("DROP FUNCTION notify_{table}")).execute(&pool).await.unwrap();
}
