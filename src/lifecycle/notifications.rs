//! What a running host tells the supervisor without being asked: its log lines, its uncaught
//! errors, and the commands it registers and unregisters.

use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::watch;

use super::status::HostStatus;
use crate::rpc::Event;

/// Routes one event from host `id`: logs to `tracing` under the extension's own target, command
/// changes into its status.
pub(crate) fn route(id: &str, event: Event, status: &watch::Sender<HostStatus>) {
    match event {
        Event::Notification { method, params } => match method.as_str() {
            "log" => log(id, params.as_deref()),
            "host/error" => {
                let detail = params.as_deref().map_or("", RawValue::get);
                tracing::warn!(extension = %id, detail, "extension raised an uncaught error");
            }
            "commands/registered" | "commands/unregistered" => {
                #[derive(Deserialize)]
                struct CommandParams {
                    command: String,
                }
                if let Some(Ok(CommandParams { command })) = params
                    .as_deref()
                    .map(|p| serde_json::from_str::<CommandParams>(p.get()))
                {
                    let add = method == "commands/registered";
                    status.send_modify(|status| {
                        status.commands.retain(|c| c != &command);
                        if add {
                            status.commands.push(command);
                        }
                    });
                }
            }
            other => tracing::debug!(extension = %id, method = other, "ignored notification"),
        },
        Event::Unexpected(message) => {
            tracing::warn!(extension = %id, kind = %message.kind(), "host sent a message only the supervisor may send; ignored");
        }
    }
}

fn log(id: &str, params: Option<&RawValue>) {
    #[derive(Deserialize)]
    struct Log {
        level: String,
        message: String,
    }
    let Some(Ok(Log { level, message })) = params.map(|p| serde_json::from_str::<Log>(p.get()))
    else {
        tracing::warn!(extension = %id, "malformed log notification");
        return;
    };
    match level.as_str() {
        "error" => {
            tracing::error!(target: "dscode_extension_host::extension", extension = %id, "{message}");
        }
        "warn" => {
            tracing::warn!(target: "dscode_extension_host::extension", extension = %id, "{message}");
        }
        "info" => {
            tracing::info!(target: "dscode_extension_host::extension", extension = %id, "{message}");
        }
        "debug" => {
            tracing::debug!(target: "dscode_extension_host::extension", extension = %id, "{message}");
        }
        _ => {
            tracing::trace!(target: "dscode_extension_host::extension", extension = %id, "{message}");
        }
    }
}
