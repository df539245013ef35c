//! A small mutation fuzzer that runs on stable Rust, for the decoders that read what peers send.
//!
//! Each run starts from seed inputs (valid messages and records), mutates them — bit flips,
//! interesting bytes (`"`, `{`, `]`, `\`, 0, 0xff, digits), inserted and deleted runs, repeated
//! slices, splices of two seeds, truncation — and sometimes tries plain random bytes. The target
//! must return without panicking; a panic fails the run with the input (hex and escaped text) and
//! the seed that reproduces it.
//!
//! How long: `BEVYGAP_FUZZ_SECS` (what `ci/fuzz.sh` sets) or else `BEVYGAP_FUZZ_CASES` inputs per
//! target (default [`DEFAULT_CASES`], what the test command runs). `BEVYGAP_FUZZ_SEED` replays a
//! run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// Inputs per target in the test command.
pub const DEFAULT_CASES: u64 = 20_000;

/// The largest input the fuzzer builds.
pub const MAX_INPUT: usize = 16 * 1024;

/// What one fuzz run did.
#[derive(Debug, Clone, Copy)]
pub struct FuzzReport {
    /// Inputs tried.
    pub cases: u64,
    /// How many the target accepted (returned `true` for).
    pub accepted: u64,
}

/// Runs `target` on mutated `seeds` for the configured budget; panics with a reproducible report
/// if the target panics. `target` returns whether it accepted the input (counted in the report,
/// so a run can show it reached past the first parse).
pub fn fuzz(name: &str, seeds: &[&[u8]], target: impl Fn(&[u8]) -> bool) -> FuzzReport {
    let seed = std::env::var("BEVYGAP_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    let deadline = std::env::var("BEVYGAP_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(|secs| Instant::now() + Duration::from_secs(secs));
    let cases = std::env::var("BEVYGAP_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut rng = Rng(seed | 1);
    let mut report = FuzzReport {
        cases: 0,
        accepted: 0,
    };
    loop {
        let more = match deadline {
            Some(at) => Instant::now() < at,
            None => report.cases < cases,
        };
        if !more {
            break;
        }
        let input = next_input(&mut rng, seeds);
        report.cases += 1;
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(true) => report.accepted += 1,
            Ok(false) => {}
            Err(_) => panic!(
                "fuzz target `{name}` panicked on input #{} (replay with BEVYGAP_FUZZ_SEED={seed}):\n  hex: {}\n  text: {}",
                report.cases,
                hex(&input),
                String::from_utf8_lossy(&input).escape_debug()
            ),
        }
    }
    eprintln!(
        "fuzz `{name}`: {} inputs, {} accepted (seed {seed})",
        report.cases, report.accepted
    );
    report
}

/// splitmix64: small, fast and good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING: &[u8] = b"\"{}[]:,\\0123456789-+.eE \n\t\x00\xff\x7f\x80\xc0";

fn next_input(rng: &mut Rng, seeds: &[&[u8]]) -> Vec<u8> {
    if seeds.is_empty() || rng.below(16) == 0 {
        let len = rng.below(256);
        return (0..len).map(|_| rng.next() as u8).collect();
    }
    let mut input = seeds[rng.below(seeds.len())].to_vec();
    for _ in 0..=rng.below(8) {
        mutate(rng, &mut input, seeds);
    }
    input.truncate(MAX_INPUT);
    input
}

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, seeds: &[&[u8]]) {
    let len = input.len();
    match rng.below(8) {
        0 if len > 0 => {
            let at = rng.below(len);
            input[at] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let at = rng.below(len);
            input[at] = INTERESTING[rng.below(INTERESTING.len())];
        }
        2 => {
            let at = rng.below(len + 1);
            let run: Vec<u8> = (0..=rng.below(8))
                .map(|_| INTERESTING[rng.below(INTERESTING.len())])
                .collect();
            input.splice(at..at, run);
        }
        3 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(16)).min(len);
            input.drain(at..end);
        }
        4 if len > 0 => {
            let at = rng.below(len);
            let end = (at + 1 + rng.below(32)).min(len);
            let slice = input[at..end].to_vec();
            let to = rng.below(input.len() + 1);
            for _ in 0..=rng.below(4) {
                input.splice(to..to, slice.iter().copied());
            }
        }
        5 if !seeds.is_empty() => {
            let other = seeds[rng.below(seeds.len())];
            let cut = rng.below(len + 1);
            let from = rng.below(other.len() + 1);
            input.truncate(cut);
            input.extend_from_slice(&other[from..]);
        }
        6 if len > 0 => input.truncate(rng.below(len)),
        _ => {
            // A number somewhere: large, negative or not a number at all.
            let at = rng.below(len + 1);
            let numbers: [&[u8]; 6] = [
                b"18446744073709551616",
                b"-1",
                b"1e309",
                b"4294967296",
                b"NaN",
                b"0.5",
            ];
            input.splice(at..at, numbers[rng.below(numbers.len())].iter().copied());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_target_is_reported_with_its_input() {
        let caught = catch_unwind(|| {
            fuzz("finds-a-brace", &[b"{}"], |input| {
                assert!(!input.starts_with(b"{}}"), "found it");
                true
            })
        });
        let message = caught.expect_err("the fuzzer finds `{}}` from `{}`");
        let text = message
            .downcast_ref::<String>()
            .cloned()
            .unwrap_or_default();
        assert!(
            text.contains("finds-a-brace") && text.contains("BEVYGAP_FUZZ_SEED"),
            "{text}"
        );
    }
}
