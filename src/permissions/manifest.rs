//! Permission strings as extensions write them: `family.action`, optionally `:scope`.
//!
//! | permission | scope (after `:`) | unscoped means |
//! |---|---|---|
//! | `fileSystem.read`, `fileSystem.write`, `fileSystem.delete` | `[root:]glob`, root `workspace` (default), `storage` or `extension` | the whole workspace (`workspace:**`) |
//! | `network.http` | `host[:port]`, `*.example.com[:port]` | any host |
//! | `commands.execute` | a command id, or a prefix `git.*` | any command |
//! | `clipboard.read`, `clipboard.write`, `secrets.read`, `secrets.write`, `ui.showMessage`, `ui.input`, `terminal.create`, `terminal.write` | none | |
//!
//! Globs, matched segment by segment against the path relative to the root (see [`Glob`]):
//!
//! | glob | matches |
//! |---|---|
//! | `*` | any run of characters within one segment |
//! | `?` | exactly one character (not one byte: `?.txt` matches `é.txt`) |
//! | `[abc]`, `[a-z]`, `[!abc]` or `[^abc]` | one character in (or not in) the set; `]` first is literal |
//! | `{a,b}` | one of the alternatives, within one segment (`*.{js,ts}`); nesting allowed, at most 64 per segment |
//! | `**` | a whole segment only: any number of segments, including none |
//!
//! A literal `*`, `?`, `[` or `{` is written as a class (`[*]`); backslashes are refused. A glob
//! that would not mean what it looks like (unclosed `[` or `{`, `[]`, `{}`, `src/**.js`, a `/`
//! inside braces) is refused when the manifest loads, with a message saying what to write.

use std::fmt;
use std::path::Path;

use super::glob::Glob;

/// One capability an extension can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Permission {
    /// Read files and list folders.
    FileSystemRead,
    /// Create and write files and folders.
    FileSystemWrite,
    /// Delete files and folders.
    FileSystemDelete,
    /// HTTP(S) requests.
    NetworkHttp,
    /// Read the clipboard.
    ClipboardRead,
    /// Write the clipboard.
    ClipboardWrite,
    /// Read the extension's own secrets.
    SecretsRead,
    /// Store and delete the extension's own secrets.
    SecretsWrite,
    /// Show messages to the user.
    UiShowMessage,
    /// Ask the user for input.
    UiInput,
    /// Open terminals.
    TerminalCreate,
    /// Send text to terminals it opened.
    TerminalWrite,
    /// Run commands of other extensions.
    CommandsExecute,
}

/// What a permission's scope is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// The permission takes no scope.
    None,
    /// Paths under a root.
    Path,
    /// Network hosts.
    Host,
    /// Command ids.
    Command,
}

impl Permission {
    /// Every permission, in documentation order.
    pub const ALL: [Self; 13] = [
        Self::FileSystemRead,
        Self::FileSystemWrite,
        Self::FileSystemDelete,
        Self::NetworkHttp,
        Self::ClipboardRead,
        Self::ClipboardWrite,
        Self::SecretsRead,
        Self::SecretsWrite,
        Self::UiShowMessage,
        Self::UiInput,
        Self::TerminalCreate,
        Self::TerminalWrite,
        Self::CommandsExecute,
    ];

    /// The dot-notation name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::FileSystemRead => "fileSystem.read",
            Self::FileSystemWrite => "fileSystem.write",
            Self::FileSystemDelete => "fileSystem.delete",
            Self::NetworkHttp => "network.http",
            Self::ClipboardRead => "clipboard.read",
            Self::ClipboardWrite => "clipboard.write",
            Self::SecretsRead => "secrets.read",
            Self::SecretsWrite => "secrets.write",
            Self::UiShowMessage => "ui.showMessage",
            Self::UiInput => "ui.input",
            Self::TerminalCreate => "terminal.create",
            Self::TerminalWrite => "terminal.write",
            Self::CommandsExecute => "commands.execute",
        }
    }

    /// The permission with this name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.name() == name)
    }

    /// What its scope is made of.
    #[must_use]
    pub fn scope_kind(self) -> ScopeKind {
        match self {
            Self::FileSystemRead | Self::FileSystemWrite | Self::FileSystemDelete => {
                ScopeKind::Path
            }
            Self::NetworkHttp => ScopeKind::Host,
            Self::CommandsExecute => ScopeKind::Command,
            _ => ScopeKind::None,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The root a path scope is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeRoot {
    /// The workspace folders.
    Workspace,
    /// The extension's private storage folder.
    Storage,
    /// The extension's own folder.
    Extension,
}

impl ScopeRoot {
    /// The name used in scopes.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Workspace => "workspace",
            Self::Storage => "storage",
            Self::Extension => "extension",
        }
    }
}

