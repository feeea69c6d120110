//! `fs/*`: file operations on paths the permission layer cleared, through the validator that
//! resolved them, on a blocking thread.

use std::io::{Read, Write};

use base64::Engine;
use serde_json::value::RawValue;

use super::call::Encoding;
use super::check::CheckedPath;
use super::error::{CallError, reply};
use crate::paths::{FileKind, PathValidator, ResolvedPath, WriteMode};

/// Runs `operation` on a blocking thread: file system calls block, and must stay off the
/// runtime's worker threads.
async fn blocking<F>(target: CheckedPath, operation: F) -> Result<Box<RawValue>, CallError>
where
    F: FnOnce(&PathValidator, &ResolvedPath) -> Result<Box<RawValue>, CallError> + Send + 'static,
{
    tokio::task::spawn_blocking(move || operation(target.validator(), target.resolved()))
        .await
        .map_err(CallError::Blocking)?
}

fn io_error(path: &ResolvedPath, source: std::io::Error) -> CallError {
    CallError::Io {
        path: path.to_string(),
        source,
    }
}

/// `fs/readFile`: the content as text or base64; files over `max_file` bytes are refused so a
/// reply always fits in a frame.
pub(crate) async fn read(
    target: CheckedPath,
    encoding: Encoding,
    max_file: u64,
) -> Result<Box<RawValue>, CallError> {
    blocking(target, move |paths, path| {
        let file = paths.open_read(path)?;
        let mut bytes = Vec::new();
        // One byte over the limit tells "too large" apart from "exactly the limit".
        file.take(max_file + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| io_error(path, e))?;
        if bytes.len() as u64 > max_file {
            return Err(CallError::FileTooLarge {
                path: path.to_string(),
                max: max_file,
            });
        }
        match encoding {
            Encoding::Base64 => reply(&base64::engine::general_purpose::STANDARD.encode(&bytes)),
            Encoding::Utf8 => {
                let text = String::from_utf8(bytes).map_err(|_| CallError::NotUtf8 {
                    path: path.to_string(),
                })?;
                reply(&text)
            }
        }
    })
    .await
}

/// `fs/writeFile`: creates the file or replaces its content.
pub(crate) async fn write(
    target: CheckedPath,
    content: Vec<u8>,
) -> Result<Box<RawValue>, CallError> {
    blocking(target, move |paths, path| {
        let mut file = paths.open_write(path, WriteMode::CreateOrTruncate)?;
        file.write_all(&content).map_err(|e| io_error(path, e))?;
        reply(&serde_json::Value::Null)
    })
    .await
}

/// `fs/readDirectory`: each entry's name and type (a symbolic link is reported as one).
pub(crate) async fn read_directory(target: CheckedPath) -> Result<Box<RawValue>, CallError> {
    blocking(target, |paths, path| {
        let listed: Vec<_> = paths
            .read_dir(path)?
            .into_iter()
            .map(|e| serde_json::json!({ "name": e.name, "type": kind_name(e.kind) }))
            .collect();
        reply(&listed)
    })
    .await
}

/// `fs/stat`: type, size, and modification time in milliseconds since the epoch.
pub(crate) async fn stat(target: CheckedPath) -> Result<Box<RawValue>, CallError> {
    blocking(target, |paths, path| {
        let meta = paths.metadata(path)?;
        let kind = if meta.is_dir() {
            "directory"
        } else if meta.is_file() {
            "file"
        } else {
            "other"
        };
        let mtime_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        reply(&serde_json::json!({ "type": kind, "size": meta.len(), "mtimeMs": mtime_ms }))
    })
    .await
}

/// `fs/delete`; a recursive delete's entries were each checked by the permission layer.
pub(crate) async fn delete(
    target: CheckedPath,
    recursive: bool,
) -> Result<Box<RawValue>, CallError> {
    blocking(target, move |paths, path| {
        if recursive {
            paths.remove_all(path)
        } else {
            paths.remove(path)
        }?;
        reply(&serde_json::Value::Null)
    })
    .await
}

fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Directory => "directory",
        FileKind::Symlink => "symlink",
        FileKind::Other => "other",
    }
}
