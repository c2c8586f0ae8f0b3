//! A cadence given in steps or in time: `validation_interval: 1000` or `"10 minutes"`.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::duration::ConfigDuration;

/// How often something happens: every so many global steps, or after so much training time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cadence {
    /// At global steps that are multiples of this count.
    Steps(u64),
    /// At the first loop end after this much training time since the last time.
    Every(ConfigDuration),
}

impl Cadence {
    /// The step count of a step cadence.
    pub fn steps(self) -> Option<u64> {
        match self {
            Cadence::Steps(steps) => Some(steps),
            Cadence::Every(_) => None,
        }
    }
}

impl Serialize for Cadence {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Cadence::Steps(steps) => serializer.serialize_u64(*steps),
            Cadence::Every(duration) => duration.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Cadence {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CadenceVisitor)
    }
}

struct CadenceVisitor;

impl<'de> Visitor<'de> for CadenceVisitor {
    type Value = Cadence;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a step count such as 1000 or a duration such as \"10 minutes\"")
    }

    fn visit_u64<E: de::Error>(self, steps: u64) -> Result<Cadence, E> {
        Ok(Cadence::Steps(steps))
    }

    fn visit_i64<E: de::Error>(self, steps: i64) -> Result<Cadence, E> {
        u64::try_from(steps)
            .map(Cadence::Steps)
            .map_err(|_| E::custom(format!("{steps} steps: a cadence must not be negative")))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Cadence, E> {
        if let Ok(steps) = text.trim().parse::<u64>() {
            return Ok(Cadence::Steps(steps));
        }
        let duration = ConfigDuration::deserialize(de::value::StrDeserializer::<E>::new(text))?;
        Ok(Cadence::Every(duration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn steps_or_durations() {
        let parse = |text: &str| serde_yaml::from_str::<Cadence>(text);
        assert_eq!(parse("1000").unwrap(), Cadence::Steps(1000));
        assert_eq!(parse("'200'").unwrap(), Cadence::Steps(200));
        let every = Cadence::Every(ConfigDuration(Duration::from_secs(120)));
        assert_eq!(parse("2 minutes").unwrap(), every);
        assert_eq!(
            parse(&serde_yaml::to_string(&every).unwrap()).unwrap(),
            every
        );
        assert!(parse("-5")
            .unwrap_err()
            .to_string()
            .contains("must not be negative"));
        assert!(parse("often")
            .unwrap_err()
            .to_string()
            .contains("is not a duration"));
    }
}
