//! Outbound safety: the platform calls URLs its tenants chose (app endpoints, HTTP endpoints), so a tenant
//! could aim it at the platform's own network — its database, its Redis, a cloud metadata service. Unless
//! the operator allows private addresses, every outbound call is checked where the address is final: IP
//! literals before the request, names after DNS resolution (so a name that resolves to a private address,
//! or is re-pointed to one later, is refused too), and every redirect hop the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Whether the platform may call private, loopback and link-local addresses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrivateAddresses {
    /// Allowed: the embedded default, where apps run beside the platform on the same machine or network.
    Allowed,
    /// Refused: the distributed form, where the platform's own services live on the private network.
    Refused,
}

/// A call the guard refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{target} is a private, loopback or link-local address, which this installation does not call; \
     use a public address, or have the operator set OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS=true"
)]
pub struct Refused {
    /// What was refused: an address, or a name and the address it resolved to.
    pub target: String,
}

/// Whether `ip` is an address tenants must not reach when private addresses are refused.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_private_v4(ip),
        IpAddr::V6(ip) => is_private_v6(ip),
    }
}

fn is_private_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), often used inside clusters.
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments and benchmarking networks.
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (18..20).contains(&b))
        // Reserved for future use.
        || a >= 240
}

fn is_private_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) carries an IPv4 address in its last 32 bits.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [.., high, low] = segments;
        return is_private_v4(Ipv4Addr::from(((high as u32) << 16) | low as u32));
    }
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local (fc00::/7), link-local (fe80::/10) and the old site-local (fec0::/10).
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
}

impl PrivateAddresses {
    /// Checks the host of `url` when it is an IP literal (names are checked when they resolve).
    pub fn check_url(self, url: &reqwest::Url) -> Result<(), Refused> {
        if self == PrivateAddresses::Allowed {
            return Ok(());
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if is_private(literal) {
            return Err(Refused { target: literal.to_string() });
        }
        Ok(())
    }

    /// An HTTP client that keeps to this rule. `follow_redirects`: whether redirects are followed (each hop
    /// checked) or handed back to the caller as they are.
    pub fn client(self, follow_redirects: bool) -> reqwest::Client {
        let redirect = if follow_redirects {
            reqwest::redirect::Policy::custom(move |attempt| {
                if attempt.previous().len() >= 10 {
                    return attempt.error("stopped after 10 redirects");
                }
                match self.check_url(attempt.url()) {
                    Ok(()) => attempt.follow(),
                    Err(refused) => attempt.error(refused),
                }
            })
        } else {
            reqwest::redirect::Policy::none()
        };
        let mut builder = reqwest::Client::builder()
            .redirect(redirect)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90));
        if self == PrivateAddresses::Refused {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        builder.build().expect("an HTTP client with rustls and a resolver builds")
    }
}

/// How long connecting to an app may take: an unreachable app fails fast instead of hanging its caller.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Resolves names with the system resolver and refuses names whose addresses include a private one.
struct PublicOnlyResolver;

impl reqwest::dns::Resolve for PublicOnlyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // One private answer refuses the name: a resolver may rotate its answers between calls.
            if let Some(private) = addresses.iter().find(|address| is_private(address.ip())) {
                let refused = Refused { target: format!("{host} (resolves to {})", private.ip()) };
                return Err(Box::new(refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The first [`Refused`] in an error's chain: a refused address reads better than "error sending request".
pub fn refusal_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a Refused> {
    let mut current = Some(error);
    while let Some(error) = current {
        if let Some(refused) = error.downcast_ref::<Refused>() {
            return Some(refused);
        }
        current = error.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_recognised() {
        let private = [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ];
        for address in private {
            assert!(is_private(address.parse().unwrap()), "{address} is private");
        }
        let public = ["8.8.8.8", "172.32.0.1", "100.128.0.1", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"];
        for address in public {
            assert!(!is_private(address.parse().unwrap()), "{address} is public");
        }
    }

    #[test]
    fn literal_urls_are_checked_only_when_refused() {
        let url = reqwest::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        let refused = PrivateAddresses::Refused.check_url(&url).unwrap_err();
        assert!(refused.to_string().contains("169.254.169.254"));
        assert!(refused.to_string().contains("OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS"));
        assert_eq!(PrivateAddresses::Allowed.check_url(&url), Ok(()));
        let url = reqwest::Url::parse("http://[::1]:8080/").unwrap();
        assert!(PrivateAddresses::Refused.check_url(&url).is_err());
        let url = reqwest::Url::parse("https://example.com/").unwrap();
        assert_eq!(PrivateAddresses::Refused.check_url(&url), Ok(()), "names are checked when they resolve");
    }

    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_refused() {
        let client = PrivateAddresses::Refused.client(false);
        let error = client.get("http://localhost:9/").send().await.unwrap_err();
        let refused = refusal_in(&error).expect("the resolver refused localhost");
        assert!(refused.target.starts_with("localhost (resolves to "), "{refused}");
    }
}
