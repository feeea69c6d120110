//! Table tests of [`HostCall::parse`], [`HostCall::needs`] and [`HostCall::family`].

use std::collections::BTreeSet;

use super::*;
use crate::permissions::ScopeKind;
use crate::wire::ErrorCode;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("valid JSON")
}

fn parse(method: &str, params: &str) -> Result<HostCall, CallError> {
    HostCall::parse(method, Some(&raw(params)))
}

fn parsed(method: &str, params: &str) -> HostCall {
    parse(method, params).unwrap_or_else(|e| panic!("{method} {params}: {e}"))
}

/// One valid request per method, with the call it parses into (as its `Debug`, which also
/// shows a secret stays redacted).
const SAMPLES: &[(&str, &str, &str)] = &[
    (
        "fs/readFile",
        r#"{"path": "/ws/a.txt", "encoding": "utf8"}"#,
        r#"ReadFile { path: "/ws/a.txt", encoding: Utf8 }"#,
    ),
    (
        "fs/writeFile",
        r#"{"path": "/ws/a.bin", "data": "AP8=", "encoding": "base64"}"#,
        r#"WriteFile { path: "/ws/a.bin", content: [0, 255] }"#,
    ),
    (
        "fs/readDirectory",
        r#"{"path": "/ws/src"}"#,
        r#"ReadDirectory { path: "/ws/src" }"#,
    ),
    (
        "fs/stat",
        r#"{"path": "/ws/a.txt"}"#,
        r#"Stat { path: "/ws/a.txt" }"#,
    ),
    (
        "fs/delete",
        r#"{"path": "/ws/out", "recursive": true}"#,
        r#"Delete { path: "/ws/out", recursive: true }"#,
    ),
    (
        "secrets/get",
        r#"{"key": "token"}"#,
        r#"SecretGet { key: "token" }"#,
    ),
    (
        "secrets/store",
        r#"{"key": "token", "value": "s3cret"}"#,
        r#"SecretStore { key: "token", value: Secret(<redacted>) }"#,
    ),
    (
        "secrets/delete",
        r#"{"key": "token"}"#,
        r#"SecretDelete { key: "token" }"#,
    ),
    ("clipboard/readText", "{}", "ClipboardRead"),
    (
        "clipboard/writeText",
        r#"{"text": "copied"}"#,
        r#"ClipboardWrite { text: "copied" }"#,
    ),
    (
        "window/showMessage",
        r#"{"level": "warning", "message": "careful"}"#,
        r#"ShowMessage { level: Warning, message: "careful" }"#,
    ),
    (
        "window/showInputBox",
        r#"{"prompt": "Name?", "placeHolder": "ada", "password": true}"#,
        r#"InputBox { title: None, prompt: Some("Name?"), placeholder: Some("ada"), value: None, password: true }"#,
    ),
    (
        "terminal/create",
        r#"{"name": "build"}"#,
        r#"TerminalCreate { name: "build" }"#,
    ),
    (
        "terminal/sendText",
        r#"{"id": "t1", "text": "make\n"}"#,
        r#"TerminalWrite { id: "t1", text: "make\n" }"#,
    ),
    (
        "network/fetch",
        r#"{"url": "https://user:pw@API.example.com:8443/v1", "method": "POST", "headers": {"a": "b"}, "body": "{}"}"#,
        r#"Fetch { url: "https://user:pw@API.example.com:8443/v1", target: HostPort { host: "api.example.com", port: 8443 }, method: "POST", headers: {"a": "b"}, body: Some("{}") }"#,
    ),
    (
        "commands/execute",
        r#"{"command": "git.commit", "args": [1, "two"]}"#,
        r#"ExecuteCommand { command: "git.commit", args: RawValue([1, "two"]) }"#,
    ),
];

