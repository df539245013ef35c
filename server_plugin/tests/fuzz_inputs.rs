//! Fuzzing what Edgegap hands a game server about itself: the context API's answer and the
//! `ARBITRIUM_PORTS_MAPPING` variable. Any input gives a context or a typed error naming the
//! variable, never a panic.

use bevygap_server_plugin::edgegap_context::{
    EdgegapContext, EdgegapSettings, PORTS_MAPPING, PUBLIC_IP, REQUEST_ID, from_api, from_env,
};
use bevygap_test_support::fuzz::fuzz;

fn settings() -> EdgegapSettings {
    EdgegapSettings {
        port_name: "gameport".into(),
        app_name: "bevygap-spaceships".into(),
        app_version: "1".into(),
        capacity: 8,
    }
}

#[test]
fn the_context_api_answer_gives_a_context_or_a_typed_error() {
    let seeds: [&[u8]; 2] = [
        br#"{"request_id":"a1b2c3","public_ip":"203.0.113.7","fqdn":"a1b2c3.pr.edgegap.net",
            "ports":{"gameport":{"internal":6420,"external":31500,"protocol":"UDP","name":"gameport"}},
            "location":{"city":"Frankfurt","country":"Germany","continent":"Europe","latitude":50.1,"longitude":8.7}}"#,
        br#"{"request_id":"x","public_ip":"::1","ports":{"a":{"internal":1,"external":2}}}"#,
    ];
    let report = fuzz("Edgegap context API", &seeds, |bytes| {
        let Ok(api) = serde_json::from_slice::<EdgegapContext>(bytes) else {
            return false;
        };
        match from_api(api, &settings()) {
            Ok(context) => {
                assert!(context.public_addr.port() > 0 || context.public_addr.port() == 0);
                true
            }
            Err(error) => {
                let _ = error.to_string();
                false
            }
        }
    });
    assert!(report.accepted > 0, "the fuzzer reached past the parser");
}

#[test]
fn the_ports_mapping_variable_gives_a_context_or_a_typed_error() {
    let seeds: [&[u8]; 1] = [
        br#"{"ports":{"gameport":{"internal":6420,"external":31500,"protocol":"UDP","name":"gameport"}}}"#,
    ];
    fuzz("ARBITRIUM_PORTS_MAPPING", &seeds, |bytes| {
        let mapping = String::from_utf8_lossy(bytes).into_owned();
        let lookup = |name: &str| match name {
            REQUEST_ID => Some("a1b2c3".to_owned()),
            PUBLIC_IP => Some("203.0.113.7".to_owned()),
            PORTS_MAPPING => Some(mapping.clone()),
            _ => None,
        };
        match from_env(lookup, &settings()) {
            Ok(_) => true,
            Err(error) => {
                let _ = error.to_string();
                false
            }
        }
    });
}
