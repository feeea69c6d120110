//! [`HostCall`]: one host API request, parsed once, and the one place that says what each call
//! needs.
//!
//! A request arrives as a method string and raw JSON params. [`HostCall::parse`] turns it into a
//! variant holding exactly that call's typed params (unknown fields are refused), and every later
//! step works on the variant: [`HostCall::family`] picks the rate limit, [`HostCall::needs`] the
//! permission and its scope, and the handler matches on the variant. Nothing downstream looks at
//! the method string again, so a call cannot be served without its check being declared here.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::CallError;
use super::network::{HostPort, host_and_port};
use crate::permissions::Permission;
use crate::ratelimit::ApiFamily;
use crate::secrets::Secret;

/// The methods of the host API, as hosts name them on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    ReadFile,
    WriteFile,
    ReadDirectory,
    Stat,
    Delete,
    SecretGet,
    SecretStore,
    SecretDelete,
    ClipboardRead,
    ClipboardWrite,
    ShowMessage,
    InputBox,
    TerminalCreate,
    TerminalWrite,
    Fetch,
    ExecuteCommand,
}

impl Method {
    /// Every method, in the order node-host/README.md lists them.
    pub(crate) const ALL: [Self; 16] = [
        Self::ReadFile,
        Self::WriteFile,
        Self::ReadDirectory,
        Self::Stat,
        Self::Delete,
        Self::SecretGet,
        Self::SecretStore,
        Self::SecretDelete,
        Self::ClipboardRead,
        Self::ClipboardWrite,
        Self::ShowMessage,
        Self::InputBox,
        Self::TerminalCreate,
        Self::TerminalWrite,
        Self::Fetch,
        Self::ExecuteCommand,
    ];

    /// The wire name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ReadFile => "fs/readFile",
            Self::WriteFile => "fs/writeFile",
            Self::ReadDirectory => "fs/readDirectory",
            Self::Stat => "fs/stat",
            Self::Delete => "fs/delete",
            Self::SecretGet => "secrets/get",
            Self::SecretStore => "secrets/store",
            Self::SecretDelete => "secrets/delete",
            Self::ClipboardRead => "clipboard/readText",
            Self::ClipboardWrite => "clipboard/writeText",
            Self::ShowMessage => "window/showMessage",
            Self::InputBox => "window/showInputBox",
            Self::TerminalCreate => "terminal/create",
            Self::TerminalWrite => "terminal/sendText",
            Self::Fetch => "network/fetch",
            Self::ExecuteCommand => "commands/execute",
        }
    }

    /// The params it takes, as an extension author reads them in an error.
    pub(crate) fn takes(self) -> &'static str {
        match self {
            Self::ReadFile => r#"{"path": string, "encoding"?: "utf8" | "base64"}"#,
            Self::WriteFile => {
                r#"{"path": string, "data": string, "encoding"?: "utf8" | "base64"}"#
            }
            Self::ReadDirectory | Self::Stat => r#"{"path": string}"#,
            Self::Delete => r#"{"path": string, "recursive"?: bool}"#,
            Self::SecretGet | Self::SecretDelete => r#"{"key": string}"#,
            Self::SecretStore => r#"{"key": string, "value": string}"#,
            Self::ClipboardRead => "{}",
            Self::ClipboardWrite => r#"{"text": string}"#,
            Self::ShowMessage => r#"{"level": "info" | "warning" | "error", "message": string}"#,
            Self::InputBox => {
                r#"{"title"?: string, "prompt"?: string, "placeHolder"?: string, "value"?: string, "password"?: bool}"#
            }
            Self::TerminalCreate => r#"{"name"?: string}"#,
            Self::TerminalWrite => r#"{"id": string, "text": string}"#,
            Self::Fetch => {
                r#"{"url": string, "method"?: string, "headers"?: {string: string}, "body"?: string}"#
            }
            Self::ExecuteCommand => r#"{"command": string, "args"?: array}"#,
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }
}

/// How file content travels in a JSON string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Encoding {
    /// The text itself.
    #[default]
    Utf8,
    /// The bytes, base64-encoded.
    Base64,
}

