//! The egress rule: the one check for every address a tenant can make the platform dial — app endpoints, HTTP
//! endpoints, health probes, push deliveries, subscription fetches, and every host a component connects to. A
//! tenant could otherwise aim the platform at its own network: its database, its Redis, NATS, its own
//! listeners, a cloud metadata service. The rule is judged on the address actually dialled (names after DNS
//! resolution; HTTP connections on the peer they reached, see [`crate::connect`]), in this order:
//!
//! 1. the platform's own services (address and port) are never reachable, whatever the operator allows;
//! 2. ranges the operator forbids are refused, then ranges the operator allows are reachable;
//! 3. other private, loopback and link-local addresses are reachable only where the operator allows them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;

pub use ipnet::IpNet;

/// Whether the platform may call private, loopback and link-local addresses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrivateAddresses {
    /// Allowed: the embedded default, where apps run beside the platform on the same machine or network.
    #[default]
    Allowed,
    /// Refused: the distributed form, where the platform's own services live on the private network.
    Refused,
}

/// Why the rule refused an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    /// One of the platform's own services listens there.
    #[error("is one of this installation's own services, which tenants cannot reach; use your own server")]
    Platform,
    /// In a range the operator forbids.
    #[error("is in a range this installation forbids (OUTRIGGER_EGRESS_DENY); use another address")]
    Denied,
    /// Private, loopback or link-local, and the operator does not allow those.
    #[error(
        "is a private, loopback or link-local address, which this installation does not call; use a public \
         address, or have the operator set OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS=true or list the range in \
         OUTRIGGER_EGRESS_ALLOW"
    )]
    Private,
}

/// An address the rule refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{target} {reason}")]
pub struct Refused {
    /// What was refused: an address, or a name and the address it resolved to.
    pub target: String,
    /// Why.
    pub reason: Reason,
}

/// Why a component could not be pointed at a host.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The rule refused one of the host's addresses.
    #[error(transparent)]
    Refused(#[from] Refused),
    /// The name did not resolve.
    #[error("cannot resolve {host}: {source}; check the host name")]
    Lookup {
        /// The name.
        host: String,
        /// The resolver's error.
        source: std::io::Error,
    },
}

/// One of the platform's own services: tenants never reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlatformService {
    /// Where it listens: one address, or (`None`) every address of this host — a service on loopback, on an
    /// unspecified address or on one of this host's addresses answers on all of them as far as the rule
    /// can tell.
    ip: Option<IpAddr>,
    port: u16,
}

impl PlatformService {
    /// The service at `address`.
    pub fn at(address: SocketAddr) -> PlatformService {
        let ip = canonical(address.ip());
        PlatformService { ip: (!is_this_host(ip)).then_some(ip), port: address.port() }
    }

    fn covers(&self, address: SocketAddr) -> bool {
        let ip = canonical(address.ip());
        self.port == address.port() && self.ip.map_or_else(|| is_this_host(ip), |own| own == ip)
    }
}

/// What the operator decided tenants may reach. See the module documentation for the order of the checks.
#[derive(Clone, Debug, Default)]
pub struct EgressRule {
    /// Whether private, loopback and link-local addresses are reachable.
    pub private: PrivateAddresses,
    /// The platform's own services.
    pub platform: Vec<PlatformService>,
    /// Ranges never reachable.
    pub denied: Vec<IpNet>,
    /// Ranges reachable even when private addresses are refused.
    pub allowed: Vec<IpNet>,
}

/// The egress rule, cheap to clone and share.
#[derive(Clone, Debug, Default)]
pub struct Egress(Arc<EgressRule>);

impl Egress {
    /// The rule `rule`.
    pub fn new(rule: EgressRule) -> Egress {
        Egress(Arc::new(rule))
    }

    /// Private addresses `private`, nothing else.
    pub fn private(private: PrivateAddresses) -> Egress {
        Egress::new(EgressRule { private, ..EgressRule::default() })
    }

    /// Whether private addresses are reachable (beyond the ranges the operator allows).
    pub fn private_addresses(&self) -> PrivateAddresses {
        self.0.private
    }

    /// Judges one address and port.
    pub fn check(&self, address: SocketAddr) -> Result<(), Refused> {
        let refused = |reason| Err(Refused { target: address.to_string(), reason });
        if self.0.platform.iter().any(|service| service.covers(address)) {
            return refused(Reason::Platform);
        }
        self.check_range(address.ip()).or_else(refused)
    }

    /// The checks that do not depend on the port: what a resolver can judge.
    fn check_range(&self, ip: IpAddr) -> Result<(), Reason> {
        let ip = canonical(ip);
        if self.0.denied.iter().any(|net| net.contains(&ip)) {
            return Err(Reason::Denied);
        }
        if self.0.allowed.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        if self.0.private == PrivateAddresses::Refused && is_private(ip) {
            return Err(Reason::Private);
        }
        Ok(())
    }

    /// Judges a name's addresses, ignoring the port: one refused answer refuses the name, since a resolver
    /// may rotate its answers between calls.
    pub(crate) fn check_resolved(&self, host: &str, addresses: &[SocketAddr]) -> Result<(), Refused> {
        for address in addresses {
            self.check_range(address.ip())
                .map_err(|reason| Refused { target: format!("{host} (resolves to {})", address.ip()), reason })?;
        }
        Ok(())
    }

    /// Checks the host of `url` when it is an IP literal, with the URL's port (names are checked when they
    /// resolve and again on the connected peer).
    pub fn check_url(&self, url: &url::Url) -> Result<(), Refused> {
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.check(SocketAddr::new(literal, url.port_or_known_default().unwrap_or(0)))
    }

