//! Secret storage for extensions (`secrets/get`, `secrets/store`, `secrets/delete`): each
//! extension's secrets in a secure store, kept apart from every other extension's.
//!
//! - [`SecretStorage`] is what callers hold: `get`, `set`, `delete`, `list`,
//!   `delete_all_for_extension`, `clear_cache`. It keeps values it has read for a short TTL
//!   (5 minutes by default) so repeated reads do not cross D-Bus.
//! - [`SecretBackend`] names the store. [`SecretStorage::detect`] uses the desktop's Secret
//!   Service (gnome-keyring, `KeePassXC`, `KWallet`: encrypted on disk) when a D-Bus session offers
//!   an unlocked one, and the kernel's keyring (keyutils: kernel memory, lost at reboot)
//!   otherwise. If neither works it fails with [`SecretError::NoSecureBackend`], which says how
//!   to get one: there is no plain-text fallback. [`SecretBackend::Memory`] exists for tests and
//!   is never detected.
//! - [`Secret`] holds a value: zeroized on drop, `Debug` redacted, no `Serialize`, read with
//!   [`Secret::expose_secret`].
//!
//! # Threat model
//!
//! An extension names only a key; its extension id comes from the supervisor (for the broker,
//! the connection's identity), and every (extension, key) pair has a backend name that no other
//! pair has, whatever characters either holds (see `naming.rs`). So through this API an
//! extension cannot read, overwrite, list or delete another extension's secrets. What the
//! backends cannot offer is protection from other programs of the same user: any process of the
//! user that can reach the session bus, or call `keyctl`, can read these secrets, as it can read
//! the user's other keyring items. Extension hosts must therefore be kept from both (no session
//! bus in the sandbox, `keyctl`/`add_key`/`request_key` blocked by seccomp).
//!
//! Limits: keys up to [`MAX_KEY_BYTES`], values up to [`MAX_SECRET_BYTES`] and not empty,
//! extension ids up to [`MAX_EXTENSION_ID_BYTES`].

mod backend;
mod cache;
mod error;
mod keyutils;
mod memory;
mod naming;
mod secret;
mod secret_service;
mod store;

pub use backend::{SecretBackend, SkippedBackend, UnknownBackend};
pub use error::{BackendSource, SecretError};
pub use naming::{MAX_EXTENSION_ID_BYTES, MAX_KEY_BYTES, MAX_SECRET_BYTES};
pub use secret::{NotUtf8, Secret};
pub use store::{SecretStorage, SecretStorageOptions};
