//! Dapr's state store conformance cases, each written once and run against every backend.

use std::time::{Duration, Instant};

use outrigger_workers::state::{SetRequest, StateError, TransactionOperation};

use crate::backends::{put, put_first, put_if, remove, remove_if, Harness};

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

fn upsert(request: SetRequest) -> TransactionOperation {
    TransactionOperation::Upsert(request)
}

fn delete(key: &str) -> TransactionOperation {
    TransactionOperation::Delete(remove(key))
}

async fn value_of(h: &Harness, key: &str) -> Option<String> {
    h.store.get(key).await.expect("get").map(|item| String::from_utf8(item.value).expect("UTF-8 value"))
}

async fn features_are_as_documented(h: Harness) {
    assert_eq!(h.store.features(), h.features);
    h.store.ping().await.expect("ping");
}

async fn set_get_delete(h: Harness) {
    let key = h.key("greeting");
    let etag = h.store.set(&put(&key, "hello")).await.expect("set");
    let item = h.store.get(&key).await.expect("get").expect("the item just written");
    assert_eq!(item.value, b"hello");
    assert_eq!(item.etag, etag);
    assert_eq!(item.expires_at, None);
    h.store.delete(&remove(&key)).await.expect("delete");
    assert_eq!(h.store.get(&key).await.expect("get"), None);
}

async fn get_of_missing_key_is_none(h: Harness) {
    assert_eq!(h.store.get(&h.key("never-written")).await.expect("get"), None);
}

async fn values_are_stored_byte_for_byte(h: Harness) {
    let key = h.key("binary");
    let value = vec![0, 255, 10, 13, 0x80, b'"', b'\\'];
    h.store.set(&SetRequest { value: value.clone(), ..put(&key, "") }).await.expect("set");
    assert_eq!(h.store.get(&key).await.expect("get").expect("item").value, value);
}

async fn bulk_get_answers_each_key_in_order(h: Harness) {
    let keys: Vec<String> = ["a", "b", "c"].iter().map(|name| h.key(name)).collect();
    for (key, value) in keys.iter().zip(["1", "2", "3"]) {
        h.store.set(&put(key, value)).await.expect("set");
    }
    let asked = vec![keys[2].clone(), h.key("missing"), keys[0].clone(), keys[1].clone()];
    let answers: Vec<Option<Vec<u8>>> = h
        .store
        .bulk_get(&asked)
        .await
        .into_iter()
        .map(|answer| answer.expect("bulk get").map(|item| item.value))
        .collect();
    assert_eq!(answers, [Some(b"3".to_vec()), None, Some(b"1".to_vec()), Some(b"2".to_vec())]);
}

async fn transaction_applies_upserts_and_deletes(h: Harness) {
    let (kept, removed, added) = (h.key("kept"), h.key("removed"), h.key("added"));
    h.store.set(&put(&kept, "old")).await.expect("set");
    h.store.set(&put(&removed, "doomed")).await.expect("set");
    h.store
        .transact(&[upsert(put(&kept, "new")), delete(&removed), upsert(put(&added, "fresh"))])
        .await
        .expect("transaction");
    assert_eq!(value_of(&h, &kept).await.as_deref(), Some("new"));
    assert_eq!(value_of(&h, &removed).await, None);
    assert_eq!(value_of(&h, &added).await.as_deref(), Some("fresh"));
}

async fn transaction_applies_operations_in_order(h: Harness) {
    let (existing, passing, revived) = (h.key("existing"), h.key("passing"), h.key("revived"));
    h.store.set(&put(&existing, "here")).await.expect("set");
    h.store.set(&put(&revived, "before")).await.expect("set");
    h.store
        .transact(&[
            delete(&existing),
            upsert(put(&passing, "briefly")),
            delete(&passing),
            delete(&revived),
            upsert(put(&revived, "after")),
        ])
        .await
        .expect("transaction");
    assert_eq!(value_of(&h, &existing).await, None);
    assert_eq!(value_of(&h, &passing).await, None, "upsert then delete leaves the key absent");
    assert_eq!(value_of(&h, &revived).await.as_deref(), Some("after"), "delete then upsert leaves the key present");
}

