//! `state.redis`: each key a Redis hash with the fields `data` (the value) and `version` (the ETag), as
//! daprd's Redis state store keeps them, so either can read what the other wrote. Queries scan the caller's
//! keys with `SCAN` ([`super::redis_scan`]).

use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, Script};

use crate::boundary::Boundary;

use super::open::OpenError;
use super::scan::{ScanBatch, ScanRequest};
use super::time::{now_ms, ttl_ms, within_deadline, CONNECT_TIMEOUT};
use super::write::{self, ApplyWrites, Change, Precondition, Write};
use super::{DeleteRequest, Features, SetRequest, StateError, StateStore, StoredItem, TransactionOperation};
use super::{KeyPage, KeyPosition};
use std::sync::Arc;

use futures_util::future::BoxFuture;
use outrigger_resources::{optional, required, secret, BuildingBlock, ComponentType, MetadataField};

use crate::components::{Backend, Opener, Opening};

/// Port of a `redisHost` that names none.
const DEFAULT_PORT: u16 = 6379;

/// Reads one item: its value, its version and its remaining TTL in milliseconds (-1: none, -2: no such key),
/// together, so the TTL belongs to the version read. One script answers one flat reply; the same read as
/// MULTI/EXEC answers four replies, and parsing them cost a seventh of a state GET's instructions.
const READ_ITEM_SCRIPT: &str = r#"
local item = redis.call('HMGET', KEYS[1], 'data', 'version')
return {item[1], item[2], redis.call('PTTL', KEYS[1])}
"#;

/// [`READ_ITEM_SCRIPT`], its digest computed once (calls send `EVALSHA`, loading the script when Redis lacks it).
static READ_ITEM: LazyLock<Script> = LazyLock::new(|| Script::new(READ_ITEM_SCRIPT));

/// Applies a batch of writes atomically (a script runs without other commands in between).
///
/// KEYS[i] is the key of write i; ARGV holds five values per write: the change (`put` / `remove`), the
/// requirement (`none` / `absent` / `etag`), the expected ETag, the value, and the TTL in milliseconds
/// (empty: none). Every requirement is checked first, against the versions the earlier writes of the
/// batch would leave, because Redis cannot undo a write once made. Answers `{1, version...}` (0 for a
/// removal) or `{0, index of the refused write}`.
const APPLY_WRITES_SCRIPT: &str = r#"
local fields = 5
local planned = {}
for i, key in ipairs(KEYS) do
  local base = (i - 1) * fields
  local change, requirement, expected, ttl = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 5]
  local version = planned[key]
  if version == nil then
    version = redis.call("HGET", key, "version")
  end
  if (requirement == "absent" and version) or (requirement == "etag" and version ~= expected) then
    return {0, i}
  end
  if change == "put" and ttl ~= "0" then
    planned[key] = tostring((tonumber(version) or 0) + 1)
  else
    planned[key] = false
  end
end
local versions = {1}
for i, key in ipairs(KEYS) do
  local base = (i - 1) * fields
  if ARGV[base + 1] == "put" then
    redis.call("HSET", key, "data", ARGV[base + 4])
    versions[i + 1] = redis.call("HINCRBY", key, "version", 1)
    if ARGV[base + 5] == "" then
      redis.call("PERSIST", key)
    else
      redis.call("PEXPIRE", key, ARGV[base + 5])
    end
  else
    redis.call("DEL", key)
    versions[i + 1] = 0
  end
end
return versions
"#;

/// Which Redis a [`RedisStateStore`] (or a Redis message broker) uses (Dapr metadata `redisHost`,
/// `redisUsername`, `redisPassword`, `redisDB`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisOptions {
    /// `host:port` (`[v6 address]:port`); the port defaults to 6379.
    pub host: String,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Database number.
    pub db: i64,
}

impl RedisOptions {
    /// Options for `host` without credentials, database 0.
    pub fn new(host: impl Into<String>) -> RedisOptions {
        RedisOptions { host: host.into(), username: None, password: None, db: 0 }
    }
}

/// Dapr's Redis state store. ETags are the hash's `version` counter.
pub struct RedisStateStore {
    pub(super) connection: ConnectionManager,
    apply_writes: Script,
}

/// The address in a `redisHost`.
fn address(host: &str) -> Result<ConnectionAddr, String> {
    let (name, port) = match host.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((name, "")) => (name, None),
            Some((name, rest)) => (name, Some(rest.strip_prefix(':').ok_or("expected :port after ']'")?)),
            None => return Err("'[' without ']'".to_owned()),
        },
        None => match host.split_once(':') {
            Some((_, rest)) if rest.contains(':') => return Err("write an IPv6 address as [address]:port".to_owned()),
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        },
    };
    if name.is_empty() || name.contains(',') {
        return Err("expected one host:port".to_owned());
    }
    let port = match port {
        Some(port) => port.parse::<u16>().map_err(|_| format!("'{port}' is not a port number"))?,
        None => DEFAULT_PORT,
    };
    Ok(ConnectionAddr::Tcp(name.to_owned(), port))
}

