//! Operator jobs on the Edgegap app, behind the `bevygap_edgegap` command.

use bevygap_shared::nats::normalize_pem;

use super::error::EdgegapError;

/// The start argument that hands game servers the NATS CA: `--ca_contents '<PEM on one line>'`.
///
/// Edgegap limits environment values to 255 bytes, too few for a CA certificate, so the seed
/// passes it as an argument of the app version instead. The PEM is put on one line (the server
/// plugin restores its line breaks); it must hold at least one certificate and no quote.
pub fn ca_argument(pem: &str) -> Result<String, EdgegapError> {
    let normalized = normalize_pem(pem);
    if !normalized.contains("-----BEGIN CERTIFICATE-----") {
        return Err(EdgegapError::BadRequest(
            "the CA file holds no PEM certificate".into(),
        ));
    }
    let one_line: String = normalized.lines().collect();
    if one_line.contains('\'') {
        return Err(EdgegapError::BadRequest(
            "the CA file contains a quote".into(),
        ));
    }
    Ok(format!("--ca_contents '{one_line}'"))
}

/// `arguments` with any earlier `--ca_contents '…'` replaced by `ca_argument`, other arguments kept.
pub fn with_ca_argument(arguments: Option<&str>, ca_argument: &str) -> String {
    let mut kept = String::new();
    let mut rest = arguments.unwrap_or_default();
    while let Some(start) = rest.find("--ca_contents") {
        kept.push_str(&rest[..start]);
        let after = rest[start + "--ca_contents".len()..].trim_start();
        rest = match after.strip_prefix('\'') {
            Some(quoted) => quoted.find('\'').map_or("", |end| &quoted[end + 1..]),
            None => after
                .find(char::is_whitespace)
                .map_or("", |end| &after[end..]),
        };
    }
    kept.push_str(rest);
    let kept = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    if kept.is_empty() {
        ca_argument.to_owned()
    } else {
        format!("{kept} {ca_argument}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\nAAAA\n-----END CERTIFICATE-----\n";

    #[test]
    fn the_ca_becomes_one_quoted_argument() {
        assert_eq!(
            ca_argument(PEM).unwrap(),
            "--ca_contents '-----BEGIN CERTIFICATE-----MIIBAAAA-----END CERTIFICATE-----'"
        );
        assert!(ca_argument("hello").is_err());
    }

    #[test]
    fn an_earlier_ca_argument_is_replaced_and_others_kept() {
        let new = ca_argument(PEM).unwrap();
        assert_eq!(with_ca_argument(None, &new), new);
        assert_eq!(
            with_ca_argument(
                Some("--capacity 4 --ca_contents 'old' --transport udp"),
                &new
            ),
            format!("--capacity 4 --transport udp {new}")
        );
    }
}
