//! `secrets/*`: the extension's own secrets, kept in the supervisor's [`SecretStorage`] under the
//! extension id the connection carries.

use serde_json::value::RawValue;

use super::error::{CallError, reply};
use crate::secrets::{Secret, SecretStorage};

/// `secrets/get`: the value, or `null` when there is none.
pub(crate) async fn get(
    storage: Option<&SecretStorage>,
    extension: &str,
    key: &str,
) -> Result<Box<RawValue>, CallError> {
    match storage_or_refuse(storage)?.get(extension, key).await? {
        Some(secret) => reply(secret.expose_secret()),
        None => reply(&serde_json::Value::Null),
    }
}

/// `secrets/store`.
pub(crate) async fn store(
    storage: Option<&SecretStorage>,
    extension: &str,
    key: &str,
    value: Secret,
) -> Result<Box<RawValue>, CallError> {
    storage_or_refuse(storage)?
        .set(extension, key, value)
        .await?;
    reply(&serde_json::Value::Null)
}

/// `secrets/delete`; deleting a key that is not there is not an error.
pub(crate) async fn delete(
    storage: Option<&SecretStorage>,
    extension: &str,
    key: &str,
) -> Result<Box<RawValue>, CallError> {
    storage_or_refuse(storage)?.delete(extension, key).await?;
    reply(&serde_json::Value::Null)
}

fn storage_or_refuse(storage: Option<&SecretStorage>) -> Result<&SecretStorage, CallError> {
    storage.ok_or(CallError::NoSecretStorage)
}