/// `redisHost` as the address to connect to: the one `boundary` checked, or the host as given.
pub(crate) async fn pinned(component_type: &'static str, host: &str, boundary: &Boundary) -> Result<String, OpenError> {
    let invalid = |reason| OpenError::InvalidField { component_type, field: "redisHost", reason };
    let ConnectionAddr::Tcp(name, port) = address(host).map_err(invalid)? else {
        unreachable!("a redisHost is a TCP address")
    };
    let pinned = boundary.host(component_type, "redisHost", &name, port).await?;
    Ok(pinned.map_or_else(|| host.to_owned(), |address| address.to_string()))
}

/// A client for the Redis that `options` name, and a connection over it that connects on first use and
/// reconnects by itself; `component_type` names the component in errors. Commands have no response timeout
/// of their own: every caller bounds each call, reconnects included (`within`, `within_deadline`), and the
/// second timer per command cost ~1,000 instructions a state GET.
pub(crate) fn connect(
    component_type: &'static str,
    options: &RedisOptions,
) -> Result<(redis::Client, ConnectionManager), OpenError> {
    let invalid = |field, reason| OpenError::InvalidField { component_type, field, reason };
    let address = address(&options.host).map_err(|reason| invalid("redisHost", reason))?;
    let mut settings = RedisConnectionInfo::default().set_db(options.db);
    if let Some(username) = &options.username {
        settings = settings.set_username(username);
    }
    if let Some(password) = &options.password {
        settings = settings.set_password(password);
    }
    let connection_info = address
        .into_connection_info()
        .map_err(|err| invalid("redisHost", err.to_string()))?
        .set_redis_settings(settings);
    let client = redis::Client::open(connection_info).map_err(|err| invalid("redisHost", err.to_string()))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(None)
        // Few, short retries: a request waits for a reconnect only briefly; the next request tries again.
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    let connection = ConnectionManager::new_lazy_with_config(client.clone(), config)
        .map_err(|err| OpenError::Backend { component_type, message: err.to_string() })?;
    Ok((client, connection))
}

fn backend_error(err: redis::RedisError) -> StateError {
    StateError::Backend(format!("{}: {err}", RedisStateStore::COMPONENT_TYPE))
}

impl RedisStateStore {
    /// The Dapr component type this store serves.
    pub const COMPONENT_TYPE: &'static str = "state.redis";

    /// A store that connects on first use and reconnects by itself after the connection is lost: a Redis
    /// that is down makes requests fail quickly until it is back, not the component.
    pub async fn open(options: RedisOptions) -> Result<RedisStateStore, OpenError> {
        let (_, connection) = connect(Self::COMPONENT_TYPE, &options)?;
        Ok(RedisStateStore { connection, apply_writes: Script::new(APPLY_WRITES_SCRIPT) })
    }
}

#[async_trait]
impl ApplyWrites for RedisStateStore {
    fn is_well_formed_etag(etag: &str) -> bool {
        write::is_version_number(etag)
    }

    async fn apply(&self, writes: &[Write<'_>]) -> Result<Vec<String>, StateError> {
        let mut invocation = self.apply_writes.prepare_invoke();
        for write in writes {
            let (requirement, expected) = match write.precondition {
                Precondition::None => ("none", ""),
                Precondition::Absent => ("absent", ""),
                Precondition::Etag(expected) => ("etag", expected),
            };
            invocation.key(write.key);
            match write.change {
                Change::Put { value, ttl_seconds } => {
                    let ttl_ms = ttl_seconds.map(|seconds| ttl_ms(seconds).to_string()).unwrap_or_default();
                    invocation.arg("put").arg(requirement).arg(expected).arg(value).arg(ttl_ms)
                }
                Change::Remove => invocation.arg("remove").arg(requirement).arg(expected).arg("").arg(""),
            };
        }
        let mut connection = self.connection.clone();
        let answer: Vec<i64> = invocation.invoke_async(&mut connection).await.map_err(backend_error)?;
        match answer.split_first() {
            Some((1, versions)) => {
                Ok(versions.iter().filter(|version| **version > 0).map(ToString::to_string).collect())
            }
            Some((0, [refused])) => {
                let refused = usize::try_from(*refused - 1).ok().and_then(|index| writes.get(index));
                refused.map_or_else(
                    || Err(StateError::Backend(format!("{}: the write script named no write", Self::COMPONENT_TYPE))),
                    |write| Err(write.precondition.refusal(write.key)),
                )
            }
            _ => Err(StateError::Backend(format!("{}: unexpected answer {answer:?} to a write", Self::COMPONENT_TYPE))),
        }
    }
}

#[async_trait]
impl StateStore for RedisStateStore {
    fn features(&self) -> Features {
        Features { transactional: true, etag: true, ttl: true, query: true }
    }