/// Where a permission applies.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Paths under `root` matching the glob.
    Path {
        /// The root.
        root: ScopeRoot,
        /// The glob, relative to the root.
        glob: Glob,
    },
    /// A host pattern.
    Host {
        /// Lowercase host, or `*.suffix`.
        host: String,
        /// A port, or any.
        port: Option<u16>,
    },
    /// A command id, or a prefix when it ends in `.*`.
    Command(String),
}

/// One entry of a manifest's (or a grant's) permission list, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PermissionRequest {
    /// The permission.
    pub permission: Permission,
    /// Where it applies; `None` is everywhere the permission can apply.
    pub scope: Option<Scope>,
}

/// A permission string that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission {entry:?}: {problem}")]
pub struct PermissionParseError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong and what is valid.
    pub problem: String,
}

/// Names that were permissions and are not any more, with what to do instead. Every permission
/// that can be granted is checked by some host call; one that no call uses would promise
/// something nothing enforces, so it is refused by name rather than granted for nothing.
const RETIRED: &[(&str, &str)] = &[(
    "network.webSocket",
    "no host call opens WebSocket connections, so a grant of it allowed nothing; remove it from the manifest",
)];

impl PermissionRequest {
    /// Parses `family.action[:scope]`.
    ///
    /// # Errors
    /// An unknown permission (the message lists the valid ones), a retired one (the message says
    /// why), a scope on a permission that takes none, or a malformed scope.
    pub fn parse(entry: &str) -> Result<Self, PermissionParseError> {
        let fail = |problem: String| PermissionParseError {
            entry: entry.to_owned(),
            problem,
        };
        let (name, scope) = match entry.split_once(':') {
            Some((name, scope)) => (name, Some(scope)),
            None => (entry, None),
        };
        if let Some((_, why)) = RETIRED.iter().find(|(retired, _)| *retired == name) {
            return Err(fail(format!("`{name}` is no longer a permission: {why}")));
        }
        let permission = Permission::from_name(name).ok_or_else(|| {
            let valid: Vec<_> = Permission::ALL.iter().map(|p| p.name()).collect();
            fail(format!(
                "unknown permission `{name}`; valid permissions are {}",
                valid.join(", ")
            ))
        })?;
        let scope = match (scope, permission.scope_kind()) {
            (None, _) => None,
            (Some(_), ScopeKind::None) => return Err(fail(format!("`{name}` takes no scope"))),
            (Some(scope), ScopeKind::Path) => Some(parse_path_scope(scope).map_err(fail)?),
            (Some(scope), ScopeKind::Host) => Some(parse_host_scope(scope).map_err(fail)?),
            (Some(scope), ScopeKind::Command) => Some(parse_command_scope(scope).map_err(fail)?),
        };
        Ok(Self { permission, scope })
    }

    /// The one definition of where a `fileSystem.*` entry applies: its root and glob, an
    /// unscoped entry being the whole workspace (`workspace:**`). `None` for every other
    /// permission (and for a path permission built by hand with a scope of another kind, which
    /// covers no path).
    #[must_use]
    pub fn path_scope(&self) -> Option<(ScopeRoot, &Glob)> {
        if self.permission.scope_kind() != ScopeKind::Path {
            return None;
        }
        match &self.scope {
            None => Some((ScopeRoot::Workspace, Glob::everything_ref())),
            Some(Scope::Path { root, glob }) => Some((*root, glob)),
            Some(_) => None,
        }
    }

    /// Whether this allows or denies `permission` on the path `relative` under `root`.
    #[must_use]
    pub fn covers_path(&self, permission: Permission, root: ScopeRoot, relative: &Path) -> bool {
        self.permission == permission
            && self
                .path_scope()
                .is_some_and(|(scope_root, glob)| scope_root == root && glob.matches(relative))
    }

