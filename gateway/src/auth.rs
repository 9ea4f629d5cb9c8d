//! Who is calling: the `dapr-api-token` of a call, looked up by hash in the control-plane database and
//! cached briefly, gives the caller's project and App ID. Nothing else in a request can name a tenant.
//!
//! Cached answers (found or not) live for `ttl`, so a revoked or rotated-out token stops working on every
//! gateway within that time, while a busy token costs one database read per `ttl`. Open streams look their
//! token up here too, on the same bound ([`crate::stream_guard`]).
//!
//! The cache is keyed by the token as presented, so a cached call never hashes it (SHA-256 and hex were 8 %
//! of a state GET's instructions); only a miss computes the hash the database is keyed by. Tokens stay in
//! memory no longer than about `ttl` past their last miss: every insert after a `ttl` without one sweeps
//! the stale answers out. The map hashes tokens with `foldhash`, seeded at random per process: every call
//! hashes its token, and the standard SipHash cost ~320 instructions a call for a 40-character token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use outrigger_bus::Tenant;
use outrigger_store::{hash_token, RateQuota, Store};

/// Upper bound on cached tokens: a flood of random tokens cannot grow memory without limit.
const MAX_CACHED_TOKENS: usize = 100_000;

struct Cached {
    owner: Option<Tenant>,
    /// What the operator allows the owner's calls per second.
    rate: RateQuota,
    fetched: Instant,
}

/// Cached answers by token as presented, and when stale ones were last swept out.
struct Answers {
    by_token: HashMap<String, Cached, foldhash::quality::RandomState>,
    swept: Instant,
}

/// Resolves API tokens to tenants.
pub struct TokenResolver {
    store: Store,
    ttl: Duration,
    cache: Mutex<Answers>,
}

impl TokenResolver {
    /// A resolver reading `store`, trusting a cached answer for `ttl`.
    pub fn new(store: Store, ttl: Duration) -> TokenResolver {
        TokenResolver { store, ttl, cache: Mutex::new(Answers { by_token: HashMap::default(), swept: Instant::now() }) }
    }

    /// The tenant a token identifies, with the rate quotas of its project and organization; `Ok(None)` for
    /// unknown, revoked or expired tokens.
    pub async fn resolve(&self, token: &str) -> Result<Option<(Tenant, RateQuota)>, outrigger_store::Error> {
        let lookup = self.lookup(token, false).await?;
        Ok(lookup.owner.map(|owner| (owner, lookup.rate)))
    }

    /// How long an answer is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The answer for a token with the instant it was read from the database, so that a stream guard can
    /// look again exactly when requests would. `fresh` skips the cache (and refreshes it): a change event
    /// said the answer may be stale.
    pub async fn lookup(&self, token: &str, fresh: bool) -> Result<Lookup, outrigger_store::Error> {
        if let Some(cached) = self.cache.lock().expect("token cache lock").by_token.get(token) {
            if !fresh && cached.fetched.elapsed() < self.ttl {
                outrigger_telemetry::metrics().token_lookup(true);
                return Ok(Lookup { owner: cached.owner.clone(), rate: cached.rate, fetched: cached.fetched });
            }
        }
        outrigger_telemetry::metrics().token_lookup(false);
        // Boxed, so that a cached answer's future stays small (docs/decisions.md, "Each call's future is boxed").
        Box::pin(self.read(token)).await
    }

    /// Reads a token's owner from the database and caches the answer.
    async fn read(&self, token: &str) -> Result<Lookup, outrigger_store::Error> {
        let mut tx = self.store.begin().await?;
        let found = tx.token_owner(&hash_token(token)).await?;
        let rate = found.as_ref().map(|owner| owner.rate).unwrap_or_default();
        let owner = found.map(|owner| {
            Tenant::new(owner.project_id.clone(), owner.project.into(), owner.app_id.into(), owner.pool.into())
        });
        drop(tx);
        let fetched = Instant::now();
        let mut cache = self.cache.lock().expect("token cache lock");
        let ttl = self.ttl;
        if cache.swept.elapsed() >= ttl || cache.by_token.len() >= MAX_CACHED_TOKENS {
            cache.by_token.retain(|_, cached| cached.fetched.elapsed() < ttl);
            cache.swept = fetched;
            if cache.by_token.len() >= MAX_CACHED_TOKENS {
                cache.by_token.clear();
            }
        }
        cache.by_token.insert(token.to_owned(), Cached { owner: owner.clone(), rate, fetched });
        Ok(Lookup { owner, rate, fetched })
    }
}

/// A token's owner as last read, and when.
pub struct Lookup {
    pub owner: Option<Tenant>,
    pub rate: RateQuota,
    pub fetched: Instant,
}
