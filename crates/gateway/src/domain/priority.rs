//! Message priority: 1 is the most urgent, 10 the least; 5 by default.

use serde::{Deserialize, Serialize};

/// A priority from 1 (highest) to 10 (lowest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Priority(u8);

/// The value was outside 1..=10.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an integer from 1 (highest) to 10 (lowest), got {0}")]
pub struct InvalidPriority(pub i64);

impl Priority {
    /// The most urgent priority.
    pub const HIGHEST: Self = Self(1);
    /// The default priority.
    pub const DEFAULT: Self = Self(5);
    /// The least urgent priority.
    pub const LOWEST: Self = Self(10);

    /// Checks the range.
    pub fn new(value: i64) -> Result<Self, InvalidPriority> {
        if (1..=10).contains(&value) { Ok(Self(value as u8)) } else { Err(InvalidPriority(value)) }
    }

    /// The numeric value, 1..=10.
    pub fn get(self) -> i64 {
        i64::from(self.0)
    }
}

impl Default for Priority {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<i64> for Priority {
    type Error = InvalidPriority;

    fn try_from(value: i64) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<Priority> for i64 {
    fn from(value: Priority) -> Self {
        value.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_one_to_ten() {
        assert!(Priority::new(0).is_err());
        assert!(Priority::new(11).is_err());
        assert_eq!(Priority::new(1).unwrap(), Priority::HIGHEST);
        assert!(Priority::HIGHEST < Priority::LOWEST);
    }
}
