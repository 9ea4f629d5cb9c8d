//! `outrigger project ...`

use crate::harness::{start, RunExt};

#[test]
fn project_create_list_get_delete() {
    let (_data_dir, server) = start();

    let created = server.outrigger(["project", "create", "shop"]).succeeds();
    let mut lines = created.lines();
    let header = lines.next().expect("a header row");
    assert!(header.starts_with("NAME") && header.contains("DAPR HTTP ENDPOINT"), "{created}");
    assert!(lines.next().expect("a project row").starts_with("shop "), "{created}");
    assert!(created.contains("outrigger appid create APP_NAME --project shop"), "next steps missing:\n{created}");

    server.outrigger(["project", "create", "bare", "--no-managed-kvstore", "--no-managed-pubsub"]).succeeds();

    let listed = server.outrigger(["project", "list"]).succeeds();
    let names: Vec<&str> = listed.lines().skip(1).filter_map(|row| row.split_whitespace().next()).collect();
    assert!(names.contains(&"shop") && names.contains(&"bare"), "{listed}");

    let listed = server.outrigger(["project", "list", "-o", "json"]).json();
    let items = listed["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{listed}");

    let shop = server.outrigger(["project", "get", "shop", "-o", "json"]).json();
    assert_eq!(shop["name"], "shop");
    assert!(shop["httpEndpoint"].as_str().is_some_and(|endpoint| !endpoint.is_empty()), "{shop}");
    assert!(shop["grpcEndpoint"].as_str().is_some_and(|endpoint| !endpoint.is_empty()), "{shop}");
    let managed: Vec<&str> = shop["managedComponents"]
        .as_array()
        .expect("managedComponents")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(managed, ["configstore", "kvstore", "pubsub"], "{shop}");

    let bare = server.outrigger(["project", "get", "bare", "-o", "yaml"]).succeeds();
    let bare: serde_yaml::Value = serde_yaml::from_str(&bare).expect("YAML output");
    assert_eq!(bare["name"].as_str(), Some("bare"));
    let managed = bare["managedComponents"].as_sequence().expect("managedComponents");
    assert_eq!(managed.len(), 1, "only the managed configuration store: {bare:?}");
    assert_eq!(managed[0]["name"].as_str(), Some("configstore"));

    // Columns line up: each value starts where its header does.
    let table = server.outrigger(["project", "get", "shop"]).succeeds();
    let [header, row] = table.lines().collect::<Vec<_>>()[..] else { panic!("one header and one row:\n{table}") };
    for (title, value) in [("DAPR HTTP ENDPOINT", &shop["httpEndpoint"]), ("DAPR GRPC ENDPOINT", &shop["grpcEndpoint"])]
    {
        let column = header.find(title).expect("column title");
        assert!(row[column..].starts_with(value.as_str().expect("endpoint")), "{title} misaligned:\n{table}");
    }
    assert!(row.contains("kvstore (state.outrigger), pubsub (pubsub.outrigger)"), "{table}");

    let deleted = server.outrigger(["project", "delete", "shop"]).succeeds();
    assert!(deleted.contains("shop"), "{deleted}");
    let error = server.outrigger(["project", "get", "shop"]).fails();
    assert!(error.contains("404"), "{error}");
    let listed = server.outrigger(["project", "list", "-o", "json"]).json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1), "{listed}");
}