    async fn ping(&self) -> Result<(), StateError> {
        let mut connection = self.connection.clone();
        within_deadline(Self::COMPONENT_TYPE, async {
            redis::cmd("PING").query_async::<String>(&mut connection).await.map_err(backend_error)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<StoredItem>, StateError> {
        let mut connection = self.connection.clone();
        let (value, etag, remaining_ms): (Option<Vec<u8>>, Option<String>, i64) =
            READ_ITEM.key(key).invoke_async(&mut connection).await.map_err(backend_error)?;
        match (value, etag) {
            (None, None) => Ok(None),
            (Some(value), Some(etag)) => {
                // PTTL answers -1 for a key without expiry.
                let expires_at = (remaining_ms >= 0).then(|| now_ms() + remaining_ms);
                Ok(Some(StoredItem { value, etag, expires_at }))
            }
            _ => Err(StateError::Backend(format!(
                "{}: key {key} is not a state item (a hash with the fields data and version)",
                Self::COMPONENT_TYPE
            ))),
        }
    }

    async fn set(&self, request: &SetRequest) -> Result<String, StateError> {
        write::set(self, request).await
    }

    async fn delete(&self, request: &DeleteRequest) -> Result<(), StateError> {
        write::delete(self, request).await
    }

    async fn transact(&self, operations: &[TransactionOperation]) -> Result<(), StateError> {
        write::transact(self, operations).await
    }

    async fn scan(&self, request: &ScanRequest<'_>) -> Result<ScanBatch, StateError> {
        self.scan_batch(request).await
    }

    async fn stored_bytes(&self, prefix: &str) -> Result<u64, StateError> {
        self.measure(prefix).await
    }

    async fn list_keys(&self, prefix: &str, from: &KeyPosition, limit: usize) -> Result<KeyPage, StateError> {
        self.list_keys_page(prefix, from, limit).await
    }
}

/// The Redis client settings Dapr shares between its Redis state store and pub/sub.
/// `maxRetries` and `maxRetryBackoff` are the older spellings daprd still reads.
/// `clientKey` is a TLS private key, so it is treated as a secret although Dapr's
/// metadata.yaml does not flag it.
///
/// Defaults are declared only where this worker behaves as daprd's default does: it connects to one node,
/// without TLS, failover or token authentication (asking for any of those is refused when the component opens),
/// and waits 3 s for an answer (`readTimeout`). The pool,
/// retry and dial settings are daprd's go-redis knobs, which this worker's client does not have (its own
/// connect timeout is 3 s where daprd dials for 5 s), so they declare none.
pub(crate) const REDIS_CLIENT_FIELDS: &[MetadataField] = &[
    required("redisHost"),
    // A redisHost without a port gets 6379 here as in daprd (defaultRedisPort in settings.go).
    optional("redisPort").defaults_to("6379"),
    optional("redisUsername"),
    secret("redisPassword"),
    optional("redisType").defaults_to("node"),
    optional("redisDB").defaults_to("0"),
    optional("failover").defaults_to("false"),
    optional("sentinelMasterName"),
    optional("sentinelUsername"),
    secret("sentinelPassword"),
    optional("enableTLS").defaults_to("false"),
    optional("insecureSkipTLSVerify").defaults_to("false"),
    optional("clientCert"),
    secret("clientKey"),
    optional("useEntraID").defaults_to("false"),
    optional("useOIDC").defaults_to("false"),
    optional("oidcTokenEndpoint"),
    optional("oidcClientID"),
    optional("oidcClientAssertionCert"),
    secret("oidcClientAssertionKey"),
    optional("oidcResource"),
    optional("oidcAudience"),
    optional("oidcScopes"),
    optional("oidcKid"),
    optional("oidcCACert"),
    optional("redisMaxRetries"),
    optional("maxRetries"),
    optional("redisMinRetryInterval"),
    optional("redisMaxRetryInterval"),
    optional("maxRetryBackoff"),
    optional("dialTimeout"),
    optional("readTimeout").defaults_to("3s"),
    optional("writeTimeout"),
    optional("poolSize"),
    optional("poolTimeout"),
    optional("maxConnAge"),
    optional("minIdleConns"),
    optional("idleCheckFrequency"),
    optional("idleTimeout"),
];

const REDIS_STATE_FIELDS: &[MetadataField] = &[optional("ttlInSeconds"), optional("queryIndexes")];

/// `state.redis`: a Redis server the egress rule lets the project reach.
pub(crate) static BACKEND: Backend = Backend {
    declared: ComponentType::v1(
        RedisStateStore::COMPONENT_TYPE,
        BuildingBlock::State,
        &[REDIS_CLIENT_FIELDS, REDIS_STATE_FIELDS],
    ),
    opener: Opener::State(open),
};

fn open(opening: Opening<'_>) -> BoxFuture<'_, Result<Arc<dyn StateStore>, OpenError>> {
    Box::pin(async move {
        let options = opening.fields.redis_options(RedisStateStore::COMPONENT_TYPE, opening.boundary).await?;
        Ok(Arc::new(RedisStateStore::open(options).await?) as _)
    })
}
