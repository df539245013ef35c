//! Queue tickets pooled across matchmakers, on a real nats-server: players waiting on two
//! matchmakers of one app are matched together on one server; many players spread over both
//! are each matched exactly once, with no seat sold twice; a player who leaves is gone from the
//! pool, and from the other matchmaker's view, at once.

#![allow(clippy::unwrap_used)] // a test fails loudly at the first broken expectation

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bevygap_matchmaker::app::FleetChoice;
use bevygap_matchmaker::intake::limits::Limits;
use bevygap_matchmaker::kv_bridge::KvStores;
use bevygap_matchmaker::queues::QueueProfiles;
use bevygap_matchmaker::{MatchmakerHandle, spawn_matchmaker};
use bevygap_shared::names::AppNames;
use bevygap_shared::nats::{NatsSettings, connect};
use bevygap_shared::protocol::seed_json::SeedResponse;
use bevygap_shared::schema::{SeatRecord, decode, encode};
use bevygap_test_support::{NatsServer, free_tcp_port, wait_until_async};
use futures::future::join_all;
use futures::{SinkExt, StreamExt};
use support::app_harness::{WAIT, app_config, rpc, seed_conversation};
use support::core_harness::{GAME, VERSION, lease};
use tokio_tungstenite::tungstenite::Message;

const DUEL: &str =
    "[[queue]]\nname = \"duel\"\nteams = 2\nteam_size = { min = 1, max = 1 }\nmax_wait_secs = 60\n";

