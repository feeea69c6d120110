//! What an extension may do: permissions asked for in its manifest, granted by a policy.

pub mod glob;
pub mod manifest;
pub mod policy;

pub use glob::{Glob, GlobError, GlobShape};
pub use manifest::{
    Permission, PermissionParseError, PermissionRequest, Scope, ScopeKind, ScopeRoot,
};
pub use policy::{
    ExtensionPermissions, Grant, GrantNothing, GrantsError, GrantsFile, GrantsOnDisk, InvalidGrant,
    PermissionDenied, PermissionPolicy, ProtectedNames,
};