/// The levels of `window/showMessage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum MessageLevel {
    Info,
    Warning,
    Error,
}

impl MessageLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

/// One host API request with its typed params.
#[derive(Debug)]
pub(crate) enum HostCall {
    /// `fs/readFile`: a file's content.
    ReadFile { path: String, encoding: Encoding },
    /// `fs/writeFile`: create or replace a file; `content` is already decoded.
    WriteFile { path: String, content: Vec<u8> },
    /// `fs/readDirectory`: a folder's entries.
    ReadDirectory { path: String },
    /// `fs/stat`: type, size and modification time.
    Stat { path: String },
    /// `fs/delete`: a file, an empty folder, or with `recursive` a whole tree.
    Delete { path: String, recursive: bool },
    /// `secrets/get`: one of the extension's own secrets.
    SecretGet { key: String },
    /// `secrets/store`.
    SecretStore { key: String, value: Secret },
    /// `secrets/delete`.
    SecretDelete { key: String },
    /// `clipboard/readText`.
    ClipboardRead,
    /// `clipboard/writeText`.
    ClipboardWrite { text: String },
    /// `window/showMessage`.
    ShowMessage {
        level: MessageLevel,
        message: String,
    },
    /// `window/showInputBox`: ask the user for a line of text.
    InputBox {
        title: Option<String>,
        prompt: Option<String>,
        placeholder: Option<String>,
        value: Option<String>,
        password: bool,
    },
    /// `terminal/create`.
    TerminalCreate { name: String },
    /// `terminal/sendText`.
    TerminalWrite { id: String, text: String },
    /// `network/fetch`; `target` is the URL's host and port, which the permission is checked on.
    Fetch {
        #[expect(
            dead_code,
            reason = "requests are not carried yet (#16); only `target` is checked"
        )]
        url: String,
        target: HostPort,
        method: String,
        #[expect(dead_code, reason = "requests are not carried yet (#16)")]
        headers: BTreeMap<String, String>,
        #[expect(dead_code, reason = "requests are not carried yet (#16)")]
        body: Option<String>,
    },
    /// `commands/execute`: run a command another extension registered; `args` is a JSON array.
    ExecuteCommand {
        command: String,
        args: Box<RawValue>,
    },
}

/// What a call needs before it may be served: a permission, and where it must apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need<'a> {
    /// The permission, which takes no scope.
    Unscoped(Permission),
    /// The permission on `path`, as the extension wrote it (the check resolves it). With
    /// `subtree`, on everything beneath it too.
    Path {
        permission: Permission,
        path: &'a str,
        subtree: bool,
    },
    /// The permission for a network host and port.
    Host {
        permission: Permission,
        host: &'a str,
        port: u16,
    },
    /// The permission for a command id.
    Command { permission: Permission, id: &'a str },
}

