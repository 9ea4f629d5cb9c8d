//! The tenant boundary as configured: the egress rule ([`Egress`]) every address a tenant configures passes,
//! with the platform's own services (its listeners, control-plane database, managed stores and NATS) listed
//! in it so that no tenant endpoint or component reaches them, whatever the operator allows.

use std::net::SocketAddr;

use anyhow::Context;
use outrigger_outbound::{Egress, EgressRule, PlatformService, PrivateAddresses};

use crate::config::Config;

/// The egress rule of a process running `runs_all_in_one` (the embedded default allows other private
/// addresses unless told otherwise; the distributed form refuses them) with `own_listeners` bound.
pub async fn egress(config: &Config, runs_all_in_one: bool, own_listeners: &[SocketAddr]) -> anyhow::Result<Egress> {
    let private = if config.allow_private_endpoints.unwrap_or(runs_all_in_one) {
        PrivateAddresses::Allowed
    } else {
        PrivateAddresses::Refused
    };
    let (denied, allowed) = config.egress_ranges()?;
    let mut platform = Vec::new();
    // The configured addresses too: the listeners of the other roles on this host usually keep the defaults.
    for listener in own_listeners.iter().chain(&[config.control_api_addr, config.http_addr, config.grpc_addr]) {
        platform.push(PlatformService::at(*listener));
    }
    for (setting, url) in platform_urls(config) {
        for address in service_addresses(&url).await.with_context(|| format!("resolving {setting}"))? {
            platform.push(PlatformService::at(address));
        }
    }
    tracing::debug!(services = platform.len(), denied = denied.len(), allowed = allowed.len(), ?private, "egress rule");
    Ok(Egress::new(EgressRule { private, platform, denied, allowed }))
}

/// The network services the platform itself uses, by the setting that names them.
fn platform_urls(config: &Config) -> Vec<(&'static str, String)> {
    let mut urls = vec![
        ("OUTRIGGER_DATABASE_URL", config.database_url()),
        ("OUTRIGGER_MANAGED_KVSTORE_URL", config.managed_kvstore_url()),
        ("OUTRIGGER_MANAGED_PUBSUB_URL", config.managed_pubsub_url()),
    ];
    if let Some(nats) = &config.nats_url {
        // A NATS URL may list several servers.
        urls.extend(nats.split(',').map(|server| ("OUTRIGGER_NATS_URL", server.trim().to_owned())));
    }
    urls
}

/// The addresses of the server a URL names; none for file-backed stores (`sqlite://`), which the file
/// confinement keeps tenants away from.
async fn service_addresses(url: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let default_port = match url.split_once("://").map(|(scheme, _)| scheme) {
        Some("postgres" | "postgresql") => 5432,
        Some("redis") => 6379,
        Some("nats") => 4222,
        _ => return Ok(Vec::new()),
    };
    let parsed = url::Url::parse(url).with_context(|| "not a URL".to_owned())?;
    let Some(host) = parsed.host_str().map(|host| host.trim_start_matches('[').trim_end_matches(']').to_owned()) else {
        return Ok(Vec::new());
    };
    let port = parsed.port().unwrap_or(default_port);
    let addresses = tokio::net::lookup_host((host.clone(), port)).await;
    Ok(addresses.with_context(|| format!("cannot resolve {host}"))?.collect())
}
