//! Configuration stores against their real backends: `configuration.redis` reads daprd's `value||version`
//! strings and hears keyspace notifications; the managed `configstore` reads the control-plane database and
//! hears the project's change events, and no other project's.

use std::sync::Arc;
use std::time::Duration;

use outrigger_bus::ConfigurationItem;
use outrigger_store::{NewProject, Store};
use outrigger_workers::configuration::{self, ConfigurationStore, ManagedConfigurationStore};
use outrigger_workers::Boundary;

use crate::backends::{delete_redis_keys, redis_metadata, redis_url, set_redis_string, unique_prefix};

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

    let mut listener = store.listen(std::slice::from_ref(&color)).await.unwrap();
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

    let mut listener = store.listen(&[]).await.unwrap();
    changes.send(Arc::from(rival.id.as_str())).unwrap();
    let heard = tokio::time::timeout(Duration::from_millis(200), listener.changed()).await;
    assert!(heard.is_err(), "another project's change was heard");
    changes.send(Arc::from(shop.id.as_str())).unwrap();
    tokio::time::timeout(HEARD_WITHIN, listener.changed()).await.expect("the project's change was heard").unwrap();
}
