//! The calls the editor's UI serves: clipboard, messages, input boxes and terminals, through an
//! embedder-supplied [`UiHandler`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;

use serde_json::value::RawValue;

use super::error::{CallError, reply};
use crate::wire::{ErrorCode, ErrorObject};

/// A request the embedder serves: the parts of the host API that belong to the editor's UI.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UiRequest {
    /// Read the clipboard as text.
    ClipboardRead,
    /// Replace the clipboard's text.
    ClipboardWrite {
        /// The new text.
        text: String,
    },
    /// Show a message.
    ShowMessage {
        /// `info`, `warning` or `error` (the broker refuses anything else).
        level: String,
        /// The text.
        message: String,
    },
    /// Ask the user for one line of text; answer with the text, or `null` if the user dismissed
    /// the box.
    InputBox {
        /// The box's title.
        title: Option<String>,
        /// The text under the input, saying what to enter.
        prompt: Option<String>,
        /// The hint shown in the empty input.
        placeholder: Option<String>,
        /// The text the input starts with.
        value: Option<String>,
        /// Whether to hide what is typed.
        password: bool,
    },
    /// Open a terminal; answer with its id.
    TerminalCreate {
        /// Its title.
        name: String,
    },
    /// Send text to a terminal the extension opened.
    TerminalWrite {
        /// The terminal's id.
        id: String,
        /// The text.
        text: String,
    },
}

/// A boxed UI future.
pub type UiFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, ErrorObject>> + Send>>;

/// Serves [`UiRequest`]s for the editor (a dialog, the system clipboard, a terminal panel). Only
/// called after the broker has checked the extension's permission.
pub trait UiHandler: Send + Sync + 'static {
    /// Serves `request` for `extension`.
    fn handle(&self, extension: &str, request: UiRequest) -> UiFuture;
}

/// The standalone helper's UI: messages go to the log, the clipboard is a buffer inside the
/// supervisor, and input boxes and terminals are not offered (there is no user to ask).
#[derive(Debug, Default)]
pub struct ConsoleUi {
    clipboard: Mutex<String>,
}

impl UiHandler for ConsoleUi {
    fn handle(&self, extension: &str, request: UiRequest) -> UiFuture {
        let reply = match request {
            UiRequest::ClipboardRead => Ok(serde_json::Value::String(
                self.clipboard.lock().expect("clipboard").clone(),
            )),
            UiRequest::ClipboardWrite { text } => {
                *self.clipboard.lock().expect("clipboard") = text;
                Ok(serde_json::Value::Null)
            }
            UiRequest::ShowMessage { level, message } => {
                tracing::info!(target: "dscode_extension_host::extension", extension, level, "{message}");
                Ok(serde_json::Value::Null)
            }
            UiRequest::InputBox { .. } => Err(ErrorObject::new(
                ErrorCode::Unsupported,
                "the standalone helper has no user to ask for input; take the value as a command argument instead",
            )),
            UiRequest::TerminalCreate { .. } | UiRequest::TerminalWrite { .. } => {
                Err(ErrorObject::new(
                    ErrorCode::Unsupported,
                    "the standalone helper has no terminals",
                ))
            }
        };
        Box::pin(async move { reply })
    }
}

/// Hands a checked UI call to the embedder and encodes its answer.
pub(crate) async fn serve(
    ui: &dyn UiHandler,
    extension: &str,
    request: UiRequest,
) -> Result<Box<RawValue>, CallError> {
    let value = ui
        .handle(extension, request)
        .await
        .map_err(CallError::Remote)?;
    reply(&value)
}
