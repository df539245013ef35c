//! NATS KV bucket names, keys and subjects, all built here and prefixed by the app name.
//!
//! | bucket | key | value |
//! |---|---|---|
//! | `{app}_leases` | `{deployment_id}` | [`DeploymentLease`](crate::schema::DeploymentLease) |
//! | `{app}_reservations` (the seat ledger) | `{deployment_id}.{seat}` | [`SeatRecord`](crate::schema::SeatRecord) |
//! | `{app}_connections` | `{deployment_id}.{client_id}` | [`ActiveConnection`](crate::schema::ActiveConnection) |
//! | `{app}_matchmakers` | `{instance_id}` | the process's start time (presence, by heartbeat) |
//! | `{app}_queue_tickets` | `{ticket_id}` | [`PooledTicket`](crate::schema::PooledTicket) |
//!
//! Keys are dot-separated [`KeyToken`]s, so a game server watches `{deployment_id}.>` to see only its
//! own seats. A token never holds `.`, `*`, `>` or whitespace; IP addresses are encoded with
//! [`encode_ip`] rather than used raw (IPv4 dots and IPv6 colons are not valid in tokens).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::error::NameError;

/// The longest key token accepted.
pub const MAX_TOKEN_LEN: usize = 64;

/// One validated token of a NATS key or subject: ASCII letters, digits, `-` and `_`, 1 to
/// [`MAX_TOKEN_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyToken(String);

