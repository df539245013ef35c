//! Queue profiles: how a queue groups tickets into matches, read from the `--queues` file (TOML or
//! JSON) and validated before the matchmaker starts.
//!
//! ```toml
//! [[queue]]
//! name = "ranked-2v2"
//! teams = 2
//! team_size = { min = 2, max = 2 }
//! max_wait_secs = 120
//! # After 30 s, a match may start with teams of at least `min` (here: the same).
//! partial_after_secs = 30
//!
//! [[queue.rules]]
//! kind = "difference"     # players' numbers within a window that widens while they wait
//! attribute = "skill"
//! max = 100
//! expand = [{ after_secs = 10, max = 200 }, { after_secs = 30, max = 400 }]
//!
//! [[queue.rules]]
//! kind = "equal"          # the same string for everyone
//! attribute = "mode"
//!
//! [[queue.rules]]
//! kind = "intersect"      # at least one member in common
//! attribute = "languages"
//!
//! [[queue.rules]]
//! kind = "latency"        # one region where everyone's ping is within the window
//! max_ms = 60
//! expand = [{ after_secs = 20, max = 120 }]
//! ```

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

/// Most teams in a match.
pub const MAX_TEAMS: u32 = 16;
/// Most players on a team.
pub const MAX_TEAM_SIZE: u32 = 64;
/// The longest a ticket may wait in any queue.
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// Why the `--queues` file cannot be used. The operator's file is at fault; each message names
/// the queue and the setting to fix.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum QueueConfigError {
    /// The file could not be read.
    #[error("cannot read the queues file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not `.toml` or `.json`.
    #[error("the queues file {0} must end in .toml or .json")]
    Format(String),
    /// The file does not parse as queue profiles.
    #[error("the queues file {path} does not parse: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (with the line).
        message: String,
    },
    /// The file defines no queue.
    #[error("the queues file defines no [[queue]]")]
    Empty,
    /// A queue's name is empty, too long, or not letters, digits, `-` and `_`.
    #[error("queue name {0:?}: use 1 to 64 ASCII letters, digits, '-' and '_'")]
    Name(String),
    /// Two queues share a name.
    #[error("queue {0:?} is defined twice")]
    Duplicate(String),
    /// A setting of a queue is out of its range.
    #[error("queue {queue:?}: {setting} {problem}")]
    Setting {
        /// The queue.
        queue: String,
        /// The setting (e.g. `team_size`).
        setting: String,
        /// What is wrong, and what is allowed.
        problem: String,
    },
}

/// A window that widens while a ticket waits: `base` at first, then each step's value once the
/// ticket has waited its `after`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    /// The window at first.
    pub base: f64,
    /// Later windows, by wait, in increasing order of both.
    pub steps: Vec<(Duration, f64)>,
}

impl Expansion {
    /// The window after waiting `waited`.
    pub fn at(&self, waited: Duration) -> f64 {
        self.steps
            .iter()
            .take_while(|(after, _)| *after <= waited)
            .last()
            .map_or(self.base, |(_, value)| *value)
    }

    /// How many steps have been reached after `waited` (0: the base window).
    pub fn step_at(&self, waited: Duration) -> usize {
        self.steps
            .iter()
            .take_while(|(after, _)| *after <= waited)
            .count()
    }
}

/// A rule every match of the queue satisfies, at the windows of the time it is made.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// The players' numbers differ by at most the window (largest minus smallest).
    Difference {
        /// The number attribute.
        attribute: String,
        /// The window.
        window: Expansion,
    },
    /// Everyone has the same string.
    Equal {
        /// The string attribute.
        attribute: String,
    },
    /// Everyone's sets share at least one member.
    Intersect {
        /// The set attribute.
        attribute: String,
    },
    /// There is a region where every player's ping is within the window (milliseconds).
    Latency {
        /// The window, in milliseconds.
        window: Expansion,
    },
}

/// One queue: teams, sizes, waits and rules.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueProfile {
    /// The queue's name (what clients ask for).
    pub name: String,
    /// The game versions it serves (empty: every version the matchmaker serves).
    pub versions: Vec<String>,
    /// Teams per match.
    pub teams: u32,
    /// Players per team, at least (for a partial match).
    pub team_min: u32,
    /// Players per team, at most (a full match).
    pub team_max: u32,
    /// After this wait, a match may start with every team at `team_min` or more; `None`: full
    /// matches only.
    pub partial_after: Option<Duration>,
    /// A ticket not matched within this wait fails.
    pub max_wait: Duration,
    /// The rules.
    pub rules: Vec<Rule>,
}

