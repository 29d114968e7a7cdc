//! Integers as JSON Schema counts them: `2`, and also `2.0` (JSON has one number type, and a
//! schema's `integer` admits every number with no fractional part), in a JSON body or a query
//! string.

use serde::Deserializer;
use serde::de::{self, Visitor};

/// An optional integer of a JSON body that also takes an integral float (`2.0`); `1.5` or `"2"`
/// are refused naming what was given.
pub fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(OptionalInteger { text: false })
}

/// An optional integer of a query string (`limit=50`, `limit=50.0`); `1.5` or `abc` are refused.
pub fn optional_query_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    deserializer.deserialize_option(OptionalInteger { text: true })
}

struct OptionalInteger {
    /// Whether the integer comes as text (a query string has nothing else).
    text: bool,
}

impl<'de> Visitor<'de> for OptionalInteger {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(Integer { text: self.text }).map(Some)
    }
}

struct Integer {
    text: bool,
}

fn integral<E: de::Error>(value: f64) -> Result<i64, E> {
    // Beyond 2^53 a float no longer holds every integer; such values are refused, not rounded.
    if value.fract() == 0.0 && value.abs() <= 9_007_199_254_740_992.0 {
        Ok(value as i64)
    } else {
        Err(E::custom(format!("must be an integer, got {value}")))
    }
}

impl<'de> Visitor<'de> for Integer {
    type Value = i64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<i64, E> {
        Ok(value)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<i64, E> {
        i64::try_from(value).map_err(|_| E::custom(format!("is too large: {value}")))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<i64, E> {
        integral(value)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<i64, E> {
        if !self.text {
            return Err(E::custom(format!("must be an integer, not the string {text:?}")));
        }
        match text.parse::<i64>() {
            Ok(value) => Ok(value),
            Err(_) => match text.parse::<f64>() {
                Ok(value) if value.is_finite() && !text.contains(['e', 'E', 'i', 'n', 'N', 'I']) => integral(value),
                _ => Err(E::custom(format!("must be an integer, got {text:?}"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Form {
        #[serde(default, deserialize_with = "super::optional_integer")]
        n: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    struct Query {
        #[serde(default, deserialize_with = "super::optional_query_integer")]
        n: Option<i64>,
    }

    fn json(text: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<Form>(text).map(|f| f.n).map_err(|e| e.to_string())
    }

    fn query(text: &str) -> Result<Option<i64>, String> {
        serde_urlencoded::from_str::<Query>(text).map(|f| f.n).map_err(|e| e.to_string())
    }

    #[test]
    fn integers_and_integral_numbers_are_taken() {
        assert_eq!(json(r#"{"n": 2}"#), Ok(Some(2)));
        assert_eq!(json(r#"{"n": 2.0}"#), Ok(Some(2)));
        assert_eq!(json(r#"{"n": -7}"#), Ok(Some(-7)));
        assert_eq!(json(r#"{"n": null}"#), Ok(None));
        assert_eq!(json("{}"), Ok(None));
        assert_eq!(query("n=50"), Ok(Some(50)));
        assert_eq!(query("n=50.0"), Ok(Some(50)));
        assert_eq!(query(""), Ok(None));
    }

    #[test]
    fn fractions_and_text_are_refused() {
        assert!(json(r#"{"n": 2.5}"#).unwrap_err().contains("must be an integer"));
        assert!(json(r#"{"n": "2"}"#).unwrap_err().contains("not the string"));
        assert!(json(r#"{"n": 1e300}"#).is_err());
        assert!(query("n=abc").unwrap_err().contains("must be an integer"));
        assert!(query("n=1e3").is_err());
        assert!(query("n=NaN").is_err());
    }
}