    /// Whether this covers `permission` for `host:port`.
    #[must_use]
    pub fn covers_host(&self, permission: Permission, host: &str, port: u16) -> bool {
        if self.permission != permission {
            return false;
        }
        match &self.scope {
            None => true,
            Some(Scope::Host {
                host: pattern,
                port: wanted,
            }) => {
                let host = host.to_ascii_lowercase();
                let host_ok = match pattern.strip_prefix("*.") {
                    Some(suffix) => {
                        host.len() > suffix.len() + 1
                            && host.ends_with(suffix)
                            && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
                    }
                    None => host == *pattern,
                };
                host_ok && wanted.is_none_or(|wanted| wanted == port)
            }
            Some(_) => false,
        }
    }

    /// Whether this covers `permission` for the command `id`.
    #[must_use]
    pub fn covers_command(&self, permission: Permission, id: &str) -> bool {
        if self.permission != permission {
            return false;
        }
        match &self.scope {
            None => true,
            Some(Scope::Command(pattern)) => match pattern.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => id == pattern,
            },
            Some(_) => false,
        }
    }
}

impl fmt::Display for PermissionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.permission.name())?;
        match &self.scope {
            None => Ok(()),
            Some(Scope::Path { root, glob }) => write!(f, ":{}:{glob}", root.name()),
            Some(Scope::Host {
                host,
                port: Some(port),
            }) => write!(f, ":{host}:{port}"),
            Some(Scope::Host { host, port: None }) => write!(f, ":{host}"),
            Some(Scope::Command(id)) => write!(f, ":{id}"),
        }
    }
}

fn parse_path_scope(scope: &str) -> Result<Scope, String> {
    let (root, glob) = match scope.split_once(':') {
        Some(("workspace", glob)) => (ScopeRoot::Workspace, glob),
        Some(("storage", glob)) => (ScopeRoot::Storage, glob),
        Some(("extension", glob)) => (ScopeRoot::Extension, glob),
        Some((other, _)) => {
            return Err(format!(
                "unknown path root `{other}`; use workspace, storage or extension"
            ));
        }
        None => (ScopeRoot::Workspace, scope),
    };
    let glob = Glob::parse(glob).map_err(|e| e.to_string())?;
    Ok(Scope::Path { root, glob })
}

fn parse_host_scope(scope: &str) -> Result<Scope, String> {
    let (host, port) = match scope.rsplit_once(':') {
        Some((host, port)) => {
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| format!("`{port}` is not a port (1-65535)"))?;
            (host, Some(port))
        }
        None => (scope, None),
    };
    let bare = host.strip_prefix("*.").unwrap_or(host);
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if bare.is_empty() || bare.len() > 253 || !bare.split('.').all(valid_label) {
        return Err(format!(
            "`{host}` is not a host name; use `example.com`, `*.example.com` or an IPv4 address, with an optional `:port`"
        ));
    }
    Ok(Scope::Host {
        host: host.to_ascii_lowercase(),
        port,
    })
}

