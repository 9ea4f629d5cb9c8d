//! What the console shows of a project's managed stores: the keys of its `kvstore` by App ID and prefix, a page at
//! a time, one value, a delete ([`KvExplorer`]); and the backlog of its `pubsub` topics ([`TopicExplorer`]).
//!
//! Both stores are shared by every project of the installation. Every call names the project by its internal id
//! and reaches only that project's namespace, whatever else it is given: a key is always the namespace, the App ID
//! (a DNS label, so no `||` or `/` in it), `||` and the key, and a listing is the key range of that prefix (SQL) or
//! its escaped `MATCH` pattern (Redis), never a pattern built from what the caller typed. Continuation tokens name a
//! position inside that range only.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use outrigger_resources::validate_dns_label;
use outrigger_store::ProjectId;

use crate::project::{managed_kvstore_namespace, managed_pubsub_namespace};
use crate::pubsub::stream_api::STREAMING_GROUP_SUFFIX;
use crate::pubsub::{Broker, BrokerError};
use crate::state::api::KEY_SEPARATOR;
use crate::state::time::within_deadline;
use crate::state::{Concurrency, DeleteRequest, KeyPosition, StateError, StateStore};

/// The managed kvstore as its timeouts name it (in errors and in `outrigger_store_timeouts_total`): the explorer's
/// reads and deletes run under no component's policy, so they take the store's fixed deadline.
const MANAGED_KVSTORE: &str = "kvstore";

/// Why an explorer call was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ExplorerError {
    /// The request cannot be answered as given (a malformed token, an App ID that no App ID can have).
    #[error("{0}")]
    Invalid(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

impl From<StateError> for ExplorerError {
    fn from(err: StateError) -> ExplorerError {
        match err {
            StateError::InvalidRequest(message) => ExplorerError::Invalid(message),
            other => ExplorerError::Store(other.to_string()),
        }
    }
}

impl From<BrokerError> for ExplorerError {
    fn from(err: BrokerError) -> ExplorerError {
        ExplorerError::Store(err.to_string())
    }
}

/// A key of an App ID, without its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploredKey {
    /// The App ID whose key it is.
    pub app_id: String,
    /// The key as the App ID wrote it.
    pub key: String,
    /// Bytes of the value.
    pub size: u64,
    /// The current ETag.
    pub etag: String,
    /// When the item expires (Unix milliseconds), if it has a TTL.
    pub expires_at: Option<i64>,
}

/// A page of keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExploredPage {
    /// The keys, in key order (on Redis, in key order within the page).
    pub keys: Vec<ExploredKey>,
    /// Where the next page starts; `None` on the last.
    pub continuation: Option<String>,
}

/// One item with its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExploredItem {
    /// The bytes as the App ID wrote them.
    pub value: Vec<u8>,
    /// The current ETag.
    pub etag: String,
    /// When the item expires (Unix milliseconds), if it has a TTL.
    pub expires_at: Option<i64>,
}

/// The keys of projects in the managed kvstore.
#[derive(Clone)]
pub struct KvExplorer {
    store: Arc<dyn StateStore>,
}

/// An App ID as a key's first part: a DNS label, which holds neither `||` nor `/`.
fn check_app_id(app_id: &str) -> Result<(), ExplorerError> {
    validate_dns_label(app_id).map_err(|invalid| ExplorerError::Invalid(format!("App ID {invalid}")))
}

/// A continuation token: the position as the listing's store wrote it, the key relative to the project's
/// namespace, so that a token names nothing outside it.
fn token_of(position: &KeyPosition, namespace: &str) -> Option<String> {
    match position {
        KeyPosition::Start => None,
        KeyPosition::After(key) => {
            Some(format!("k{}", URL_SAFE_NO_PAD.encode(key.strip_prefix(namespace).unwrap_or(key).as_bytes())))
        }
        KeyPosition::Cursor(cursor) => Some(format!("c{cursor}")),
    }
}