fn duel() -> String {
    format!(r#"{{"game":"{GAME}","version":"{VERSION}","queue":"duel"}}"#)
}

/// Two matchmakers with the duel queue on one NATS, the app's buckets, and their inspection
/// ports; each has seen the other.
async fn two_matchmakers(nats_server: &NatsServer) -> (Vec<MatchmakerHandle>, Vec<u16>, KvStores) {
    let mut matchmakers = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..2 {
        let port = free_tcp_port().unwrap();
        let mut config = app_config(
            nats_server,
            Limits {
                max_connections_per_ip: 1000,
                ..Limits::default()
            },
            port,
            FleetChoice::Static,
        );
        config.placement.queues = QueueProfiles::from_toml(DUEL).unwrap();
        config.log_filter = std::env::var("TEST_LOG").ok();
        ports.push(port);
        matchmakers.push(
            tokio::task::spawn_blocking(move || spawn_matchmaker(config))
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let nats = connect(&NatsSettings::insecure(nats_server.address()), "test")
        .await
        .unwrap();
    let stores = KvStores::open(&nats, &AppNames::new(GAME).unwrap(), 1)
        .await
        .unwrap();
    for port in &ports {
        wait_until_async("each matchmaker to count two", WAIT, || async {
            let summary = rpc(*port, "bevygap/summary", serde_json::Value::Null).await;
            (summary["result"]["matchmakers"] == 2).then_some(())
        })
        .await;
    }
    (matchmakers, ports, stores)
}

/// Registers `count` empty servers of two seats (a duel takes an empty server) and waits until
/// both matchmakers see them all.
async fn servers(stores: &KvStores, ports: &[u16], count: u16) {
    for i in 0..count {
        let id = format!("dep-{i}");
        stores
            .leases
            .put(id.as_str(), encode(&lease(&id, 2, 7000 + i)).into())
            .await
            .unwrap();
    }
    for port in ports {
        wait_until_async("each matchmaker to see every server", WAIT, || async {
            let summary = rpc(*port, "bevygap/summary", serde_json::Value::Null).await;
            let seen = summary["result"]["deployments"]
                .as_array()
                .map_or(0, Vec::len);
            (seen == usize::from(count)).then_some(())
        })
        .await;
    }
}

/// Every seat record in the ledger now.
async fn ledger_seats(stores: &KvStores) -> Vec<SeatRecord> {
    let mut seats = Vec::new();
    let mut keys = stores.seats.store().keys().await.unwrap();
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        if let Some(value) = stores.seats.store().get(&key).await.unwrap() {
            seats.push(decode::<SeatRecord>(&value).unwrap());
        }
    }
    seats
}

/// How many tickets the pool holds now.
async fn pooled(stores: &KvStores) -> usize {
    let mut count = 0;
    let mut keys = stores.queue_tickets.keys().await.unwrap();
    while let Some(key) = keys.next().await {
        key.unwrap();
        count += 1;
    }
    count
}

/// A match answer: team, teams and the server of its one session.
fn match_ready(replies: &[SeedResponse]) -> (u32, u32, (String, u16)) {
    match replies.last() {
        Some(SeedResponse::MatchReady {
            team,
            teams,
            sessions,
        }) => {
            assert_eq!(sessions.len(), 1, "{replies:?}");
            (*team, *teams, (sessions[0].ip.clone(), sessions[0].port))
        }
        other => panic!("a match for every player, got {other:?} after {replies:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn players_waiting_on_two_matchmakers_play_one_match() {
    let nats_server = NatsServer::start().unwrap();
    let (matchmakers, ports, stores) = two_matchmakers(&nats_server).await;
    servers(&stores, &ports, 1).await;

    // One player on each matchmaker: neither has a match alone.
    let (url_a, url_b, request) = (matchmakers[0].seed_url(), matchmakers[1].seed_url(), duel());
    let (a, b) = tokio::join!(
        seed_conversation(&url_a, &request),
        seed_conversation(&url_b, &request),
    );
    let (team_a, teams, server_a) = match_ready(&a.0);
    let (team_b, _, server_b) = match_ready(&b.0);
    assert_eq!(teams, 2);
    assert_ne!(team_a, team_b, "one player on each team");
    assert_eq!(server_a, server_b, "both on one server");
    assert_eq!(server_a.1, 7000);

    // Two seats sold, and the pool is empty again: each owner deleted its answered ticket.
    let seats = ledger_seats(&stores).await;
    assert_eq!(seats.len(), 2, "{seats:?}");
    wait_until_async("the pool to empty", WAIT, || async {
        (pooled(&stores).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn players_spread_over_two_matchmakers_are_each_matched_once() {
    let nats_server = NatsServer::start().unwrap();
    let (matchmakers, ports, stores) = two_matchmakers(&nats_server).await;
    const PLAYERS: usize = 12;
    servers(&stores, &ports, (PLAYERS / 2) as u16).await;

    // Twelve players at once, alternating between the matchmakers: both look at every ticket,
    // and their claims race.
    let urls: Vec<String> = (0..PLAYERS)
        .map(|i| matchmakers[i % 2].seed_url())
        .collect();
    let heard: Vec<Arc<Mutex<Vec<SeedResponse>>>> = (0..PLAYERS).map(|_| Arc::default()).collect();
    let conversations = join_all(urls.iter().zip(&heard).map(|(url, heard)| async move {
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        ws.send(Message::Text(duel().into())).await.unwrap();
        while let Some(Ok(message)) = ws.next().await {
            match message {
                Message::Text(text) => heard
                    .lock()
                    .unwrap()
                    .push(SeedResponse::parse(text.as_str()).unwrap()),
                Message::Close(_) => break,
                _ => {}
            }
        }
        heard.lock().unwrap().clone()
    }));
    let Ok(replies) = tokio::time::timeout(WAIT / 2, conversations).await else {
        let mut views = Vec::new();
        for port in &ports {
            views.push(rpc(*port, "bevygap/summary", serde_json::Value::Null).await);
        }
        let heard: Vec<Vec<SeedResponse>> =
            heard.iter().map(|h| h.lock().unwrap().clone()).collect();
        panic!(
            "not every player was answered: they heard {heard:#?}; the matchmakers see {views:#?}"
        );
    };
    // Every player is matched; each server holds exactly one duel, one player per team.
    let mut by_server: HashMap<(String, u16), Vec<u32>> = HashMap::new();
    for reply in &replies {
        let (team, _, server) = match_ready(reply);
        by_server.entry(server).or_default().push(team);
    }
    assert_eq!(by_server.len(), PLAYERS / 2, "{by_server:?}");
    for teams in by_server.values_mut() {
        teams.sort_unstable();
        assert_eq!(teams, &[0, 1]);
    }
    // The ledger holds one seat per player, each for a different client.
    let seats = ledger_seats(&stores).await;
    let clients: HashSet<u64> = seats.iter().filter_map(|s| s.client_id()).collect();
    assert_eq!(
        (seats.len(), clients.len()),
        (PLAYERS, PLAYERS),
        "{seats:?}"
    );
    wait_until_async("the pool to empty", WAIT, || async {
        (pooled(&stores).await == 0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_player_who_leaves_is_gone_from_every_matchmaker() {
    let nats_server = NatsServer::start().unwrap();
    let (matchmakers, ports, stores) = two_matchmakers(&nats_server).await;

    // A player waits on the second matchmaker; the first mirrors the ticket.
    let (mut ws, _) = tokio_tungstenite::connect_async(matchmakers[1].seed_url())
        .await
        .unwrap();
    ws.send(Message::Text(duel().into())).await.unwrap();
    let summary = |port: u16| async move {
        rpc(port, "bevygap/summary", serde_json::Value::Null).await["result"]["tickets"].clone()
    };
    wait_until_async(
        "the first matchmaker to mirror the ticket",
        WAIT,
        || async {
            let tickets = summary(ports[0]).await;
            (tickets["pooled_from_others"] == 1 && tickets["in_queue"] == 0).then_some(())
        },
    )
    .await;
    assert_eq!(pooled(&stores).await, 1);

    // The player closes the socket: the ticket leaves the pool and the mirror goes.
    ws.close(None).await.unwrap();
    drop(ws);
    wait_until_async("the mirror to go", WAIT, || async {
        let tickets = summary(ports[0]).await;
        (tickets["pooled_from_others"] == 0).then_some(())
    })
    .await;
    assert_eq!(pooled(&stores).await, 0);
    assert_eq!(summary(ports[1]).await["in_queue"], 0);
}
