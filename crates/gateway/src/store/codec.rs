//! How domain types are stored: each as TEXT (or BIGINT for [`Priority`]), so that rows decode
//! straight into typed fields on PostgreSQL, on SQLite through sqlx (reads) and through rusqlite
//! (the embedded writer). A stored value that does not parse is a decode error, never a default.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

use crate::domain::{AttemptOutcome, Direction, MessageId, MessageSid, MessageStatus, Origin, PhoneNumber, Priority, StatusSource};

/// Implements the sqlx and rusqlite traits for a type stored as its text form.
macro_rules! text_column {
    ($ty:ty, $render:expr, $parse:expr) => {
        impl<DB: Database> Type<DB> for $ty
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }

            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $ty
        where
            String: Encode<'q, DB>,
        {
            fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
                let render: fn(&$ty) -> String = $render;
                <String as Encode<'q, DB>>::encode(render(self), buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&'r str as Decode<'r, DB>>::decode(value)?;
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                Ok(parse(text)?)
            }
        }

        impl rusqlite::types::ToSql for $ty {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                let render: fn(&$ty) -> String = $render;
                Ok(rusqlite::types::ToSqlOutput::from(render(self)))
            }
        }

        impl rusqlite::types::FromSql for $ty {
            fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                parse(value.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}

text_column!(MessageId, |v| v.to_string(), |s| s.parse().map_err(|_| format!("not a message id: {s:?}")));
text_column!(MessageSid, |v| v.as_str().to_owned(), |s| MessageSid::parse(s).map_err(|e| e.to_string()));
text_column!(MessageStatus, |v| v.as_str().to_owned(), |s| s.parse().map_err(|e: crate::domain::status::UnknownStatus| e.to_string()));
text_column!(Direction, |v| v.as_str().to_owned(), |s| Direction::parse(s).ok_or_else(|| format!("not a direction: {s:?}")));
text_column!(StatusSource, |v| v.as_str().to_owned(), |s| s.parse().map_err(|e: crate::domain::source::UnknownSource| e.to_string()));
text_column!(AttemptOutcome, |v| v.as_str().to_owned(), |s| s.parse().map_err(|e: crate::domain::attempt::UnknownOutcome| e.to_string()));
text_column!(Origin, |v| v.as_str().to_owned(), |s| Origin::parse(s).map_err(|e| e.to_string()));
text_column!(PhoneNumber, |v| v.as_e164().to_owned(), |s| PhoneNumber::parse_received(s).map_err(|e| format!("{s:?} {e}")));

impl<DB: Database> Type<DB> for Priority
where
    i64: Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <i64 as Type<DB>>::type_info()
    }

    fn compatible(ty: &DB::TypeInfo) -> bool {
        <i64 as Type<DB>>::compatible(ty)
    }
}

impl<'q, DB: Database> Encode<'q, DB> for Priority
where
    i64: Encode<'q, DB>,
{
    fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, DB>>::encode(self.get(), buf)
    }
}

impl<'r, DB: Database> Decode<'r, DB> for Priority
where
    i64: Decode<'r, DB>,
{
    fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(Priority::new(<i64 as Decode<'r, DB>>::decode(value)?)?)
    }
}

impl rusqlite::types::ToSql for Priority {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(rusqlite::types::ToSqlOutput::from(self.get()))
    }
}

impl rusqlite::types::FromSql for Priority {
    fn column_result(value: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        Priority::new(value.as_i64()?).map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_text_round_trips_and_garbage_is_refused() {
        use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};
        let status = MessageStatus::Delivered;
        let ToSqlOutput::Owned(Value::Text(text)) = status.to_sql().unwrap() else { panic!("text expected") };
        assert_eq!(text, "delivered");
        assert_eq!(MessageStatus::column_result(ValueRef::Text(b"read")).unwrap(), MessageStatus::Read);
        assert!(MessageStatus::column_result(ValueRef::Text(b"lost")).is_err());
        assert!(MessageSid::column_result(ValueRef::Text(b"SM1")).is_err());
        assert!(Priority::column_result(ValueRef::Integer(11)).is_err());
        assert_eq!(Priority::column_result(ValueRef::Integer(2)).unwrap().get(), 2);
    }
}