fn position_of(token: Option<&str>, namespace: &str) -> Result<KeyPosition, ExplorerError> {
    let refused =
        || ExplorerError::Invalid("continuationToken is not one this listing issued: start again without it".into());
    let Some(token) = token else { return Ok(KeyPosition::Start) };
    if let Some(encoded) = token.strip_prefix('k') {
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| refused())?;
        let key = String::from_utf8(bytes).map_err(|_| refused())?;
        return Ok(KeyPosition::After(format!("{namespace}{key}")));
    }
    let cursor = token.strip_prefix('c').and_then(|cursor| cursor.parse::<u64>().ok()).ok_or_else(refused)?;
    Ok(KeyPosition::Cursor(cursor))
}

impl KvExplorer {
    /// Explores `store`, the installation's managed kvstore.
    pub fn new(store: Arc<dyn StateStore>) -> KvExplorer {
        KvExplorer { store }
    }

    /// A page of the project's keys: of one App ID (those starting with `prefix`), or of every App ID (then
    /// `prefix` must be empty: keys of different App IDs share no range). At most `limit` keys (Redis: see
    /// [`StateStore::list_keys`]); a page may hold fewer, even none, and still continue.
    pub async fn list(
        &self,
        project: &ProjectId,
        app_id: Option<&str>,
        prefix: &str,
        continuation: Option<&str>,
        limit: usize,
    ) -> Result<ExploredPage, ExplorerError> {
        let namespace = managed_kvstore_namespace(project);
        let range = match app_id {
            Some(app_id) => {
                check_app_id(app_id)?;
                format!("{namespace}{app_id}{KEY_SEPARATOR}{prefix}")
            }
            None if prefix.is_empty() => namespace.clone(),
            None => {
                return Err(ExplorerError::Invalid(
                    "a key prefix filters the keys of one App ID: give appId with prefix".into(),
                ))
            }
        };
        let from = position_of(continuation, &namespace)?;
        let page = self.store.list_keys(&range, &from, limit).await?;
        let keys = page
            .keys
            .into_iter()
            .filter_map(|listed| {
                // Keys that are not an App ID's (the project's locks, under `locks/`) are not shown.
                let (app_id, key) = listed.key.strip_prefix(&namespace)?.split_once(KEY_SEPARATOR)?;
                validate_dns_label(app_id).ok()?;
                Some(ExploredKey {
                    app_id: app_id.to_owned(),
                    key: key.to_owned(),
                    size: listed.size,
                    etag: listed.etag,
                    expires_at: listed.expires_at,
                })
            })
            .collect();
        let continuation = page.next.as_ref().and_then(|next| token_of(next, &namespace));
        Ok(ExploredPage { keys, continuation })
    }

    fn full_key(project: &ProjectId, app_id: &str, key: &str) -> Result<String, ExplorerError> {
        check_app_id(app_id)?;
        if key.is_empty() {
            return Err(ExplorerError::Invalid("a key is not empty".into()));
        }
        Ok(format!("{}{app_id}{KEY_SEPARATOR}{key}", managed_kvstore_namespace(project)))
    }

    /// One item of the project's App ID; `None` when there is none (or it expired).
    pub async fn get(
        &self,
        project: &ProjectId,
        app_id: &str,
        key: &str,
    ) -> Result<Option<ExploredItem>, ExplorerError> {
        let full_key = Self::full_key(project, app_id, key)?;
        let item = within_deadline(MANAGED_KVSTORE, self.store.get(&full_key)).await?;
        Ok(item.map(|item| ExploredItem { value: item.value, etag: item.etag, expires_at: item.expires_at }))
    }

    /// Deletes one item of the project's App ID; `false` when there was none.
    pub async fn delete(&self, project: &ProjectId, app_id: &str, key: &str) -> Result<bool, ExplorerError> {
        let full_key = Self::full_key(project, app_id, key)?;
        if within_deadline(MANAGED_KVSTORE, self.store.get(&full_key)).await?.is_none() {
            return Ok(false);
        }
        let request = DeleteRequest { key: full_key, etag: None, concurrency: Concurrency::LastWrite };
        within_deadline(MANAGED_KVSTORE, self.store.delete(&request)).await?;
        Ok(true)
    }
}