impl QueueProfile {
    /// Players in a full match.
    pub fn full_size(&self) -> u32 {
        self.teams * self.team_max
    }

    /// The windows of every widening rule after waiting `waited`, and how many steps they reached.
    pub fn widening_steps(&self, waited: Duration) -> usize {
        self.rules
            .iter()
            .map(|rule| match rule {
                Rule::Difference { window, .. } | Rule::Latency { window } => {
                    window.step_at(waited)
                }
                Rule::Equal { .. } | Rule::Intersect { .. } => 0,
            })
            .sum()
    }
}

/// The queues of a matchmaker.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueProfiles(pub Vec<QueueProfile>);

impl QueueProfiles {
    /// Reads and validates a `.toml` or `.json` file.
    pub fn load(path: &Path) -> Result<Self, QueueConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| QueueConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: QueuesFile = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => toml::from_str(&text).map_err(|e| QueueConfigError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?,
            Some("json") => serde_json::from_str(&text).map_err(|e| QueueConfigError::Parse {
                path: shown.clone(),
                message: e.to_string(),
            })?,
            _ => return Err(QueueConfigError::Format(shown)),
        };
        file.validate()
    }

    /// Parses and validates TOML text (for tests and embedding).
    pub fn from_toml(text: &str) -> Result<Self, QueueConfigError> {
        let file: QueuesFile = toml::from_str(text).map_err(|e| QueueConfigError::Parse {
            path: "(text)".into(),
            message: e.to_string(),
        })?;
        file.validate()
    }

    /// The queue with this name.
    pub fn get(&self, name: &str) -> Option<&QueueProfile> {
        self.0.iter().find(|q| q.name == name)
    }

    /// The longest max wait of any queue (zero without queues).
    pub fn longest_wait(&self) -> Duration {
        self.0.iter().map(|q| q.max_wait).max().unwrap_or_default()
    }
}

