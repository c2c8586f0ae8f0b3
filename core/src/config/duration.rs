//! Durations in configs, written as people write them: `30s`, `10min`, `10 minutes`, `2h`,
//! `1h 30m` (humantime's syntax).

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A config value that is a length of time; YAML holds it as a string such as `"2h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ConfigDuration(pub Duration);

impl fmt::Display for ConfigDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl Serialize for ConfigDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(text.trim())
            .map(ConfigDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration ({e}); write e.g. \"30s\", \"10 minutes\" or \"2h\""
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ConfigDuration, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    #[test]
    fn reads_the_ways_people_write_durations_and_writes_them_back() {
        for (text, seconds) in [
            ("30s", 30),
            ("10 minutes", 600),
            ("2h", 7200),
            ("1h 30m", 5400),
        ] {
            assert_eq!(
                parse(text).unwrap().0,
                Duration::from_secs(seconds),
                "{text}"
            );
        }
        let written = serde_yaml::to_string(&ConfigDuration(Duration::from_secs(5400))).unwrap();
        assert_eq!(parse(&written).unwrap().0, Duration::from_secs(5400));
    }

    #[test]
    fn a_bad_duration_says_how_to_write_one() {
        let message = parse("5 parsecs").unwrap_err().to_string();
        assert!(
            message.contains("\"5 parsecs\" is not a duration"),
            "{message}"
        );
        assert!(message.contains("10 minutes"), "{message}");
        assert!(parse("5").is_err());
    }
}
