//! Metrics bucket sizes.

/// Rollup granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Granularity {
    /// One bucket per hour.
    Hour,
    /// One bucket per day (UTC).
    Day,
}

impl Granularity {
    /// Both granularities, finest first.
    pub const ALL: [Self; 2] = [Self::Hour, Self::Day];

    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Parses `hour` or `day`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|g| g.as_str() == value)
    }

    /// Bucket length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// Start of the bucket holding `at`.
    pub fn bucket_start(self, at: i64) -> i64 {
        at - at.rem_euclid(self.millis())
    }
}

#[cfg(test)]
mod tests {
    use super::Granularity;

    #[test]
    fn buckets_start_on_the_hour_and_the_utc_day() {
        assert_eq!(Granularity::Hour.bucket_start(3_600_000 + 59_999), 3_600_000);
        assert_eq!(Granularity::Day.bucket_start(86_400_000 * 3 + 5), 86_400_000 * 3);
        assert_eq!(Granularity::Hour.bucket_start(-1), -3_600_000);
        assert_eq!(Granularity::parse("day"), Some(Granularity::Day));
        assert_eq!(Granularity::parse("week"), None);
    }
}
