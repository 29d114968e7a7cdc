//! Reading typed values out of `Any` rows.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::StoreError;
use crate::domain::{Direction, MessageStatus};

pub(super) fn text(row: &AnyRow, col: &str) -> Result<String, StoreError> {
    Ok(row.try_get::<String, _>(col)?)
}

pub(super) fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>, StoreError> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

pub(super) fn int(row: &AnyRow, col: &str) -> Result<i64, StoreError> {
    Ok(row.try_get::<i64, _>(col)?)
}

pub(super) fn opt_int(row: &AnyRow, col: &str) -> Result<Option<i64>, StoreError> {
    Ok(row.try_get::<Option<i64>, _>(col)?)
}

pub(super) fn status(row: &AnyRow, col: &str) -> Result<MessageStatus, StoreError> {
    let value = text(row, col)?;
    value.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {value:?}")))
}

pub(super) fn opt_status(row: &AnyRow, col: &str) -> Result<Option<MessageStatus>, StoreError> {
    opt_text(row, col)?.map(|value| value.parse().map_err(|_| StoreError::Corrupt(format!("{col} = {value:?}")))).transpose()
}

pub(super) fn direction(row: &AnyRow, col: &str) -> Result<Direction, StoreError> {
    let value = text(row, col)?;
    Direction::parse(&value).ok_or_else(|| StoreError::Corrupt(format!("{col} = {value:?}")))
}