fn parse_command_scope(scope: &str) -> Result<Scope, String> {
    let bare = scope.strip_suffix(".*").unwrap_or(scope);
    if bare.is_empty()
        || !bare
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(format!(
            "`{scope}` is not a command id or a prefix such as `git.*`"
        ));
    }
    Ok(Scope::Command(scope.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(entry: &str) -> PermissionRequest {
        PermissionRequest::parse(entry).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_permission_round_trips_by_name() {
        for permission in Permission::ALL {
            assert_eq!(p(permission.name()).permission, permission);
        }
    }

    #[test]
    fn parse_errors_name_the_entry_and_what_is_valid() {
        let table = [
            (
                "fileSystem.execute",
                "valid permissions are fileSystem.read",
            ),
            ("filesystem.read", "unknown permission `filesystem.read`"),
            ("clipboard.read:x", "takes no scope"),
            ("fileSystem.read:/etc/**", "relative glob"),
            ("fileSystem.read:../x", "`..` segments"),
            ("fileSystem.read:home:x", "unknown path root `home`"),
            (
                "fileSystem.read:src/{a,b",
                "unclosed `{` in `{a,b`; close it, as in `src/{a,b}`",
            ),
            (
                "fileSystem.read:workspace:src/[ab",
                "unclosed `[` in `[ab`; close it, as in `src/[ab]`",
            ),
            ("fileSystem.write:{a/b,c}", "`/` inside `{...}`"),
            ("fileSystem.read:src/[]", "empty class `[]`"),
            ("fileSystem.read:{}", "empty `{}`"),
            ("fileSystem.read:[z-a]", "runs backwards; write `a-z`"),
            (
                "fileSystem.delete:src/**.js",
                "write `src/*.js` to match within one folder, or `src/**/*.js`",
            ),
            ("fileSystem.read:a\\b", "no backslashes"),
            ("network.http:exa mple.com", "is not a host name"),
            ("network.http:example.com:0", "is not a port"),
            ("network.http:example.com:99999", "is not a port"),
            ("commands.execute:rm -rf", "is not a command id"),
            (
                "network.webSocket:a.com",
                "`network.webSocket` is no longer a permission: no host call opens WebSocket connections",
            ),
            ("", "unknown permission"),
        ];
        for (entry, needle) in table {
            let err = PermissionRequest::parse(entry).unwrap_err().to_string();
            assert!(
                err.contains(needle) && err.contains(&format!("{entry:?}")),
                "{entry}: {err}"
            );
        }
    }

    #[test]
    fn path_scopes() {
        let ws = ScopeRoot::Workspace;
        let table = [
            ("fileSystem.read", ws, "any/thing.txt", true),
            ("fileSystem.read", ScopeRoot::Storage, "x", false),
            ("fileSystem.read:src/**", ws, "src/a/b.rs", true),
            ("fileSystem.read:src/**", ws, "src", true),
            ("fileSystem.read:src/**", ws, "srcx/a", false),
            ("fileSystem.read:src/*.rs", ws, "src/main.rs", true),
            ("fileSystem.read:src/*.rs", ws, "src/a/main.rs", false),
            ("fileSystem.read:**/*.md", ws, "docs/a/README.md", true),
            ("fileSystem.read:**/*.md", ws, "README.md", true),
            ("fileSystem.read:?.txt", ws, "a.txt", true),
            ("fileSystem.read:?.txt", ws, "ab.txt", false),
            ("fileSystem.read:?.txt", ws, "é.txt", true),
            ("fileSystem.read:**/*.{key,pem}", ws, "a/b.pem", true),
            ("fileSystem.read:**/*.{key,pem}", ws, "a/b.rs", false),
            ("fileSystem.read:[ab]/**", ws, "b/x", true),
            ("fileSystem.read:[!ab]/**", ws, "b/x", false),
            ("fileSystem.read:src/**", ws, "src/../secret", false),
            (
                "fileSystem.read:storage:**",
                ScopeRoot::Storage,
                "cache/x",
                true,
            ),
            ("fileSystem.read:storage:**", ws, "cache/x", false),
        ];
        for (entry, root, path, expected) in table {
            assert_eq!(
                p(entry).covers_path(Permission::FileSystemRead, root, Path::new(path)),
                expected,
                "{entry} {root:?} {path}"
            );
        }
        assert!(!p("fileSystem.write").covers_path(Permission::FileSystemRead, ws, Path::new("a")));
    }

    #[test]
    fn path_scope_is_the_one_definition_of_where_a_path_permission_applies() {
        let table = [
            ("fileSystem.read", Some((ScopeRoot::Workspace, "**"))),
            (
                "fileSystem.write:src/**",
                Some((ScopeRoot::Workspace, "src/**")),
            ),
            (
                "fileSystem.delete:storage:a/*",
                Some((ScopeRoot::Storage, "a/*")),
            ),
            (
                "fileSystem.read:extension:**",
                Some((ScopeRoot::Extension, "**")),
            ),
            ("network.http", None),
            ("network.http:a.com", None),
            ("clipboard.read", None),
        ];
        for (entry, expected) in table {
            let parsed = p(entry);
            let scope = parsed
                .path_scope()
                .map(|(root, glob)| (root, glob.to_string()));
            assert_eq!(scope, expected.map(|(r, g)| (r, g.to_owned())), "{entry}");
        }
        assert!(p("fileSystem.read").path_scope().unwrap().1.is_everything());
        // A path permission carrying a scope of another kind (only possible by hand) covers
        // no path.
        let odd = PermissionRequest {
            permission: Permission::FileSystemRead,
            scope: Some(Scope::Command("a".into())),
        };
        assert_eq!(odd.path_scope(), None);
        assert!(!odd.covers_path(
            Permission::FileSystemRead,
            ScopeRoot::Workspace,
            Path::new("a")
        ));
    }

    #[test]
    fn hostile_globs_match_in_polynomial_time() {
        let deep: Vec<String> = (0..2000).map(|i| format!("d{i}")).collect();
        let deep_path = deep.join("/") + "/y";
        let name = "a".repeat(4000);
        let cases = [
            (
                "fileSystem.read:**/**/**/**/**/**/**/**/**/**/**/**/x",
                deep_path.clone(),
                false,
            ),
            (
                "fileSystem.read:**/**/**/**/**/**/**/**/**/**/**/**/y",
                deep_path,
                true,
            ),
            (
                "fileSystem.read:*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b",
                name.clone(),
                false,
            ),
            (
                "fileSystem.read:*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a",
                name,
                true,
            ),
        ];
        // With naive backtracking each of these would run for longer than anyone would wait;
        // finishing at all is the assertion, the expected results check correctness.
        for (entry, path, expected) in cases {
            let covered = p(entry).covers_path(
                Permission::FileSystemRead,
                ScopeRoot::Workspace,
                Path::new(&path),
            );
            assert_eq!(covered, expected, "{entry}");
        }
        let huge = format!("fileSystem.read:{}", vec!["a"; 40].join("/"));
        assert!(
            PermissionRequest::parse(&huge)
                .unwrap_err()
                .to_string()
                .contains("at most 32 segments")
        );
    }

    #[test]
    fn host_scopes() {
        let table = [
            ("network.http", "anything.org", 80, true),
            ("network.http:api.github.com", "api.github.com", 443, true),
            ("network.http:api.github.com", "API.GitHub.com", 443, true),
            ("network.http:api.github.com", "github.com", 443, false),
            (
                "network.http:api.github.com:443",
                "api.github.com",
                80,
                false,
            ),
            ("network.http:*.example.com", "a.example.com", 443, true),
            ("network.http:*.example.com", "a.b.example.com", 443, true),
            ("network.http:*.example.com", "example.com", 443, false),
            ("network.http:*.example.com", "badexample.com", 443, false),
            ("network.http:127.0.0.1:8080", "127.0.0.1", 8080, true),
        ];
        for (entry, host, port, expected) in table {
            assert_eq!(
                p(entry).covers_host(Permission::NetworkHttp, host, port),
                expected,
                "{entry} {host}:{port}"
            );
        }
        assert!(!p("network.http").covers_host(Permission::CommandsExecute, "a.com", 443));
    }

    #[test]
    fn command_scopes() {
        assert!(
            p("commands.execute:git.*").covers_command(Permission::CommandsExecute, "git.commit")
        );
        assert!(
            !p("commands.execute:git.*").covers_command(Permission::CommandsExecute, "gitx.commit")
        );
        assert!(p("commands.execute:a.b").covers_command(Permission::CommandsExecute, "a.b"));
        assert!(!p("commands.execute:a.b").covers_command(Permission::CommandsExecute, "a.bc"));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for entry in [
            "fileSystem.read:src/**",
            "fileSystem.read:**/*.{key,pem}",
            "fileSystem.write:storage:[!.]*/**",
            "fileSystem.read:workspace:a:b",
            "network.http:*.example.com:443",
            "commands.execute:git.*",
            "secrets.read",
        ] {
            let parsed = p(entry);
            assert_eq!(p(&parsed.to_string()), parsed, "{entry}");
        }
        assert_eq!(
            p("fileSystem.read:src/**").to_string(),
            "fileSystem.read:workspace:src/**"
        );
        assert_eq!(
            p("fileSystem.read:src/**/**").to_string(),
            "fileSystem.read:workspace:src/**"
        );
        assert_eq!(p("fileSystem.read:src/**/**"), p("fileSystem.read:src/**"));
    }
}