    /// Resolves `host` and checks every address it has on `port`: what a component dials. Connect to one of
    /// the addresses returned (not to the name again), so that the address checked is the address used.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, DialError> {
        let lookup_failed = |source| DialError::Lookup { host: host.to_owned(), source };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await.map_err(lookup_failed)?.collect();
        if addresses.is_empty() {
            return Err(lookup_failed(std::io::Error::new(std::io::ErrorKind::NotFound, "no address")));
        }
        for address in &addresses {
            self.check(*address).map_err(|refused| Refused {
                target: if host.parse::<IpAddr>().is_ok() { refused.target } else { format!("{host} ({address})") },
                reason: refused.reason,
            })?;
        }
        Ok(addresses)
    }

    /// The first address of `host` on `port`, checked: what a client that takes one address connects to.
    pub async fn pin(&self, host: &str, port: u16) -> Result<SocketAddr, DialError> {
        Ok(self.resolve(host, port).await?[0])
    }
}

/// IPv4-mapped IPv6 addresses judged as the IPv4 address they carry.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Whether `ip` reaches this host: loopback, unspecified, or one of its interfaces' addresses (which the
/// kernel lets a socket bind to, and no other).
fn is_this_host(ip: IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok()
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

    fn refusing() -> Egress {
        Egress::private(PrivateAddresses::Refused)
    }

    #[test]
    fn literal_urls_are_checked_with_their_port() {
        let url = url::Url::parse("http://169.254.169.254/latest/meta-data").unwrap();
        let refused = refusing().check_url(&url).unwrap_err();
        assert_eq!(refused.target, "169.254.169.254:80");
        assert!(refused.to_string().contains("OUTRIGGER_ALLOW_PRIVATE_ENDPOINTS"));
        assert_eq!(Egress::private(PrivateAddresses::Allowed).check_url(&url), Ok(()));
        let url = url::Url::parse("http://[::1]:8080/").unwrap();
        assert!(refusing().check_url(&url).is_err());
        let url = url::Url::parse("https://example.com/").unwrap();
        assert_eq!(refusing().check_url(&url), Ok(()), "names are checked when they resolve");
    }

    #[test]
    fn the_platforms_own_services_are_refused_whatever_the_operator_allows() {
        let platform = vec![
            PlatformService::at("127.0.0.1:5432".parse().unwrap()),
            PlatformService::at("0.0.0.0:3500".parse().unwrap()),
            PlatformService::at("203.0.113.7:6379".parse().unwrap()),
        ];
        let allowed: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        let egress = Egress::new(EgressRule { platform, allowed, ..EgressRule::default() });
        for target in ["127.0.0.1:5432", "127.0.0.2:5432", "[::1]:5432", "[::ffff:127.0.0.1]:5432", "0.0.0.0:3500"] {
            let refused = egress.check(target.parse().unwrap()).unwrap_err();
            assert_eq!(refused.reason, Reason::Platform, "{target}");
        }
        assert_eq!(egress.check("203.0.113.7:6379".parse().unwrap()).unwrap_err().reason, Reason::Platform);
        for target in ["127.0.0.1:5433", "203.0.113.7:6380", "203.0.113.8:6379", "[::1]:3000"] {
            assert_eq!(egress.check(target.parse().unwrap()), Ok(()), "{target}");
        }
    }

    #[test]
    fn operator_ranges_refuse_first_then_allow() {
        let egress = Egress::new(EgressRule {
            private: PrivateAddresses::Refused,
            denied: vec!["203.0.113.0/24".parse().unwrap(), "10.9.0.0/16".parse().unwrap()],
            allowed: vec!["10.0.0.0/8".parse().unwrap()],
            ..EgressRule::default()
        });
        assert_eq!(egress.check("10.1.2.3:80".parse().unwrap()), Ok(()));
        assert_eq!(egress.check("10.9.2.3:80".parse().unwrap()).unwrap_err().reason, Reason::Denied);
        assert_eq!(egress.check("203.0.113.5:443".parse().unwrap()).unwrap_err().reason, Reason::Denied);
        assert_eq!(egress.check("192.168.1.1:80".parse().unwrap()).unwrap_err().reason, Reason::Private);
        assert_eq!(egress.check("8.8.8.8:53".parse().unwrap()), Ok(()));
    }

    #[tokio::test]
    async fn names_are_judged_on_every_address_they_resolve_to() {
        let error = refusing().resolve("localhost", 6379).await.unwrap_err();
        let DialError::Refused(refused) = error else { panic!("{error}") };
        assert!(refused.target.starts_with("localhost ("), "{refused}");
        let egress = Egress::new(EgressRule {
            platform: vec![PlatformService::at("127.0.0.1:6379".parse().unwrap())],
            ..EgressRule::default()
        });
        assert!(egress.resolve("localhost", 6379).await.is_err());
        assert!(egress.resolve("localhost", 6380).await.is_ok());
    }

    #[tokio::test]
    async fn http_clients_refuse_names_and_literals_on_connect() {
        let error = refusing().client(false).get("http://localhost:9/").send().await.unwrap_err();
        let refused_name = crate::refusal_in(&error).expect("the resolver refused localhost");
        assert!(refused_name.target.starts_with("localhost (resolves to "), "{refused_name}");
        // A literal never reaches the resolver: the connected peer is judged.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let egress = Egress::new(EgressRule {
            platform: vec![PlatformService::at(listener.local_addr().unwrap())],
            ..EgressRule::default()
        });
        let error = egress.client(false).get(format!("http://127.0.0.1:{port}/")).send().await.unwrap_err();
        assert_eq!(crate::refusal_in(&error).map(|refused| &refused.reason), Some(&Reason::Platform), "{error:?}");
    }
}