impl KeyToken {
    /// Validates `value` as a token; `what` names it in the error ("deployment id", ...).
    pub fn new(what: &'static str, value: impl Into<String>) -> Result<Self, NameError> {
        let value = value.into();
        validate_token(what, &value)?;
        Ok(Self(value))
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn validate_token(what: &'static str, value: &str) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { what });
    }
    if value.len() > MAX_TOKEN_LEN {
        return Err(NameError::TooLong {
            what,
            len: value.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    if let Some(found) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(NameError::InvalidChar {
            what,
            value: value.to_owned(),
            found,
        });
    }
    Ok(())
}

/// Every bucket name and subject of one app, built from its validated name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppNames {
    app: KeyToken,
}

impl AppNames {
    /// Validates the app name (a [`KeyToken`]) and builds the names from it.
    pub fn new(app_name: &str) -> Result<Self, NameError> {
        Ok(Self {
            app: KeyToken::new("app name", app_name)?,
        })
    }

    /// The app name.
    pub fn app(&self) -> &str {
        self.app.as_str()
    }

    /// Bucket of game server leases, one key per deployment.
    pub fn leases_bucket(&self) -> String {
        format!("{}_leases", self.app)
    }

    /// Bucket of the seat ledger: one key per seat (see [`SeatRecord`](crate::schema::SeatRecord)).
    pub fn reservations_bucket(&self) -> String {
        format!("{}_reservations", self.app)
    }

    /// Bucket of active connections, written by game servers.
    pub fn connections_bucket(&self) -> String {
        format!("{}_connections", self.app)
    }

    /// Bucket of fleet removals (stops and session deletes) not yet confirmed by the provider,
    /// kept so they resume after a matchmaker restart.
    pub fn fleet_removals_bucket(&self) -> String {
        format!("{}_fleet_removals", self.app)
    }

    /// Bucket of fleet allocations in flight (servers being started), kept so that another
    /// matchmaker takes over those of a process that died.
    pub fn fleet_allocations_bucket(&self) -> String {
        format!("{}_fleet_allocations", self.app)
    }

    /// Bucket of live matchmakers: one key per running process, kept by heartbeat, so each knows
    /// how many share the app (and so the provider's rate budget).
    pub fn matchmakers_bucket(&self) -> String {
        format!("{}_matchmakers", self.app)
    }

    /// Bucket of the queue tickets shared by the app's matchmakers: one key per ticket, so that
    /// players waiting on different matchmakers are matched together (see
    /// [`PooledTicket`](crate::schema::PooledTicket)).
    pub fn queue_tickets_bucket(&self) -> String {
        format!("{}_queue_tickets", self.app)
    }

    /// Prefix of a game server's reply subjects: its own, so a NATS user scoped to the
    /// deployment receives its replies and no one else's.
    pub fn gameserver_inbox_prefix(&self, deployment: &KeyToken) -> String {
        format!("_INBOX.{}.{deployment}", self.app)
    }

    /// Subject on which operators and tools may publish matchmaker commands.
    pub fn matchmaker_subject(&self) -> String {
        format!("{}.matchmaker", self.app)
    }
}

/// Key of a lease: the deployment id.
pub fn lease_key(deployment: &KeyToken) -> String {
    deployment.to_string()
}

/// Key of an active connection: `{deployment_id}.{client_id}`.
pub fn client_key(deployment: &KeyToken, client_id: u64) -> String {
    format!("{deployment}.{client_id}")
}

/// Filter matching every reservation or connection key of one deployment: `{deployment_id}.>`.
pub fn deployment_filter(deployment: &KeyToken) -> String {
    format!("{deployment}.>")
}

/// Key of a seat in the seat ledger: `{deployment_id}.{seat}`.
pub fn seat_key(deployment: &KeyToken, seat: u32) -> String {
    format!("{deployment}.{seat}")
}

/// Splits a `{deployment_id}.{seat}` key; `None` when the key has another shape.
pub fn parse_seat_key(key: &str) -> Option<(KeyToken, u32)> {
    let (deployment, seat) = key.split_once('.')?;
    let deployment = KeyToken::new("deployment id", deployment).ok()?;
    Some((deployment, seat.parse().ok()?))
}

/// Splits a `{deployment_id}.{client_id}` key; `None` when the key has another shape.
pub fn parse_client_key(key: &str) -> Option<(KeyToken, u64)> {
    let (deployment, client) = key.split_once('.')?;
    let deployment = KeyToken::new("deployment id", deployment).ok()?;
    Some((deployment, client.parse().ok()?))
}

/// Encodes an IP address as a key token: IPv4 `10.0.0.1` → `10-0-0-1`, IPv6 `::1` →
/// `0_0_0_0_0_0_0_1` (all eight groups, hex, `_`-separated). [`decode_ip`] reverses it.
pub fn encode_ip(ip: IpAddr) -> KeyToken {
    let text = match ip {
        IpAddr::V4(v4) => v4
            .octets()
            .iter()
            .map(u8::to_string)
            .collect::<Vec<_>>()
            .join("-"),
        IpAddr::V6(v6) => v6
            .segments()
            .iter()
            .map(|s| format!("{s:x}"))
            .collect::<Vec<_>>()
            .join("_"),
    };
    KeyToken(text)
}

/// Decodes a token made by [`encode_ip`].
pub fn decode_ip(token: &str) -> Option<IpAddr> {
    if token.contains('-') {
        let octets: Vec<u8> = token
            .split('-')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        let octets: [u8; 4] = octets.try_into().ok()?;
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    let segments: Vec<u16> = token
        .split('_')
        .map(|s| u16::from_str_radix(s, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let segments: [u16; 8] = segments.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(segments)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_prefixed_by_the_app_name() {
        let names = AppNames::new("my-game").unwrap();
        assert_eq!(names.leases_bucket(), "my-game_leases");
        assert_eq!(names.reservations_bucket(), "my-game_reservations");
        assert_eq!(names.connections_bucket(), "my-game_connections");
        assert_eq!(names.fleet_removals_bucket(), "my-game_fleet_removals");
        assert_eq!(names.matchmaker_subject(), "my-game.matchmaker");
    }

    #[test]
    fn tokens_reject_wildcards_dots_and_whitespace() {
        for bad in ["a.b", "a*", ">", "a b", "tab\t", "ünï"] {
            assert!(
                matches!(
                    KeyToken::new("test", bad),
                    Err(NameError::InvalidChar { .. })
                ),
                "{bad:?} accepted"
            );
        }
        assert_eq!(
            KeyToken::new("test", ""),
            Err(NameError::Empty { what: "test" })
        );
        assert!(matches!(
            KeyToken::new("test", "x".repeat(MAX_TOKEN_LEN + 1)),
            Err(NameError::TooLong { .. })
        ));
        assert!(AppNames::new("bad.app").is_err());
    }

    #[test]
    fn client_keys_round_trip() {
        let deployment = KeyToken::new("deployment id", "dep-1").unwrap();
        let key = client_key(&deployment, 42);
        assert_eq!(key, "dep-1.42");
        assert_eq!(parse_client_key(&key), Some((deployment.clone(), 42)));
        assert_eq!(deployment_filter(&deployment), "dep-1.>");
        assert_eq!(parse_client_key("dep-1"), None);
        assert_eq!(parse_client_key("dep-1.x"), None);
    }

    #[test]
    fn ip_addresses_are_encoded_not_used_raw() {
        for ip in [
            "127.0.0.1",
            "::1",
            "2001:db8::ff00:42:8329",
            "255.255.255.255",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let token = encode_ip(ip);
            assert!(KeyToken::new("ip", token.as_str()).is_ok(), "{token}");
            assert_eq!(decode_ip(token.as_str()), Some(ip));
        }
        assert_eq!(decode_ip("1-2-3"), None);
        assert_eq!(decode_ip("zz"), None);
    }
}