#[test]
fn every_method_parses_into_its_variant_with_exactly_its_params() {
    for (method, params, expected) in SAMPLES {
        let call = parsed(method, params);
        assert_eq!(format!("{call:?}"), *expected, "{method}");
        assert_eq!(call.method().name(), *method);
    }
    let covered: BTreeSet<_> = SAMPLES.iter().map(|(m, ..)| *m).collect();
    let all: BTreeSet<_> = Method::ALL.iter().map(|m| m.name()).collect();
    assert_eq!(covered, all, "every method has a sample");
    assert_eq!(all.len(), Method::ALL.len(), "method names are unique");
}

#[test]
fn optional_params_take_their_defaults() {
    let table = [
        (
            "fs/readFile",
            r#"{"path": "/a"}"#,
            r#"ReadFile { path: "/a", encoding: Utf8 }"#,
        ),
        (
            "fs/readFile",
            r#"{"path": "/a", "encoding": null}"#,
            r#"ReadFile { path: "/a", encoding: Utf8 }"#,
        ),
        (
            "fs/writeFile",
            r#"{"path": "/a", "data": "hé"}"#,
            r#"WriteFile { path: "/a", content: [104, 195, 169] }"#,
        ),
        (
            "fs/delete",
            r#"{"path": "/a"}"#,
            r#"Delete { path: "/a", recursive: false }"#,
        ),
        ("clipboard/readText", "null", "ClipboardRead"),
        (
            "window/showInputBox",
            "{}",
            "InputBox { title: None, prompt: None, placeholder: None, value: None, password: false }",
        ),
        ("terminal/create", "{}", r#"TerminalCreate { name: "" }"#),
        (
            "network/fetch",
            r#"{"url": "http://a.b/"}"#,
            r#"Fetch { url: "http://a.b/", target: HostPort { host: "a.b", port: 80 }, method: "GET", headers: {}, body: None }"#,
        ),
        (
            "commands/execute",
            r#"{"command": "a.b"}"#,
            r#"ExecuteCommand { command: "a.b", args: RawValue([]) }"#,
        ),
    ];
    for (method, params, expected) in table {
        assert_eq!(
            format!("{:?}", parsed(method, params)),
            expected,
            "{params}"
        );
    }
    let absent = HostCall::parse("clipboard/readText", None).unwrap();
    assert_eq!(format!("{absent:?}"), "ClipboardRead");
}

#[test]
#[expect(clippy::too_many_lines, reason = "one row per malformed request")]
fn bad_params_are_refused_with_what_was_wrong_and_what_the_method_takes() {
    let table = [
        (
            "fs/readFile",
            "{}",
            vec![
                r#"invalid params for `fs/readFile`, which takes {"path": string, "encoding"?: "utf8" | "base64"}"#,
                "missing field `path`",
            ],
        ),
        (
            "fs/readFile",
            r#"{"path": "/a", "encoding": "latin1"}"#,
            vec!["unknown variant `latin1`, expected `utf8` or `base64`"],
        ),
        (
            "fs/readFile",
            r#"{"path": "/a", "data": "x"}"#,
            vec!["unknown field `data`, expected `path` or `encoding`"],
        ),
        (
            "fs/readDirectory",
            r#"{"path": "/a", "encoding": "utf8"}"#,
            vec!["unknown field `encoding`, expected `path`"],
        ),
        (
            "fs/writeFile",
            r#"{"path": "/a"}"#,
            vec!["missing field `data`"],
        ),
        (
            "fs/writeFile",
            r#"{"path": "/a", "data": "!!", "encoding": "base64"}"#,
            vec![r#"`data` is not base64 (send text with encoding "utf8"): "#],
        ),
        (
            "fs/stat",
            r#"{"path": 1}"#,
            vec!["invalid type: integer `1`, expected a string"],
        ),
        (
            "fs/stat",
            r#"["/a"]"#,
            vec![r#"params for `fs/stat` must be a JSON object: {"path": string}"#],
        ),
        (
            "fs/delete",
            r#"{"path": "/a", "recursive": "yes"}"#,
            vec!["invalid type: string \"yes\", expected a boolean"],
        ),
        ("secrets/get", "{}", vec!["missing field `key`"]),
        (
            "secrets/store",
            r#"{"key": "k"}"#,
            vec![
                r#"which takes {"key": string, "value": string}"#,
                "missing field `value`",
            ],
        ),
        (
            "secrets/delete",
            r#"{"key": "k", "value": "v"}"#,
            vec!["unknown field `value`"],
        ),
        (
            "clipboard/readText",
            r#"{"x": 1}"#,
            vec!["`clipboard/readText`, which takes {}", "unknown field `x`"],
        ),
        ("clipboard/writeText", "{}", vec!["missing field `text`"]),
        (
            "window/showMessage",
            r#"{"level": "fatal", "message": "m"}"#,
            vec!["unknown variant `fatal`, expected one of `info`, `warning`, `error`"],
        ),
        (
            "window/showInputBox",
            r#"{"ignoreFocusOut": true}"#,
            vec!["unknown field `ignoreFocusOut`"],
        ),
        (
            "terminal/create",
            r#"{"id": "t1"}"#,
            vec!["unknown field `id`, expected `name`"],
        ),
        (
            "terminal/sendText",
            r#"{"id": "t1"}"#,
            vec!["missing field `text`"],
        ),
        ("network/fetch", "{}", vec!["missing field `url`"]),
        (
            "network/fetch",
            r#"{"url": "ftp://a.b/"}"#,
            vec!["`ftp://a.b/` is not an http(s) URL; fetch takes http:// and https:// URLs"],
        ),
        (
            "network/fetch",
            r#"{"url": "https://a.b/", "headers": {"a": 1}}"#,
            vec!["invalid type: integer `1`, expected a string"],
        ),
        (
            "commands/execute",
            r#"{"command": ""}"#,
            vec!["`command` is empty; name the command to run"],
        ),
        (
            "commands/execute",
            r#"{"command": "a.b", "args": {"x": 1}}"#,
            vec!["the arguments of command `a.b` must be a JSON array"],
        ),
        (
            "commands/execute",
            r#"{"id": "a.b"}"#,
            vec!["unknown field `id`, expected `command` or `args`"],
        ),
    ];
    for (method, params, needles) in table {
        let error = parse(method, params).expect_err(params).into_error_object();
        assert!(
            error.is(ErrorCode::InvalidParams),
            "{method} {params}: {error}"
        );
        for needle in needles {
            assert!(error.message.contains(needle), "{method} {params}: {error}");
        }
    }
}

#[test]
fn unknown_methods_name_the_valid_ones() {
    let table = [
        (
            "fs/read",
            "the host API has no method `fs/read`; the fs/ methods are fs/readFile, fs/writeFile, fs/readDirectory, fs/stat, fs/delete",
        ),
        (
            "window/showQuickPick",
            "the window/ methods are window/showMessage, window/showInputBox",
        ),
        (
            "commands/executeCommand",
            "the commands/ methods are commands/execute",
        ),
        // The supervisor-to-host method is not part of the host API.
        (
            "command/execute",
            "no method `command/execute`; valid methods are fs/readFile, ",
        ),
        ("", "no method ``; valid methods are fs/readFile, "),
    ];
    for (method, needle) in table {
        let error = parse(method, "{}").expect_err(method).into_error_object();
        assert!(error.is(ErrorCode::MethodNotFound), "{method}: {error}");
        assert!(error.message.contains(needle), "{method}: {error}");
    }
    let error = parse("nope", "{}").unwrap_err().into_error_object();
    for method in Method::ALL {
        assert!(error.message.contains(method.name()), "{error}");
    }
}

#[test]
#[expect(clippy::too_many_lines, reason = "one row per call")]
fn each_call_needs_its_permission_in_its_scope() {
    use Permission as P;
    let path = |permission, path, subtree| Need::Path {
        permission,
        path,
        subtree,
    };
    let table = [
        (
            "fs/readFile",
            r#"{"path": "/ws/a"}"#,
            path(P::FileSystemRead, "/ws/a", false),
        ),
        (
            "fs/readDirectory",
            r#"{"path": "/ws"}"#,
            path(P::FileSystemRead, "/ws", false),
        ),
        (
            "fs/stat",
            r#"{"path": "/ws/a"}"#,
            path(P::FileSystemRead, "/ws/a", false),
        ),
        (
            "fs/writeFile",
            r#"{"path": "/ws/a", "data": ""}"#,
            path(P::FileSystemWrite, "/ws/a", false),
        ),
        (
            "fs/delete",
            r#"{"path": "/ws/a"}"#,
            path(P::FileSystemDelete, "/ws/a", false),
        ),
        // A recursive delete needs the permission on everything beneath, too.
        (
            "fs/delete",
            r#"{"path": "/ws/a", "recursive": true}"#,
            path(P::FileSystemDelete, "/ws/a", true),
        ),
        (
            "secrets/get",
            r#"{"key": "k"}"#,
            Need::Unscoped(P::SecretsRead),
        ),
        (
            "secrets/store",
            r#"{"key": "k", "value": "v"}"#,
            Need::Unscoped(P::SecretsWrite),
        ),
        (
            "secrets/delete",
            r#"{"key": "k"}"#,
            Need::Unscoped(P::SecretsWrite),
        ),
        ("clipboard/readText", "{}", Need::Unscoped(P::ClipboardRead)),
        (
            "clipboard/writeText",
            r#"{"text": ""}"#,
            Need::Unscoped(P::ClipboardWrite),
        ),
        (
            "window/showMessage",
            r#"{"level": "info", "message": ""}"#,
            Need::Unscoped(P::UiShowMessage),
        ),
        ("window/showInputBox", "{}", Need::Unscoped(P::UiInput)),
        ("terminal/create", "{}", Need::Unscoped(P::TerminalCreate)),
        (
            "terminal/sendText",
            r#"{"id": "t", "text": ""}"#,
            Need::Unscoped(P::TerminalWrite),
        ),
        // The host and port the URL names, not what credentials or a backslash pretend.
        (
            "network/fetch",
            r#"{"url": "https://api.example.com\\@evil.com/"}"#,
            Need::Host {
                permission: P::NetworkHttp,
                host: "api.example.com",
                port: 443,
            },
        ),
        (
            "network/fetch",
            r#"{"url": "http://good.com@Evil.com:8080/"}"#,
            Need::Host {
                permission: P::NetworkHttp,
                host: "evil.com",
                port: 8080,
            },
        ),
        (
            "commands/execute",
            r#"{"command": "git.commit"}"#,
            Need::Command {
                permission: P::CommandsExecute,
                id: "git.commit",
            },
        ),
    ];
    for (method, params, expected) in table {
        let call = parsed(method, params);
        assert_eq!(call.needs(), expected, "{method} {params}");
    }
}

#[test]
fn every_grantable_permission_is_needed_by_some_call_in_the_scope_it_takes() {
    let mut needed = BTreeSet::new();
    for (method, params, _) in SAMPLES {
        let call = parsed(method, params);
        let need = call.needs();
        let kind = match need {
            Need::Unscoped(_) => ScopeKind::None,
            Need::Path { .. } => ScopeKind::Path,
            Need::Host { .. } => ScopeKind::Host,
            Need::Command { .. } => ScopeKind::Command,
        };
        assert_eq!(need.permission().scope_kind(), kind, "{method}");
        needed.insert(need.permission());
    }
    for permission in Permission::ALL {
        assert!(
            needed.contains(&permission),
            "`{permission}` can be granted but no call needs it: enforce it or retire it"
        );
    }
}

#[test]
fn each_call_is_charged_to_the_family_its_method_names() {
    for (method, params, _) in SAMPLES {
        let call = parsed(method, params);
        assert_eq!(call.family(), ApiFamily::of_method(method), "{method}");
        assert_ne!(call.family(), ApiFamily::Other, "{method}");
    }
}