/// A consumer group of one of a project's topics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicGroup {
    /// The topic, as apps name it.
    pub topic: String,
    /// The App ID it delivers to.
    pub app_id: String,
    /// The group of the App ID's streaming subscriptions (else its push deliveries).
    pub streaming: bool,
}

/// The topics of projects in the managed pubsub, and what their groups have not acknowledged.
#[derive(Clone)]
pub struct TopicExplorer {
    broker: Arc<dyn Broker>,
}

impl TopicExplorer {
    /// Explores `broker`, the installation's managed pubsub.
    pub fn new(broker: Arc<dyn Broker>) -> TopicExplorer {
        TopicExplorer { broker }
    }

    /// The consumer groups the broker holds for the project's topics, at most `max`: `None` when the broker
    /// cannot list them per project (JetStream and Redis would have to look at every project's).
    pub async fn groups(&self, project: &ProjectId, max: usize) -> Result<Option<Vec<TopicGroup>>, ExplorerError> {
        let namespace = managed_pubsub_namespace(project);
        let Some(groups) = self.broker.groups(&namespace, max).await? else { return Ok(None) };
        let groups = groups
            .into_iter()
            .filter_map(|(topic, group)| {
                let topic = topic.strip_prefix(&namespace)?.to_owned();
                let group = group.strip_prefix(&namespace)?;
                let (app_id, streaming) = match group.strip_suffix(STREAMING_GROUP_SUFFIX) {
                    Some(app_id) => (app_id, true),
                    None => (group, false),
                };
                validate_dns_label(app_id).ok()?;
                Some(TopicGroup { topic, app_id: app_id.to_owned(), streaming })
            })
            .collect();
        Ok(Some(groups))
    }

    /// Messages of the project's `topic` that the App ID's group has not acknowledged, counted up to `cap`; `None`
    /// when the group does not exist (nothing was delivered to it yet).
    pub async fn pending(
        &self,
        project: &ProjectId,
        topic: &str,
        app_id: &str,
        streaming: bool,
        cap: u64,
    ) -> Result<Option<u64>, ExplorerError> {
        check_app_id(app_id)?;
        let namespace = managed_pubsub_namespace(project);
        let suffix = if streaming { STREAMING_GROUP_SUFFIX } else { "" };
        let group = format!("{namespace}{app_id}{suffix}");
        Ok(self.broker.pending(&format!("{namespace}{topic}"), &group, cap).await?)
    }

    /// Messages the project's `topic` keeps, counted up to `cap`.
    pub async fn kept_messages(&self, project: &ProjectId, topic: &str, cap: u64) -> Result<u64, ExplorerError> {
        let namespace = managed_pubsub_namespace(project);
        Ok(self.broker.kept_messages(&format!("{namespace}{topic}"), cap).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_stay_inside_the_namespace() {
        let namespace = "prj_1/";
        let token = token_of(&KeyPosition::After("prj_1/app||k".into()), namespace).unwrap();
        assert_eq!(position_of(Some(&token), namespace).unwrap(), KeyPosition::After("prj_1/app||k".into()));
        // A token made for another project resumes inside this one's namespace.
        assert_eq!(position_of(Some(&token), "prj_2/").unwrap(), KeyPosition::After("prj_2/app||k".into()));
        let cursor = token_of(&KeyPosition::Cursor(42), namespace).unwrap();
        assert_eq!(position_of(Some(&cursor), namespace).unwrap(), KeyPosition::Cursor(42));
        assert!(matches!(position_of(Some("x"), namespace), Err(ExplorerError::Invalid(_))));
        assert!(matches!(position_of(Some("k!!"), namespace), Err(ExplorerError::Invalid(_))));
    }
}
