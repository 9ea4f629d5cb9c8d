//! Extended metadata: attributes an app sets on itself (`PUT /v1.0/metadata/{key}`, gRPC `SetMetadata`) and reads
//! back in its metadata (`extended`). daprd keeps them in the sidecar's memory; here any gateway may answer the
//! app, so they are kept with the App ID in the control plane, bounded, and go when the App ID does.

use std::collections::BTreeMap;

use outrigger_bus::Tenant;
use outrigger_store::Store;

/// The longest key kept, in bytes.
pub const MAX_KEY_BYTES: usize = 256;
/// The longest value kept, in bytes.
pub const MAX_VALUE_BYTES: usize = 4096;
/// The most keys one App ID has.
pub const MAX_KEYS: usize = 64;

/// Why an attribute was not set.
#[derive(Debug, thiserror::Error)]
pub enum ExtendedMetadataError {
    /// The key is empty.
    #[error("the metadata key is empty; name the attribute in the path (PUT /v1.0/metadata/{{key}})")]
    EmptyKey,
    /// The key is longer than [`MAX_KEY_BYTES`].
    #[error("the metadata key is {0} bytes long; keys of at most {MAX_KEY_BYTES} bytes are kept")]
    KeyTooLong(usize),
    /// The value is longer than [`MAX_VALUE_BYTES`].
    #[error("the metadata value is {0} bytes long; values of at most {MAX_VALUE_BYTES} bytes are kept")]
    ValueTooLong(usize),
    /// The App ID has [`MAX_KEYS`] other keys already.
    #[error("this App ID has {MAX_KEYS} metadata keys already; set one of them instead of a new one")]
    TooManyKeys,
    /// The control plane failed.
    #[error("the control plane cannot keep metadata right now ({0}); retry shortly")]
    Store(#[from] outrigger_store::Error),
}

/// Sets one attribute of the caller's App ID, replacing its value if it has one.
pub(crate) async fn set(store: &Store, tenant: &Tenant, key: &str, value: &str) -> Result<(), ExtendedMetadataError> {
    if key.is_empty() {
        return Err(ExtendedMetadataError::EmptyKey);
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ExtendedMetadataError::KeyTooLong(key.len()));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(ExtendedMetadataError::ValueTooLong(value.len()));
    }
    let mut tx = store.begin().await?;
    let existing = tx.app_metadata(&tenant.project_id, &tenant.app_id).await?;
    if !existing.contains_key(key) && existing.len() >= MAX_KEYS {
        return Err(ExtendedMetadataError::TooManyKeys);
    }
    tx.set_app_metadata(&tenant.project_id, &tenant.app_id, key, value).await?;
    tx.commit().await?;
    Ok(())
}

/// The caller's App ID's attributes.
pub(crate) async fn of(store: &Store, tenant: &Tenant) -> Result<BTreeMap<String, String>, outrigger_store::Error> {
    let mut tx = store.begin().await?;
    tx.app_metadata(&tenant.project_id, &tenant.app_id).await
}