impl Need<'_> {
    /// The permission needed, whatever the scope.
    pub(crate) fn permission(&self) -> Permission {
        match *self {
            Self::Unscoped(permission)
            | Self::Path { permission, .. }
            | Self::Host { permission, .. }
            | Self::Command { permission, .. } => permission,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadFileParams {
    path: String,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFileParams {
    path: String,
    data: String,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathParams {
    path: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteParams {
    path: String,
    #[serde(default)]
    recursive: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyParams {
    key: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreParams {
    key: String,
    value: Secret,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoParams {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TextParams {
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessageParams {
    level: MessageLevel,
    message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct InputBoxParams {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    place_holder: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    password: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalCreateParams {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminalWriteParams {
    id: String,
    text: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FetchParams {
    url: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecuteParams {
    command: String,
    #[serde(default)]
    args: Option<Box<RawValue>>,
}

/// Decodes `raw` as the params of `method`: a JSON object, absent or `null` params reading as
/// `{}`. An array is refused although serde would take it field by field.
fn params<T: DeserializeOwned>(method: Method, raw: Option<&RawValue>) -> Result<T, CallError> {
    let text = match raw.map(|raw| raw.get().trim()) {
        None | Some("null") => "{}",
        Some(text) if text.starts_with('{') => text,
        Some(_) => return Err(CallError::NotAnObject { method }),
    };
    serde_json::from_str(text).map_err(|source| CallError::Params { method, source })
}

fn write_file(p: WriteFileParams) -> Result<HostCall, CallError> {
    let content = match p.encoding.unwrap_or_default() {
        Encoding::Utf8 => p.data.into_bytes(),
        Encoding::Base64 => base64::engine::general_purpose::STANDARD
            .decode(p.data)
            .map_err(|source| CallError::NotBase64 { source })?,
    };
    Ok(HostCall::WriteFile {
        path: p.path,
        content,
    })
}

fn fetch(p: FetchParams) -> Result<HostCall, CallError> {
    let target =
        host_and_port(&p.url).ok_or_else(|| CallError::NotHttpUrl { url: p.url.clone() })?;
    Ok(HostCall::Fetch {
        url: p.url,
        target,
        method: p.method.unwrap_or_else(|| "GET".to_owned()),
        headers: p.headers,
        body: p.body,
    })
}

fn execute_command(p: ExecuteParams) -> Result<HostCall, CallError> {
    let ExecuteParams { command, args } = p;
    if command.is_empty() {
        return Err(CallError::EmptyCommand);
    }
    let args = match args {
        Some(args) if args.get().trim_start().starts_with('[') => args,
        Some(_) => return Err(CallError::ArgsNotArray { command }),
        None => RawValue::from_string("[]".to_owned()).expect("valid JSON"),
    };
    Ok(HostCall::ExecuteCommand { command, args })
}

impl HostCall {
    /// Parses a request: the method names the variant, the params must be exactly its params.
    ///
    /// # Errors
    /// [`CallError::UnknownMethod`] (`MethodNotFound`, listing the valid methods), or an
    /// `InvalidParams` error naming the method, what was wrong and the params it takes.
    pub(crate) fn parse(method: &str, raw: Option<&RawValue>) -> Result<Self, CallError> {
        let Some(method) = Method::from_name(method) else {
            return Err(CallError::UnknownMethod {
                method: method.to_owned(),
            });
        };
        Ok(match method {
            Method::ReadFile => {
                let p: ReadFileParams = params(method, raw)?;
                Self::ReadFile {
                    path: p.path,
                    encoding: p.encoding.unwrap_or_default(),
                }
            }
            Method::WriteFile => write_file(params(method, raw)?)?,
            Method::ReadDirectory => Self::ReadDirectory {
                path: params::<PathParams>(method, raw)?.path,
            },
            Method::Stat => Self::Stat {
                path: params::<PathParams>(method, raw)?.path,
            },
            Method::Delete => {
                let DeleteParams { path, recursive } = params(method, raw)?;
                Self::Delete { path, recursive }
            }
            Method::SecretGet => Self::SecretGet {
                key: params::<KeyParams>(method, raw)?.key,
            },
            Method::SecretStore => {
                let StoreParams { key, value } = params(method, raw)?;
                Self::SecretStore { key, value }
            }
            Method::SecretDelete => Self::SecretDelete {
                key: params::<KeyParams>(method, raw)?.key,
            },
            Method::ClipboardRead => {
                params::<NoParams>(method, raw)?;
                Self::ClipboardRead
            }
            Method::ClipboardWrite => Self::ClipboardWrite {
                text: params::<TextParams>(method, raw)?.text,
            },
            Method::ShowMessage => {
                let MessageParams { level, message } = params(method, raw)?;
                Self::ShowMessage { level, message }
            }
            Method::InputBox => {
                let p: InputBoxParams = params(method, raw)?;
                Self::InputBox {
                    title: p.title,
                    prompt: p.prompt,
                    placeholder: p.place_holder,
                    value: p.value,
                    password: p.password,
                }
            }
            Method::TerminalCreate => Self::TerminalCreate {
                name: params::<TerminalCreateParams>(method, raw)?
                    .name
                    .unwrap_or_default(),
            },
            Method::TerminalWrite => {
                let TerminalWriteParams { id, text } = params(method, raw)?;
                Self::TerminalWrite { id, text }
            }
            Method::Fetch => fetch(params(method, raw)?)?,
            Method::ExecuteCommand => execute_command(params(method, raw)?)?,
        })
    }

    /// Its wire method.
    pub(crate) fn method(&self) -> Method {
        match self {
            Self::ReadFile { .. } => Method::ReadFile,
            Self::WriteFile { .. } => Method::WriteFile,
            Self::ReadDirectory { .. } => Method::ReadDirectory,
            Self::Stat { .. } => Method::Stat,
            Self::Delete { .. } => Method::Delete,
            Self::SecretGet { .. } => Method::SecretGet,
            Self::SecretStore { .. } => Method::SecretStore,
            Self::SecretDelete { .. } => Method::SecretDelete,
            Self::ClipboardRead => Method::ClipboardRead,
            Self::ClipboardWrite { .. } => Method::ClipboardWrite,
            Self::ShowMessage { .. } => Method::ShowMessage,
            Self::InputBox { .. } => Method::InputBox,
            Self::TerminalCreate { .. } => Method::TerminalCreate,
            Self::TerminalWrite { .. } => Method::TerminalWrite,
            Self::Fetch { .. } => Method::Fetch,
            Self::ExecuteCommand { .. } => Method::ExecuteCommand,
        }
    }

    /// The rate-limit family it is charged to.
    pub(crate) fn family(&self) -> ApiFamily {
        match self {
            Self::ReadFile { .. }
            | Self::WriteFile { .. }
            | Self::ReadDirectory { .. }
            | Self::Stat { .. }
            | Self::Delete { .. } => ApiFamily::FileSystem,
            Self::SecretGet { .. } | Self::SecretStore { .. } | Self::SecretDelete { .. } => {
                ApiFamily::Secrets
            }
            Self::ClipboardRead | Self::ClipboardWrite { .. } => ApiFamily::Clipboard,
            Self::ShowMessage { .. } | Self::InputBox { .. } => ApiFamily::Ui,
            Self::TerminalCreate { .. } | Self::TerminalWrite { .. } => ApiFamily::Terminal,
            Self::Fetch { .. } => ApiFamily::Network,
            Self::ExecuteCommand { .. } => ApiFamily::Commands,
        }
    }

    /// The permission it needs and where: the single statement of what each call is allowed by.
    pub(crate) fn needs(&self) -> Need<'_> {
        fn path(permission: Permission, path: &str) -> Need<'_> {
            Need::Path {
                permission,
                path,
                subtree: false,
            }
        }
        match self {
            Self::ReadFile { path: p, .. }
            | Self::ReadDirectory { path: p }
            | Self::Stat { path: p } => path(Permission::FileSystemRead, p),
            Self::WriteFile { path: p, .. } => path(Permission::FileSystemWrite, p),
            // Everything a recursive delete would remove must be deletable on its own.
            Self::Delete { path, recursive } => Need::Path {
                permission: Permission::FileSystemDelete,
                path,
                subtree: *recursive,
            },
            Self::SecretGet { .. } => Need::Unscoped(Permission::SecretsRead),
            Self::SecretStore { .. } | Self::SecretDelete { .. } => {
                Need::Unscoped(Permission::SecretsWrite)
            }
            Self::ClipboardRead => Need::Unscoped(Permission::ClipboardRead),
            Self::ClipboardWrite { .. } => Need::Unscoped(Permission::ClipboardWrite),
            Self::ShowMessage { .. } => Need::Unscoped(Permission::UiShowMessage),
            Self::InputBox { .. } => Need::Unscoped(Permission::UiInput),
            Self::TerminalCreate { .. } => Need::Unscoped(Permission::TerminalCreate),
            Self::TerminalWrite { .. } => Need::Unscoped(Permission::TerminalWrite),
            Self::Fetch { target, .. } => Need::Host {
                permission: Permission::NetworkHttp,
                host: &target.host,
                port: target.port,
            },
            Self::ExecuteCommand { command, .. } => Need::Command {
                permission: Permission::CommandsExecute,
                id: command,
            },
        }
    }
}

#[cfg(test)]
#[path = "call_tests.rs"]
mod tests;