/// The file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueuesFile {
    #[serde(default)]
    queue: Vec<QueueSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueSpec {
    name: String,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default = "one")]
    teams: u32,
    team_size: TeamSize,
    #[serde(default)]
    partial_after_secs: Option<f64>,
    max_wait_secs: f64,
    #[serde(default)]
    rules: Vec<RuleSpec>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamSize {
    min: u32,
    max: u32,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum RuleSpec {
    Difference {
        attribute: String,
        max: f64,
        #[serde(default)]
        expand: Vec<StepSpec>,
    },
    Equal {
        attribute: String,
    },
    Intersect {
        attribute: String,
    },
    Latency {
        max_ms: f64,
        #[serde(default)]
        expand: Vec<StepSpec>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    after_secs: f64,
    max: f64,
}

impl QueuesFile {
    fn validate(self) -> Result<QueueProfiles, QueueConfigError> {
        if self.queue.is_empty() {
            return Err(QueueConfigError::Empty);
        }
        let mut names = HashSet::new();
        let mut profiles = Vec::with_capacity(self.queue.len());
        for spec in self.queue {
            if !names.insert(spec.name.clone()) {
                return Err(QueueConfigError::Duplicate(spec.name));
            }
            profiles.push(spec.validate()?);
        }
        Ok(QueueProfiles(profiles))
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

impl QueueSpec {
    fn validate(self) -> Result<QueueProfile, QueueConfigError> {
        if !valid_name(&self.name) {
            return Err(QueueConfigError::Name(self.name));
        }
        let name = self.name.clone();
        let bad = |setting: &str, problem: String| QueueConfigError::Setting {
            queue: name.clone(),
            setting: setting.to_owned(),
            problem,
        };
        if self.teams == 0 || self.teams > MAX_TEAMS {
            return Err(bad(
                "teams",
                format!("is {}; use 1 to {MAX_TEAMS}", self.teams),
            ));
        }
        let TeamSize { min, max } = self.team_size;
        if min == 0 || min > max || max > MAX_TEAM_SIZE {
            return Err(bad(
                "team_size",
                format!("is {min}..{max}; use 1 <= min <= max <= {MAX_TEAM_SIZE}"),
            ));
        }
        let max_wait = seconds(self.max_wait_secs)
            .filter(|w| !w.is_zero() && *w <= MAX_WAIT_LIMIT)
            .ok_or_else(|| {
                bad(
                    "max_wait_secs",
                    format!(
                        "is {}; use more than 0 and at most {}",
                        self.max_wait_secs,
                        MAX_WAIT_LIMIT.as_secs()
                    ),
                )
            })?;
        let partial_after = match self.partial_after_secs {
            None => None,
            Some(secs) => Some(seconds(secs).filter(|p| *p < max_wait).ok_or_else(|| {
                bad(
                    "partial_after_secs",
                    format!("is {secs}; use 0 or more, less than max_wait_secs"),
                )
            })?),
        };
        let mut rules = Vec::with_capacity(self.rules.len());
        for (index, rule) in self.rules.into_iter().enumerate() {
            let setting = format!("rules[{index}]");
            rules.push(match rule {
                RuleSpec::Difference {
                    attribute,
                    max,
                    expand,
                } => Rule::Difference {
                    window: expansion(max, expand, max_wait)
                        .map_err(|problem| bad(&setting, problem))?,
                    attribute: checked_attribute(&attribute).map_err(|p| bad(&setting, p))?,
                },
                RuleSpec::Equal { attribute } => Rule::Equal {
                    attribute: checked_attribute(&attribute).map_err(|p| bad(&setting, p))?,
                },
                RuleSpec::Intersect { attribute } => Rule::Intersect {
                    attribute: checked_attribute(&attribute).map_err(|p| bad(&setting, p))?,
                },
                RuleSpec::Latency { max_ms, expand } => Rule::Latency {
                    window: expansion(max_ms, expand, max_wait)
                        .map_err(|problem| bad(&setting, problem))?,
                },
            });
        }
        if rules
            .iter()
            .filter(|r| matches!(r, Rule::Latency { .. }))
            .count()
            > 1
        {
            return Err(bad("rules", "has more than one latency rule".into()));
        }
        Ok(QueueProfile {
            name: self.name,
            versions: self.versions,
            teams: self.teams,
            team_min: min,
            team_max: max,
            partial_after,
            max_wait,
            rules,
        })
    }
}

fn seconds(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs >= 0.0 && secs <= MAX_WAIT_LIMIT.as_secs_f64())
        .then(|| Duration::from_secs_f64(secs))
}

fn checked_attribute(name: &str) -> Result<String, String> {
    if name.is_empty() || name.len() > bevygap_shared::protocol::queue::MAX_NAME {
        return Err(format!("attribute name {name:?} must be 1 to 64 bytes"));
    }
    Ok(name.to_owned())
}

/// A widening window: a finite base of 0 or more, then steps later in time and wider.
fn expansion(base: f64, steps: Vec<StepSpec>, max_wait: Duration) -> Result<Expansion, String> {
    if !base.is_finite() || base < 0.0 {
        return Err(format!("has max {base}; use a finite number of 0 or more"));
    }
    let mut window = Expansion {
        base,
        steps: Vec::with_capacity(steps.len()),
    };
    let (mut last_after, mut last_max) = (None::<Duration>, base);
    for step in steps {
        let after = seconds(step.after_secs)
            .ok_or_else(|| format!("has a step after {} s; use 0 or more", step.after_secs))?;
        if last_after.is_some_and(|last| after <= last) {
            return Err(format!(
                "has steps out of order: after_secs {} does not come after the previous step",
                step.after_secs
            ));
        }
        if after >= max_wait {
            return Err(format!(
                "has a step after {} s, which tickets never reach (max_wait_secs is {})",
                step.after_secs,
                max_wait.as_secs_f64()
            ));
        }
        if !step.max.is_finite() || step.max < last_max {
            return Err(format!(
                "has a step to max {} after {} s; windows only widen (the one before is {last_max})",
                step.max, step.after_secs
            ));
        }
        window.steps.push((after, step.max));
        last_after = Some(after);
        last_max = step.max;
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const EXAMPLE: &str = r#"
[[queue]]
name = "ranked-2v2"
teams = 2
team_size = { min = 1, max = 2 }
max_wait_secs = 120
partial_after_secs = 30

[[queue.rules]]
kind = "difference"
attribute = "skill"
max = 100
expand = [{ after_secs = 10, max = 200 }, { after_secs = 30, max = 400 }]

[[queue.rules]]
kind = "equal"
attribute = "mode"

[[queue.rules]]
kind = "intersect"
attribute = "languages"

[[queue.rules]]
kind = "latency"
max_ms = 60
expand = [{ after_secs = 20, max = 120 }]

[[queue]]
name = "duel"
team_size = { min = 2, max = 2 }
max_wait_secs = 60
"#;

    #[test]
    fn the_documented_example_reads_and_its_windows_widen_with_the_wait() {
        let profiles = QueueProfiles::from_toml(EXAMPLE).unwrap();
        let ranked = profiles.get("ranked-2v2").unwrap();
        assert_eq!((ranked.teams, ranked.team_min, ranked.team_max), (2, 1, 2));
        assert_eq!(ranked.full_size(), 4);
        assert_eq!(ranked.partial_after, Some(Duration::from_secs(30)));
        let Rule::Difference { window, .. } = &ranked.rules[0] else {
            panic!("{:?}", ranked.rules[0]);
        };
        assert_eq!(window.at(Duration::from_secs(0)), 100.0);
        assert_eq!(window.at(Duration::from_secs(10)), 200.0);
        assert_eq!(window.at(Duration::from_secs(29)), 200.0);
        assert_eq!(window.at(Duration::from_secs(31)), 400.0);
        assert_eq!(ranked.widening_steps(Duration::from_secs(25)), 2);
        let duel = profiles.get("duel").unwrap();
        assert_eq!(
            (duel.teams, duel.team_max, duel.partial_after),
            (1, 2, None)
        );
    }

    #[test]
    fn the_same_profiles_read_from_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queues.json");
        std::fs::write(
            &path,
            r#"{"queue":[{"name":"duel","team_size":{"min":2,"max":2},"max_wait_secs":60,
               "rules":[{"kind":"difference","attribute":"skill","max":50}]}]}"#,
        )
        .unwrap();
        let profiles = QueueProfiles::load(&path).unwrap();
        assert_eq!(profiles.0.len(), 1);
        let toml_path = dir.path().join("queues.toml");
        std::fs::write(&toml_path, EXAMPLE).unwrap();
        assert_eq!(QueueProfiles::load(&toml_path).unwrap().0.len(), 2);
    }

    fn refused(text: &str) -> String {
        QueueProfiles::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn every_mistake_is_refused_with_what_to_fix() {
        let base =
            "[[queue]]\nname = \"q\"\nteam_size = { min = 1, max = 2 }\nmax_wait_secs = 60\n";
        assert!(refused("").contains("no [[queue]]"));
        assert!(refused(&format!("{base}{base}")).contains("defined twice"));
        assert!(refused(&base.replace("\"q\"", "\"a b\"")).contains("ASCII letters"));
        assert!(refused(&base.replace("max = 2", "max = 0")).contains("team_size"));
        assert!(refused(&base.replace("min = 1", "min = 3")).contains("min <= max"));
        assert!(refused(&format!("{base}teams = 0\n")).contains("teams"));
        assert!(refused(&base.replace("60", "0")).contains("max_wait_secs"));
        assert!(refused(&format!("{base}partial_after_secs = 90\n")).contains("partial_after"));
        assert!(refused(&format!("{base}colour = \"red\"\n")).contains("unknown field"));
        let rule = |body: &str| format!("{base}[[queue.rules]]\n{body}\n");
        assert!(refused(&rule("kind = \"teleport\"")).contains("does not parse"));
        assert!(
            refused(&rule(
                "kind = \"difference\"\nattribute = \"skill\"\nmax = -1"
            ))
            .contains("rules[0]")
        );
        let narrowing = rule(
            "kind = \"difference\"\nattribute = \"skill\"\nmax = 100\nexpand = [{ after_secs = 5, max = 50 }]",
        );
        assert!(refused(&narrowing).contains("only widen"));
        let unordered = rule(
            "kind = \"latency\"\nmax_ms = 50\nexpand = [{ after_secs = 9, max = 60 }, { after_secs = 5, max = 70 }]",
        );
        assert!(refused(&unordered).contains("out of order"));
        let unreachable =
            rule("kind = \"latency\"\nmax_ms = 50\nexpand = [{ after_secs = 60, max = 60 }]");
        assert!(refused(&unreachable).contains("never reach"));
        let two_latency = format!(
            "{}[[queue.rules]]\nkind = \"latency\"\nmax_ms = 9\n",
            rule("kind = \"latency\"\nmax_ms = 5")
        );
        assert!(refused(&two_latency).contains("more than one latency rule"));
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("queues.yaml");
        std::fs::write(&yaml, base).unwrap();
        assert!(matches!(
            QueueProfiles::load(&yaml),
            Err(QueueConfigError::Format(_))
        ));
        assert!(matches!(
            QueueProfiles::load(&dir.path().join("missing.toml")),
            Err(QueueConfigError::Read { .. })
        ));
    }
}
