//! `outrigger apply`, the per-kind resource commands on what it applied, and `outrigger export`.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::{start, RunExt, Server};

/// A copy of the example shop's Dapr YAML directory, which tests may change.
fn shop_manifests() -> (tempfile::TempDir, PathBuf) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/fixtures/shop");
    let copy = tempfile::tempdir().expect("creating a directory");
    copy_dir(&source, copy.path());
    let path = copy.path().to_owned();
    (copy, path)
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("listing fixtures") {
        let entry = entry.expect("listing fixtures");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir(&target).expect("creating a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copying a fixture");
        }
    }
}

/// `(kind, name)` of each entry of one list of an apply answer, sorted.
fn outcome(applied: &Value, list: &str) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> = applied[list]
        .as_array()
        .unwrap_or_else(|| panic!("no {list} list in {applied}"))
        .iter()
        .map(|entry| {
            (
                entry["kind"].as_str().unwrap_or_default().to_owned(),
                entry["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    entries.sort();
    entries
}

fn entries(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut entries: Vec<(String, String)> =
        pairs.iter().map(|&(kind, name)| (kind.to_owned(), name.to_owned())).collect();
    entries.sort();
    entries
}

const SHOP: &[(&str, &str)] = &[
    ("AppIdentity", "orders"),
    ("AppIdentity", "checkout"),
    ("Component", "statestore"),
    ("Component", "orderpubsub"),
    ("Subscription", "order-placed"),
    ("Resiliency", "shop-resiliency"),
    ("Configuration", "appconfig"),
];

/// The names `outrigger <kind> list -o json` shows.
fn listed_names(server: &Server, project: &str, kind: &str) -> Vec<String> {
    let listed = server.outrigger([kind, "list", "-o", "json", "-p", project]).json();
    let items = listed["items"].as_array().unwrap_or_else(|| panic!("{listed}"));
    let name = |item: &Value| item["metadata"]["name"].as_str().or(item["name"].as_str()).map(str::to_owned);
    items.iter().filter_map(name).collect()
}

#[test]
fn apply_directory_dry_run_then_for_real_then_prune() {
    let (_data_dir, server) = start();
    let (_manifests, manifests) = shop_manifests();
    server.outrigger(["project", "create", "shop"]).succeeds();
    let apply = |extra: &[&str]| {
        let mut command = server.outrigger(["apply", "-p", "shop", "-f"]);
        command.arg(&manifests).args(extra);
        command
    };

    let planned = apply(&["--dry-run", "-o", "json"]).json();
    assert_eq!(planned["dryRun"], true);
    assert_eq!(outcome(&planned, "created"), entries(SHOP), "{planned}");
    assert!(listed_names(&server, "shop", "appid").is_empty(), "a dry run created App IDs");
    assert!(
        !listed_names(&server, "shop", "component").contains(&"statestore".to_owned()),
        "a dry run created a component"
    );

    let applied = apply(&[]).succeeds();
    let table: Vec<Vec<&str>> = applied.lines().map(|line| line.split_whitespace().collect()).collect();
    assert_eq!(table[0], ["ACTION", "KIND", "NAME"], "{applied}");
    for &(kind, name) in SHOP {
        assert!(table.contains(&vec!["created", kind, name]), "{kind} {name} not created:\n{applied}");
    }
    // Each App ID created by the apply gets its one-time token and environment printed.
    let token_lines: Vec<&str> = applied.lines().filter(|line| line.starts_with("DAPR_API_TOKEN=")).collect();
    assert_eq!(token_lines.len(), 2, "{applied}");
    assert_ne!(token_lines[0], token_lines[1]);

    let mut app_ids = listed_names(&server, "shop", "appid");
    app_ids.sort();
    assert_eq!(app_ids, ["checkout", "orders"]);
    let components = listed_names(&server, "shop", "component");
    assert!(
        components.contains(&"statestore".to_owned()) && components.contains(&"orderpubsub".to_owned()),
        "{components:?}"
    );
    assert_eq!(listed_names(&server, "shop", "subscription"), ["order-placed"]);
    assert_eq!(listed_names(&server, "shop", "resiliency"), ["shop-resiliency"]);
    assert_eq!(listed_names(&server, "shop", "configuration"), ["appconfig"]);
    assert!(listed_names(&server, "shop", "httpendpoint").is_empty());

    let statestore = server.outrigger(["component", "get", "statestore", "-p", "shop"]).succeeds();
    let statestore: serde_yaml::Value = serde_yaml::from_str(&statestore).expect("component get prints YAML");
    assert_eq!(statestore["spec"]["type"].as_str(), Some("state.redis"), "{statestore:?}");
    let subscription = server.outrigger(["subscription", "get", "order-placed", "-p", "shop", "-o", "json"]).json();
    assert_eq!(subscription["apiVersion"], "dapr.io/v2alpha1");
    assert_eq!(subscription["spec"]["routes"]["default"], "/orders");
    assert_eq!(subscription["scopes"], serde_json::json!(["orders"]));
    let subscriptions = server.outrigger(["subscription", "list", "-p", "shop"]).succeeds();
    let row: Vec<&str> = subscriptions.lines().nth(1).expect("a row").split_whitespace().collect();
    assert_eq!(row, ["order-placed", "orderpubsub", "orders", "dapr.io/v2alpha1", "orders"], "{subscriptions}");

    let again = apply(&["-o", "json"]).json();
    assert_eq!(outcome(&again, "unchanged"), entries(SHOP), "{again}");
    assert!(outcome(&again, "created").is_empty() && outcome(&again, "updated").is_empty(), "{again}");

    // Changing one document updates only it. Dropping one leaves it in place unless --prune,
    // which deletes what the input does not name among the kinds it applies (here Component).
    let configuration = manifests.join("06-configuration.yaml");
    let changed = std::fs::read_to_string(&configuration)
        .expect("reading")
        .replace("samplingRate: \"1\"", "samplingRate: \"0.5\"");
    std::fs::write(&configuration, changed).expect("writing");
    std::fs::remove_file(manifests.join("02-statestore.yaml")).expect("removing");
    let changed = apply(&["-o", "json"]).json();
    assert_eq!(outcome(&changed, "updated"), entries(&[("Configuration", "appconfig")]), "{changed}");
    assert!(outcome(&changed, "deleted").is_empty(), "{changed}");
    let statestore = "statestore".to_owned();
    assert!(listed_names(&server, "shop", "component").contains(&statestore));

    let pruned_dry = apply(&["--prune", "--dry-run", "-o", "json"]).json();
    assert_eq!(outcome(&pruned_dry, "deleted"), entries(&[("Component", "statestore")]), "{pruned_dry}");
    assert!(listed_names(&server, "shop", "component").contains(&statestore), "a dry run pruned");
    let pruned = apply(&["--prune"]).succeeds();
    assert!(pruned.lines().any(|line| line.split_whitespace().eq(["deleted", "Component", "statestore"])), "{pruned}");
    assert!(!listed_names(&server, "shop", "component").contains(&statestore));
    assert_eq!(
        listed_names(&server, "shop", "resiliency"),
        ["shop-resiliency"],
        "pruned a kind the input does not apply"
    );

    let error = server.outrigger(["component", "delete", "statestore", "-p", "shop"]).fails();
    assert!(error.contains("404"), "{error}");
    server.outrigger(["subscription", "delete", "order-placed", "-p", "shop"]).succeeds();
    assert!(listed_names(&server, "shop", "subscription").is_empty());
}

#[test]
fn export_reapplied_into_a_fresh_project_exports_the_same() {
    let (_data_dir, server) = start();
    let (_manifests, manifests) = shop_manifests();
    let exports = tempfile::tempdir().expect("creating a directory");
    for project in ["source", "copy"] {
        server.outrigger(["project", "create", project]).succeeds();
    }
    server.outrigger(["apply", "-p", "source", "-f"]).arg(&manifests).succeeds();

    let into = exports.path().join("new-dir");
    let said = server.outrigger(["export", "-p", "source", "-o"]).arg(&into).succeeds();
    let exported_file = into.join("source.yaml");
    assert!(said.contains(&exported_file.display().to_string()), "{said}");
    let exported = std::fs::read_to_string(&exported_file).expect("reading the export");
    let documents: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&exported)
        .map(|document| serde::Deserialize::deserialize(document).expect("export is YAML"))
        .collect();
    let mut kinds: Vec<(&str, &str)> = documents
        .iter()
        .map(|document| {
            (document["kind"].as_str().unwrap_or_default(), document["metadata"]["name"].as_str().unwrap_or_default())
        })
        .collect();
    kinds.sort_unstable();
    let mut expected = SHOP.to_vec();
    expected.sort_unstable();
    assert_eq!(kinds, expected, "{exported}");

    let applied = server.outrigger(["apply", "-p", "copy", "-o", "json", "-f"]).arg(&exported_file).json();
    assert_eq!(outcome(&applied, "created"), entries(SHOP), "{applied}");
    let exported_again = server.outrigger(["export", "-p", "copy"]).succeeds();
    assert_eq!(exported_again, exported);
}
