//! Connection caps, message rate limits, and the client address behind trusted proxies.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

/// Limits applied to clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Most client connections at once, per endpoint.
    pub max_connections: usize,
    /// Most connections at once from one IP (seed endpoint).
    pub max_connections_per_ip: usize,
    /// Messages per second a connection may send (burst of the same size).
    pub messages_per_second: u32,
    /// How long a seed-endpoint client may take to send its request.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 4096,
            max_connections: 20_000,
            max_connections_per_ip: 64,
            messages_per_second: 10,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Counts open connections per IP and in total.
#[derive(Debug, Clone)]
pub struct ConnectionLimiter {
    max_total: usize,
    max_per_ip: usize,
    counts: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionRefused {
    /// The matchmaker is at its connection limit.
    #[error("the matchmaker is at its connection limit; retry shortly")]
    Full,
    /// This IP has too many connections open.
    #[error("too many connections from your address")]
    TooManyFromIp,
}

/// Holds one connection slot; released on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    ip: IpAddr,
    counts: Arc<Mutex<(usize, HashMap<IpAddr, usize>)>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        counts.0 = counts.0.saturating_sub(1);
        if let Some(n) = counts.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.1.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimiter {
    /// A limiter with these caps.
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            max_total,
            max_per_ip,
            counts: Arc::default(),
        }
    }

    /// Takes a slot for `ip`, or says why not.
    pub fn acquire(&self, ip: IpAddr) -> Result<ConnectionSlot, ConnectionRefused> {
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if counts.0 >= self.max_total {
            return Err(ConnectionRefused::Full);
        }
        let per_ip = counts.1.entry(ip).or_insert(0);
        if *per_ip >= self.max_per_ip {
            return Err(ConnectionRefused::TooManyFromIp);
        }
        *per_ip += 1;
        counts.0 += 1;
        Ok(ConnectionSlot {
            ip,
            counts: self.counts.clone(),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).0
    }
}

/// A token bucket: `rate` messages per second with a burst of `rate`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            tokens: rate,
            last: Instant::now(),
        }
    }

    /// Takes one token; false when the client is over its rate.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        self.tokens =
            (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The client's IP: the socket peer, unless the peer is a trusted proxy, in which case the
/// right-most `X-Forwarded-For` address that is not itself a trusted proxy.
pub fn client_ip(peer: SocketAddr, headers: &HeaderMap, trusted_proxies: &[IpAddr]) -> IpAddr {
    let peer_ip = peer.ip();
    if !trusted_proxies.contains(&peer_ip) {
        return peer_ip;
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .rev()
        .find(|ip| !trusted_proxies.contains(ip))
        .unwrap_or(peer_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_honoured_only_from_trusted_proxies() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let from_proxy = SocketAddr::new(proxy, 1);
        let stranger: SocketAddr = "198.51.100.1:1".parse().unwrap();
        assert_eq!(client_ip(stranger, &headers, &[proxy]), stranger.ip());
        assert_eq!(
            client_ip(from_proxy, &headers, &[proxy]),
            "203.0.113.7".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(from_proxy, &HeaderMap::new(), &[proxy]), proxy);
    }

    #[test]
    fn connection_slots_are_capped_per_ip_and_released_on_drop() {
        let limiter = ConnectionLimiter::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let s1 = limiter.acquire(a).unwrap();
        let _s2 = limiter.acquire(a).unwrap();
        assert_eq!(
            limiter.acquire(a).unwrap_err(),
            ConnectionRefused::TooManyFromIp
        );
        let _s3 = limiter.acquire(b).unwrap();
        assert_eq!(limiter.acquire(b).unwrap_err(), ConnectionRefused::Full);
        drop(s1);
        assert!(limiter.acquire(a).is_ok());
    }

    #[test]
    fn the_rate_limiter_allows_a_burst_then_refuses() {
        let mut limiter = RateLimiter::new(3);
        assert!((0..3).all(|_| limiter.allow()));
        assert!(!limiter.allow());
    }
}