async fn transaction_with_one_bad_etag_changes_nothing(h: Harness) {
    let (first, guarded, third) = (h.key("first"), h.key("guarded"), h.key("third"));
    h.store.set(&put(&first, "1")).await.expect("set");
    let guarded_etag = h.store.set(&put(&guarded, "2")).await.expect("set");
    let result = h
        .store
        .transact(&[
            upsert(put(&first, "changed")),
            delete(&third),
            upsert(put_if(&guarded, "changed", &h.unused_etag)),
            upsert(put(&third, "new")),
        ])
        .await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &first).await.as_deref(), Some("1"));
    assert_eq!(value_of(&h, &third).await, None);
    let guarded_item = h.store.get(&guarded).await.expect("get").expect("item");
    assert_eq!((guarded_item.value, guarded_item.etag), (b"2".to_vec(), guarded_etag));
}

async fn transaction_with_malformed_etag_changes_nothing(h: Harness) {
    let key = h.key("untouched");
    let result = h.store.transact(&[upsert(put(&key, "v")), delete(&h.key("other"))]).await;
    result.expect("a well-formed transaction");
    let result = h
        .store
        .transact(&[upsert(put(&key, "changed")), TransactionOperation::Delete(remove_if(&key, "!not an etag!"))])
        .await;
    assert!(matches!(result, Err(StateError::EtagInvalid(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v"));
}

async fn transaction_deletes_missing_key(h: Harness) {
    let written = h.key("written");
    h.store.transact(&[delete(&h.key("absent")), upsert(put(&written, "v"))]).await.expect("transaction");
    assert_eq!(value_of(&h, &written).await.as_deref(), Some("v"));
}

async fn transaction_checks_see_earlier_operations(h: Harness) {
    let key = h.key("recreated");
    h.store.set(&put(&key, "old")).await.expect("set");
    h.store
        .transact(&[delete(&key), upsert(put_first(&key, "new", None))])
        .await
        .expect("first-write after a delete in the same transaction finds the key absent");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("new"));

    let fresh = h.key("fresh");
    let result = h.store.transact(&[upsert(put(&fresh, "one")), upsert(put_first(&fresh, "two", None))]).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &fresh).await, None, "the refused transaction left nothing behind");
}

async fn transaction_upsert_sets_ttl(h: Harness) {
    let key = h.key("expiring");
    h.store.transact(&[upsert(SetRequest { ttl_seconds: Some(60), ..put(&key, "v") })]).await.expect("transaction");
    let expires_at = h.store.get(&key).await.expect("get").expect("item").expires_at.expect("an expiry");
    assert!((now_ms() + 55_000..=now_ms() + 60_000).contains(&expires_at), "expires at {expires_at}");
}

async fn every_write_returns_a_new_etag(h: Harness) {
    let key = h.key("versioned");
    let first = h.store.set(&put(&key, "1")).await.expect("set");
    let second = h.store.set(&put(&key, "2")).await.expect("set");
    let third = h.store.set(&put_if(&key, "3", &second)).await.expect("set");
    assert!(!first.is_empty());
    assert!(first != second && second != third && first != third, "{first} {second} {third}");
    assert_eq!(h.store.get(&key).await.expect("get").expect("item").etag, third);
}

async fn set_with_wrong_etag_is_a_mismatch(h: Harness) {
    let key = h.key("guarded");
    let etag = h.store.set(&put(&key, "original")).await.expect("set");
    let result = h.store.set(&put_if(&key, "intruder", &h.unused_etag)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    let item = h.store.get(&key).await.expect("get").expect("item");
    assert_eq!((item.value, item.etag), (b"original".to_vec(), etag));
}

async fn set_with_current_etag_succeeds_and_changes_the_etag(h: Harness) {
    let key = h.key("guarded");
    let etag = h.store.set(&put(&key, "original")).await.expect("set");
    let new_etag = h.store.set(&put_if(&key, "updated", &etag)).await.expect("set with the current ETag");
    assert_ne!(new_etag, etag);
    let item = h.store.get(&key).await.expect("get").expect("item");
    assert_eq!((item.value, item.etag), (b"updated".to_vec(), new_etag));
}

async fn set_with_stale_etag_is_a_mismatch(h: Harness) {
    let key = h.key("contended");
    let stale = h.store.set(&put(&key, "v1")).await.expect("set");
    h.store.set(&put(&key, "v2")).await.expect("another writer");
    let result = h.store.set(&put_if(&key, "v3", &stale)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v2"));
}

async fn set_with_etag_on_missing_key_is_a_mismatch(h: Harness) {
    let key = h.key("absent");
    let result = h.store.set(&put_if(&key, "v", &h.unused_etag)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await, None);
}

async fn malformed_etag_is_invalid(h: Harness) {
    let key = h.key("guarded");
    h.store.set(&put(&key, "v")).await.expect("set");
    let result = h.store.set(&put_if(&key, "changed", "!not an etag!")).await;
    assert!(matches!(result, Err(StateError::EtagInvalid(_))), "{result:?}");
    let result = h.store.delete(&remove_if(&key, "!not an etag!")).await;
    assert!(matches!(result, Err(StateError::EtagInvalid(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v"));
}

async fn empty_etag_counts_as_none(h: Harness) {
    let key = h.key("unguarded");
    h.store.set(&put(&key, "v1")).await.expect("set");
    h.store.set(&put_if(&key, "v2", "")).await.expect("an empty ETag is no ETag");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v2"));
    h.store.delete(&remove_if(&key, "")).await.expect("an empty ETag is no ETag");
    assert_eq!(value_of(&h, &key).await, None);
}

async fn delete_with_wrong_etag_is_a_mismatch_and_keeps_the_item(h: Harness) {
    let key = h.key("guarded");
    h.store.set(&put(&key, "v")).await.expect("set");
    let result = h.store.delete(&remove_if(&key, &h.unused_etag)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v"));
}

async fn delete_with_current_etag_removes_the_item(h: Harness) {
    let key = h.key("guarded");
    let etag = h.store.set(&put(&key, "v")).await.expect("set");
    h.store.delete(&remove_if(&key, &etag)).await.expect("delete with the current ETag");
    assert_eq!(value_of(&h, &key).await, None);
}

async fn delete_of_missing_key(h: Harness) {
    let key = h.key("absent");
    h.store.delete(&remove(&key)).await.expect("deleting a missing key without an ETag succeeds");
    let result = h.store.delete(&remove_if(&key, &h.unused_etag)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
}

async fn first_write_refuses_a_second_write_without_etag(h: Harness) {
    let key = h.key("claimed");
    h.store.set(&put_first(&key, "first", None)).await.expect("the first write of a key succeeds");
    let result = h.store.set(&put_first(&key, "second", None)).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("first"));
}

async fn first_write_accepts_the_current_etag_and_refuses_a_stale_one(h: Harness) {
    let key = h.key("claimed");
    let first = h.store.set(&put_first(&key, "v1", None)).await.expect("set");
    let second = h.store.set(&put_first(&key, "v2", Some(&first))).await.expect("first-write with the current ETag");
    let result = h.store.set(&put_first(&key, "v3", Some(&first))).await;
    assert!(matches!(result, Err(StateError::EtagMismatch(_))), "{result:?}");
    let item = h.store.get(&key).await.expect("get").expect("item");
    assert_eq!((item.value, item.etag), (b"v2".to_vec(), second));
}

async fn first_write_after_delete_succeeds(h: Harness) {
    let key = h.key("reclaimed");
    h.store.set(&put_first(&key, "v1", None)).await.expect("set");
    h.store.delete(&remove(&key)).await.expect("delete");
    h.store.set(&put_first(&key, "v2", None)).await.expect("the key is free again");
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v2"));
}

/// Sends the writes at once and counts the ones that succeeded; the others must be ETag mismatches.
async fn successes_of_racing(h: &Harness, writes: Vec<SetRequest>) -> usize {
    let racers: Vec<_> = writes
        .into_iter()
        .map(|request| {
            let store = h.store.clone();
            tokio::spawn(async move { store.set(&request).await })
        })
        .collect();
    let mut successes = 0;
    for racer in racers {
        match racer.await.expect("racer task") {
            Ok(_) => successes += 1,
            Err(StateError::EtagMismatch(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    successes
}

async fn concurrent_writers_with_one_etag_have_one_winner(h: Harness) {
    let key = h.key("raced");
    let etag = h.store.set(&put(&key, "start")).await.expect("set");
    let writes = (0..8).map(|racer| put_if(&key, &format!("racer {racer}"), &etag)).collect();
    assert_eq!(successes_of_racing(&h, writes).await, 1);
}

async fn concurrent_first_writes_have_one_winner(h: Harness) {
    let key = h.key("claimed");
    let writes = (0..8).map(|racer| put_first(&key, &format!("racer {racer}"), None)).collect();
    assert_eq!(successes_of_racing(&h, writes).await, 1);
}

async fn ttl_item_expires(h: Harness) {
    let key = h.key("short-lived");
    let written = Instant::now();
    let written_ms = now_ms();
    h.store.set(&SetRequest { ttl_seconds: Some(2), ..put(&key, "v") }).await.expect("set");
    let item = h.store.get(&key).await.expect("get").expect("readable before it expires");
    let expires_at = item.expires_at.expect("an expiry");
    assert!(
        (written_ms + 1_500..=now_ms() + 2_000).contains(&expires_at),
        "expires {} ms ahead",
        expires_at - written_ms
    );
    // Time is what is tested: poll until the item is gone.
    loop {
        let elapsed = written.elapsed();
        if h.store.get(&key).await.expect("get").is_none() {
            assert!(elapsed >= Duration::from_millis(1_500), "gone after {elapsed:?}, before its TTL of 2 s");
            break;
        }
        assert!(elapsed < Duration::from_secs(3), "still readable {elapsed:?} after a write with a TTL of 2 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn write_without_ttl_makes_item_permanent(h: Harness) {
    let key = h.key("reprieved");
    h.store.set(&SetRequest { ttl_seconds: Some(1), ..put(&key, "v1") }).await.expect("set");
    h.store.set(&put(&key, "v2")).await.expect("set without TTL");
    assert_eq!(h.store.get(&key).await.expect("get").expect("item").expires_at, None);
    // Time is what is tested: outlive the first write's TTL.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(value_of(&h, &key).await.as_deref(), Some("v2"));
}

/// The managed kvstore is measured per project: keys and values of the live items under a prefix, in bytes.
async fn stored_bytes_count_the_live_items_under_a_prefix(h: Harness) {
    let inside = |name: &str| h.key(&format!("in/{name}"));
    let prefix = inside("");
    let measured = || h.store.stored_bytes(&prefix);
    assert_eq!(measured().await.expect("measure an empty prefix"), 0);
    h.store.set(&put(&inside("a"), "hello")).await.expect("set");
    h.store.set(&put(&inside("a"), "hi")).await.expect("overwrite");
    h.store.set(&SetRequest { value: vec![0, 255, 7], ..put(&inside("é"), "") }).await.expect("set binary");
    h.store.set(&put(&inside("gone"), "deleted")).await.expect("set");
    h.store.delete(&remove(&inside("gone"))).await.expect("delete");
    h.store.set(&put(&h.key("in"), "a sibling key outside the prefix")).await.expect("set");
    h.store.set(&put(&h.key("out/a"), "another prefix")).await.expect("set");
    let expected = (inside("a").len() + 2 + inside("é").len() + 3) as u64;
    assert_eq!(measured().await.expect("measure"), expected);
    // An expired item is not stored any more, whether or not the backend has removed it yet.
    h.store.set(&SetRequest { ttl_seconds: Some(1), ..put(&inside("brief"), "x") }).await.expect("set with TTL");
    assert_eq!(measured().await.expect("measure"), expected + inside("brief").len() as u64 + 1);
    let written = Instant::now();
    while h.store.get(&inside("brief")).await.expect("get").is_some() {
        assert!(written.elapsed() < Duration::from_secs(3), "an item with a TTL of 1 s still readable");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(measured().await.expect("measure"), expected);
}

cases_for_backends! {
    backends: [memory, sqlite, postgres, redis],
    cases: [
        features_are_as_documented,
        set_get_delete,
        get_of_missing_key_is_none,
        values_are_stored_byte_for_byte,
        bulk_get_answers_each_key_in_order,
        transaction_applies_upserts_and_deletes,
        transaction_applies_operations_in_order,
        transaction_with_one_bad_etag_changes_nothing,
        transaction_with_malformed_etag_changes_nothing,
        transaction_deletes_missing_key,
        transaction_checks_see_earlier_operations,
        transaction_upsert_sets_ttl,
        every_write_returns_a_new_etag,
        set_with_wrong_etag_is_a_mismatch,
        set_with_current_etag_succeeds_and_changes_the_etag,
        set_with_stale_etag_is_a_mismatch,
        set_with_etag_on_missing_key_is_a_mismatch,
        malformed_etag_is_invalid,
        empty_etag_counts_as_none,
        delete_with_wrong_etag_is_a_mismatch_and_keeps_the_item,
        delete_with_current_etag_removes_the_item,
        delete_of_missing_key,
        first_write_refuses_a_second_write_without_etag,
        first_write_accepts_the_current_etag_and_refuses_a_stale_one,
        first_write_after_delete_succeeds,
        concurrent_writers_with_one_etag_have_one_winner,
        concurrent_first_writes_have_one_winner,
        ttl_item_expires,
        write_without_ttl_makes_item_permanent,
        stored_bytes_count_the_live_items_under_a_prefix,
    ],
}
