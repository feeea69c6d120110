//! Path validation against a real file tree: a table of attacks, each beside the legitimate paths
//! that must keep working, and a race that swaps a directory for a symbolic link while files are
//! being read and written through it. Every table runs with both resolvers (`openat2` and the
//! `O_NOFOLLOW` walk used on kernels without it).

use std::fs;
use std::io::{Read as _, Write as _};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use dscode_extension_host::paths::{
    FileKind, PathError, PathValidator, Resolver, RootKind, WriteMode,
};

const SECRET: &str = "TOP SECRET: outside the root";

/// A temporary tree:
///
/// ```text
/// base/
///   ws/          the workspace root, with good files and planted links (see `Tree::new`)
///   ws-evil/     a sibling whose name starts with the workspace's
///   outside/     secrets
///   ext/ storage/ other roots
/// ```
struct Tree {
    _dir: tempfile::TempDir,
    base: PathBuf,
    ws: PathBuf,
    outside: PathBuf,
    ext: PathBuf,
    storage: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let base = fs::canonicalize(dir.path()).expect("canonical tempdir");
        let ws = base.join("ws");
        let outside = base.join("outside");
        let ext = base.join("ext");
        let storage = base.join("storage");
        for folder in [
            &ws,
            &outside,
            &ext,
            &storage,
            &base.join("ws-evil"),
            &ws.join("dir"),
        ] {
            fs::create_dir_all(folder).expect("mkdir");
        }
        fs::create_dir(ws.join("uni")).expect("mkdir");
        let files: &[(&Path, &str)] = &[
            (&outside.join("secret.txt"), SECRET),
            (&outside.join("hard-target.txt"), SECRET),
            (&base.join("ws-evil/secret.txt"), SECRET),
            (&ws.join("hello.txt"), "hello"),
            (&ws.join("dir/inner.txt"), "inner"),
            (&ws.join("with space.txt"), "space"),
            (&ws.join("uni/日本語 ファイル.txt"), "nihongo"),
            (&ws.join("🦀.txt"), "crab"),
            (&ws.join("100%.txt"), "percent"),
            (&ws.join("a#b.txt"), "hash"),
            (&ws.join("%2e%2e"), "literal"),
            (&ws.join("n".repeat(255)), "longest name"),
            (&ext.join("package.json"), "{}"),
            (&storage.join("state.json"), "state"),
        ];
        for (path, content) in files {
            fs::write(path, content).expect("write");
        }
        let links: &[(&str, PathBuf)] = &[
            ("link_in", "dir".into()),
            ("dir/link_up", "../hello.txt".into()),
            ("link_in_abs", ws.join("dir")),
            ("link_out", "../outside".into()),
            ("link_out_abs", outside.clone()),
            ("link_secret", "../outside/secret.txt".into()),
            ("dir/link_up_out", "../../outside/secret.txt".into()),
            ("dangling_out", "../outside/created-by-attack.txt".into()),
            ("link_proc", "/proc/self/root/etc/passwd".into()),
            ("loop_a", "loop_b".into()),
            ("loop_b", "loop_a".into()),
            ("self_loop", "self_loop".into()),
        ];
        for (name, target) in links {
            symlink(target, ws.join(name)).expect("symlink");
        }
        fs::hard_link(outside.join("hard-target.txt"), ws.join("hard_secret")).expect("hard link");
        nix::unistd::mkfifo(
            &ws.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        Self {
            _dir: dir,
            base,
            ws,
            outside,
            ext,
            storage,
        }
    }

    fn validator(&self, resolver: Resolver) -> PathValidator {
        let mut validator = PathValidator::new();
        if resolver == Resolver::Walk {
            validator.force_walk_resolver();
        }
        assert_eq!(validator.resolver(), resolver, "this kernel lacks openat2");
        validator
            .add_workspace_folder(&self.ws)
            .expect("workspace root");
        validator
            .add_root(RootKind::Extension, &self.ext)
            .expect("extension root");
        validator
            .add_root(RootKind::Storage, &self.storage)
            .expect("storage root");
        validator
    }

    fn expand(&self, template: &str) -> String {
        template
            .replace("{ws}", self.ws.to_str().unwrap())
            .replace("{ext}", self.ext.to_str().unwrap())
            .replace("{storage}", self.storage.to_str().unwrap())
    }

    fn expand_all(&self, table: &[(&str, Op, Expect)]) -> Vec<(String, Op, Expect)> {
        table
            .iter()
            .map(|(template, op, expect)| (self.expand(template), *op, *expect))
            .collect()
    }

    /// Every file outside the roots, with its content, to prove none was created or changed.
    fn outside_snapshot(&self) -> Vec<(PathBuf, String, std::time::SystemTime)> {
        let mut files = Vec::new();
        for folder in [&self.outside, &self.base.join("ws-evil")] {
            for entry in fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::metadata(&path).unwrap();
                files.push((
                    path.clone(),
                    fs::read_to_string(&path).unwrap(),
                    meta.modified().unwrap(),
                ));
            }
        }
        files.sort();
        files
    }
}

/// What is done with a vector's path.
#[derive(Debug, Clone, Copy)]
enum Op {
    Read,
    Write(WriteMode),
    Mkdir,
    MkdirAll,
    Remove,
    List,
    Metadata,
    /// Rename the file at `{ws}/hello.txt`... to the vector's path.
    RenameInto,
}

/// The outcome a vector must have.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Succeeds; a read returns this content.
    Content(&'static str),
    /// Goes through a symbolic link that stays inside: served by `openat2`, refused by the walk.
    InRootLink(&'static str),
    Invalid,
    Outside,
    Remote,
    NotFound,
    /// A symbolic link leaves the root (the walk refuses every link instead).
    Escape,
    /// A symbolic link loop (the walk refuses every link instead).
    Loop,
    HardLink,
    NotRegular,
    IsDir,
    NotDir,
    RootRefused,
}

use Expect::{
    Content, Escape, HardLink, InRootLink, Invalid, IsDir, Loop, NotDir, NotFound, NotRegular,
    Outside, Remote, RootRefused,
};
use Op::{List, Metadata, Mkdir, MkdirAll, Read, Remove, RenameInto, Write};

/// Attacks, as templates (`{ws}` is the workspace root); [`attacks`] adds generated long paths.
const ATTACKS: &[(&str, Op, Expect)] = &[
    // Traversal with `..`.
    ("{ws}/../outside/secret.txt", Read, Outside),
    ("{ws}/dir/../../outside/secret.txt", Read, Outside),
    (
        "{ws}/../../../../../../../../../../etc/passwd",
        Read,
        Outside,
    ),
    ("/etc/passwd", Read, Outside),
    ("{ws}/./../ws-evil/secret.txt", Read, Outside),
    ("{ws}-evil/secret.txt", Read, Outside),
    ("file://{ws}/../outside/secret.txt", Read, Outside),
    ("file:///", Read, Outside),
    // Encoded dots and slashes: decoded once, then normalized like any path.
    ("file://{ws}/%2e%2e/outside/secret.txt", Read, Outside),
    ("file://{ws}/%2E%2E/outside/secret.txt", Read, Outside),
    ("file://{ws}/.%2e/outside/secret.txt", Read, Outside),
    ("file://{ws}/..%2foutside%2fsecret.txt", Read, Outside),
    (
        "file://{ws}/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        Read,
        Outside,
    ),
    // Double-encoded: one decode leaves the literal name `%2e%2e`, a file in this tree.
    ("file://{ws}/%252e%252e/outside/secret.txt", Read, NotDir),
    (
        "file://{ws}/%252e%252e%252foutside%252fsecret.txt",
        Read,
        NotFound,
    ),
    (
        "file://{ws}/%25%32%65%25%32%65/outside/secret.txt",
        Read,
        NotDir,
    ),
    // Overlong and otherwise invalid UTF-8.
    ("file://{ws}/%c0%ae%c0%ae/outside/secret.txt", Read, Invalid),
    (
        "file://{ws}/%c0%af..%c0%afoutside%c0%afsecret.txt",
        Read,
        Invalid,
    ),
    (
        "file://{ws}/%e0%80%ae%e0%80%ae/outside/secret.txt",
        Read,
        Invalid,
    ),
    ("file://{ws}/%f0%80%80%ae", Read, Invalid),
    ("file://{ws}/%ed%a0%80", Read, Invalid),
    ("file://{ws}/%ff%fe", Read, Invalid),
    // Backslashes, raw and encoded.
    ("{ws}/..\\..\\outside\\secret.txt", Read, Invalid),
    ("file://{ws}/..%5c..%5coutside%5csecret.txt", Read, Invalid),
    ("\\\\server\\share\\secret.txt", Read, Invalid),
    // NUL and control characters.
    ("{ws}/hello.txt\0.png", Read, Invalid),
    ("file://{ws}/hello.txt%00.png", Read, Invalid),
    ("file://{ws}/hello.txt%0a", Read, Invalid),
    // Remote hosts, in any spelling.
    ("file://evil.example.com{ws}/hello.txt", Read, Remote),
    ("file://attacker/share/secret.txt", Read, Remote),
    ("file://user@localhost{ws}/hello.txt", Read, Remote),
    ("file://localhost:8080{ws}/hello.txt", Read, Remote),
    ("file://%6cocalhost{ws}/hello.txt", Read, Remote),
    ("file://127.0.0.1{ws}/hello.txt", Read, Remote),
    ("FILE://EVIL{ws}/hello.txt", Read, Remote),
    // Malformed or non-file URIs, relative paths.
    ("file:{ws}/hello.txt", Read, Invalid),
    ("file://", Read, Invalid),
    ("file://{ws}/hello.txt?raw=1", Read, Invalid),
    ("file://{ws}/hello.txt#L1", Read, Invalid),
    ("file://{ws}/%zz", Read, Invalid),
    ("file://{ws}/hello.txt%2", Read, Invalid),
    ("http://example.com{ws}/hello.txt", Read, Invalid),
    (
        "vscode-remote://ssh-remote+host{ws}/hello.txt",
        Read,
        Invalid,
    ),
    ("hello.txt", Read, Invalid),
    ("../outside/secret.txt", Read, Invalid),
    ("~/.ssh/id_rsa", Read, Invalid),
    ("", Read, Invalid),
    // Windows spellings land outside on Linux.
    ("file:///C:/Windows/win.ini", Read, Outside),
    ("file:////server/share/secret.txt", Read, Outside),
    // Symbolic links out of the root, relative and absolute, direct and in a parent.
    ("{ws}/link_out/secret.txt", Read, Escape),
    ("{ws}/link_out_abs/secret.txt", Read, Escape),
    ("{ws}/link_secret", Read, Escape),
    ("{ws}/dir/link_up_out", Read, Escape),
    ("file://{ws}/link_out/secret.txt", Read, Escape),
    // An absolute link is refused even when it points back inside.
    ("{ws}/link_in_abs/inner.txt", Read, Escape),
    ("{ws}/link_proc", Read, Escape),
    ("{ws}/link_out/secret.txt", Metadata, Escape),
    ("{ws}/link_out", List, Escape),
    ("{ws}/link_secret", Write(WriteMode::Truncate), Escape),
    ("{ws}/link_secret", Write(WriteMode::Existing), Escape),
    // Files that do not exist yet under a link that leaves the root.
    ("{ws}/link_out/new.txt", Write(WriteMode::CreateNew), Escape),
    (
        "{ws}/link_out/new.txt",
        Write(WriteMode::CreateOrTruncate),
        Escape,
    ),
    (
        "{ws}/link_out_abs/new.txt",
        Write(WriteMode::Append),
        Escape,
    ),
    (
        "{ws}/dangling_out",
        Write(WriteMode::CreateOrTruncate),
        Escape,
    ),
    ("{ws}/dangling_out", Write(WriteMode::Append), Escape),
    ("{ws}/link_out/newdir", Mkdir, Escape),
    ("{ws}/link_out/sub/deeper", MkdirAll, Escape),
    ("{ws}/link_out/secret.txt", Remove, Escape),
    ("{ws}/link_out/stolen.txt", RenameInto, Escape),
    // Symbolic link loops.
    ("{ws}/loop_a", Read, Loop),
    ("{ws}/self_loop/x", Read, Loop),
    ("{ws}/loop_b", Write(WriteMode::CreateOrTruncate), Loop),
    // Hard links to a file outside.
    ("{ws}/hard_secret", Read, HardLink),
    (
        "{ws}/hard_secret",
        Write(WriteMode::CreateOrTruncate),
        HardLink,
    ),
    ("{ws}/hard_secret", Write(WriteMode::Truncate), HardLink),
    ("{ws}/hard_secret", Write(WriteMode::Append), HardLink),
    // Things that are not regular files, and wrong types.
    ("{ws}/fifo", Read, NotRegular),
    ("{ws}/fifo", Write(WriteMode::Existing), NotRegular),
    ("{ws}/dir", Read, IsDir),
    ("{ws}/hello.txt/x", Read, NotDir),
    ("{ws}/missing.txt", Read, NotFound),
    ("{ws}", Remove, RootRefused),
    ("file://{ws}/", Remove, RootRefused),
];

fn attacks(tree: &Tree) -> Vec<(String, Op, Expect)> {
    let mut vectors = tree.expand_all(ATTACKS);
    let ws = tree.ws.to_str().unwrap();
    // Very long paths: over PATH_MAX below the root, a name over NAME_MAX, and input so long it is
    // refused before any work.
    vectors.push((format!("{ws}/{}", "a/".repeat(2100)), Read, Invalid));
    vectors.push((
        format!("file://{ws}/{}", "%61/".repeat(2100)),
        Read,
        Invalid,
    ));
    vectors.push((format!("{ws}/{}", "x".repeat(256)), Read, Invalid));
    vectors.push((format!("{ws}/{}", "a/../".repeat(5000)), Read, Invalid));
    vectors
}

/// Paths that must keep working, with what reading them returns; [`legitimate`] adds a
/// generated one.
const LEGITIMATE: &[(&str, Op, Expect)] = &[
    ("{ws}/hello.txt", Read, Content("hello")),
    ("file://{ws}/hello.txt", Read, Content("hello")),
    ("FILE://{ws}/hello.txt", Read, Content("hello")),
    ("File://LocalHost{ws}/hello.txt", Read, Content("hello")),
    ("{ws}/with space.txt", Read, Content("space")),
    ("file://{ws}/with%20space.txt", Read, Content("space")),
    ("file://{ws}/with space.txt", Read, Content("space")),
    ("{ws}/uni/日本語 ファイル.txt", Read, Content("nihongo")),
    (
        "file://{ws}/uni/%E6%97%A5%E6%9C%AC%E8%AA%9E%20%E3%83%95%E3%82%A1%E3%82%A4%E3%83%AB.txt",
        Read,
        Content("nihongo"),
    ),
    (
        "file://{ws}/uni/日本語%20ファイル.txt",
        Read,
        Content("nihongo"),
    ),
    ("{ws}/🦀.txt", Read, Content("crab")),
    ("file://{ws}/%F0%9F%A6%80.txt", Read, Content("crab")),
    ("{ws}/100%.txt", Read, Content("percent")),
    ("file://{ws}/100%25.txt", Read, Content("percent")),
    ("{ws}/a#b.txt", Read, Content("hash")),
    ("file://{ws}/a%23b.txt", Read, Content("hash")),
    // A plain path is never decoded.
    ("{ws}/%2e%2e", Read, Content("literal")),
    ("file://{ws}/%252e%252e", Read, Content("literal")),
    ("{ws}/dir/../hello.txt", Read, Content("hello")),
    ("{ws}//dir/./inner.txt", Read, Content("inner")),
    (
        "file:///%2e%2e/%2e%2e{ws}/hello.txt",
        Read,
        Content("hello"),
    ),
    ("{ws}/link_in/inner.txt", Read, InRootLink("inner")),
    ("{ws}/dir/link_up", Read, InRootLink("hello")),
    ("{ext}/package.json", Read, Content("{}")),
    ("file://{storage}/state.json", Read, Content("state")),
];

fn legitimate(tree: &Tree) -> Vec<(String, Op, Expect)> {
    let mut vectors = tree.expand_all(LEGITIMATE);
    let longest_name = format!("{}/{}", tree.ws.display(), "n".repeat(255));
    vectors.push((longest_name, Read, Content("longest name")));
    vectors
}

/// Runs `op` on `input`; `Ok` carries what a read returned.
fn run(validator: &PathValidator, tree: &Tree, input: &str, op: Op) -> Result<String, PathError> {
    let path = validator.resolve(input)?;
    match op {
        Op::Read => {
            let mut content = String::new();
            validator
                .open_read(&path)?
                .read_to_string(&mut content)
                .expect("read");
            Ok(content)
        }
        Op::Write(mode) => validator.open_write(&path, mode).map(|_| String::new()),
        Op::Mkdir => validator.create_dir(&path).map(|()| String::new()),
        Op::MkdirAll => validator.create_dir_all(&path).map(|()| String::new()),
        Op::Remove => validator.remove(&path).map(|()| String::new()),
        Op::List => validator.read_dir(&path).map(|_| String::new()),
        Op::Metadata => validator.metadata(&path).map(|_| String::new()),
        Op::RenameInto => {
            let from = validator.resolve(&tree.expand("{ws}/hello.txt"))?;
            validator
                .rename(&from, &path, false)
                .map(|()| String::new())
        }
    }
}

fn is_symlink_refusal(error: &PathError) -> bool {
    matches!(error, PathError::Refused { reason, .. } if reason.contains("symbolic links are not followed"))
}

fn matches_expectation(
    result: &Result<String, PathError>,
    expect: Expect,
    resolver: Resolver,
) -> bool {
    let walk = resolver == Resolver::Walk;
    match (expect, result) {
        (Expect::Content(want), Ok(got)) => got == want,
        (Expect::InRootLink(want), Ok(got)) => !walk && got == want,
        (Expect::InRootLink(_), Err(error)) => walk && is_symlink_refusal(error),
        (Expect::Invalid, Err(PathError::InvalidPath { .. }))
        | (Expect::Outside, Err(PathError::OutsideRoots))
        | (Expect::Remote, Err(PathError::RemoteHost))
        | (Expect::NotFound, Err(PathError::NotFound { .. }))
        | (Expect::IsDir, Err(PathError::IsADirectory { .. }))
        | (Expect::NotDir, Err(PathError::NotADirectory { .. })) => true,
        (Expect::Escape, Err(error)) => {
            if walk {
                is_symlink_refusal(error)
            } else {
                matches!(error, PathError::SymlinkEscape { .. })
            }
        }
        (Expect::Loop, Err(error)) => {
            if walk {
                is_symlink_refusal(error)
            } else {
                matches!(error, PathError::Refused { reason, .. } if reason.contains("symbolic links"))
            }
        }
        (Expect::HardLink, Err(PathError::Refused { reason, .. })) => {
            reason.contains("hard-linked")
        }
        (Expect::NotRegular, Err(PathError::Refused { reason, .. })) => {
            reason.contains("regular files")
        }
        (Expect::RootRefused, Err(PathError::Refused { reason, .. })) => reason.contains("root"),
        _ => false,
    }
}

/// The message and every source in the chain, as a user would see them.
fn full_message(error: &PathError) -> String {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn check_table(resolver: Resolver, vectors: &[(String, Op, Expect)], tree: &Tree) {
    let validator = tree.validator(resolver);
    let before = tree.outside_snapshot();
    let base = tree.base.to_str().unwrap();
    let mut failures = Vec::new();
    for (input, op, expect) in vectors {
        let result = run(&validator, tree, input, *op);
        if !matches_expectation(&result, *expect, resolver) {
            let shown: String = input.chars().take(120).collect();
            failures.push(format!(
                "{shown:?} {op:?}: expected {expect:?}, got {result:?}"
            ));
        }
        if let Err(error) = &result {
            let message = full_message(error);
            assert!(
                !message.contains(base) && !message.contains("/etc") && !message.contains(SECRET),
                "error message reveals a host path: {message}"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{resolver:?}:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        tree.outside_snapshot(),
        before,
        "something outside the roots changed"
    );
    assert!(!tree.outside.join("created-by-attack.txt").exists());
    assert!(!tree.outside.join("new.txt").exists());
    assert!(!tree.outside.join("stolen.txt").exists());
}

#[test]
fn attack_table_is_refused() {
    let tree = Tree::new();
    let vectors = attacks(&tree);
    assert!(vectors.len() >= 40, "only {} attack vectors", vectors.len());
    check_table(Resolver::Openat2, &vectors, &tree);
    check_table(Resolver::Walk, &vectors, &tree);
}

#[test]
fn legitimate_paths_work() {
    let tree = Tree::new();
    let vectors = legitimate(&tree);
    check_table(Resolver::Openat2, &vectors, &tree);
    check_table(Resolver::Walk, &vectors, &tree);
}

#[test]
fn operations_work_inside_roots() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let tree = Tree::new();
        let validator = tree.validator(resolver);
        let resolve = |template: &str| validator.resolve(&tree.expand(template)).unwrap();

        let new_file = resolve("file://{ws}/new%20file.txt");
        assert_eq!(new_file.to_string(), "workspace:new file.txt");
        validator
            .open_write(&new_file, WriteMode::CreateNew)
            .unwrap()
            .write_all(b"first")
            .unwrap();
        assert!(matches!(
            validator.open_write(&new_file, WriteMode::CreateNew),
            Err(PathError::AlreadyExists { .. })
        ));
        validator
            .open_write(&new_file, WriteMode::CreateOrTruncate)
            .unwrap()
            .write_all(b"second")
            .unwrap();
        validator
            .open_write(&new_file, WriteMode::Append)
            .unwrap()
            .write_all(b"+")
            .unwrap();
        assert_eq!(
            fs::read_to_string(tree.ws.join("new file.txt")).unwrap(),
            "second+"
        );
        assert!(matches!(
            validator.open_write(&resolve("{ws}/nope.txt"), WriteMode::Truncate),
            Err(PathError::NotFound { .. })
        ));

        let deep = resolve("{ws}/a/b/c");
        assert!(matches!(
            validator.create_dir(&deep),
            Err(PathError::NotFound { .. })
        ));
        validator.create_dir_all(&deep).unwrap();
        validator.create_dir_all(&deep).unwrap();
        assert!(tree.ws.join("a/b/c").is_dir());
        assert!(matches!(
            validator.create_dir(&deep),
            Err(PathError::AlreadyExists { .. })
        ));
        validator.create_dir(&resolve("{ws}/a/b/d")).unwrap();
        let in_deep = deep.child("f.txt").unwrap();
        validator
            .open_write(&in_deep, WriteMode::CreateNew)
            .unwrap();

        let mut listing = validator.read_dir(&resolve("{ws}/a/b")).unwrap();
        listing.sort_by(|x, y| x.name.cmp(&y.name));
        let names: Vec<_> = listing.iter().map(|e| (e.name.as_str(), e.kind)).collect();
        assert_eq!(
            names,
            [("c", FileKind::Directory), ("d", FileKind::Directory)]
        );
        let root_listing = validator.read_dir(&resolve("{ws}")).unwrap();
        let kind_of = |name: &str| root_listing.iter().find(|e| e.name == name).map(|e| e.kind);
        assert_eq!(kind_of("hello.txt"), Some(FileKind::File));
        assert_eq!(kind_of("link_out"), Some(FileKind::Symlink));
        assert_eq!(kind_of("fifo"), Some(FileKind::Other));

        let meta = validator.metadata(&resolve("{ws}/hello.txt")).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.len(), 5);
        assert!(validator.metadata(&resolve("{ws}")).unwrap().is_dir());

        let renamed = resolve("{ws}/a/renamed.txt");
        validator.rename(&new_file, &renamed, false).unwrap();
        assert_eq!(
            fs::read_to_string(tree.ws.join("a/renamed.txt")).unwrap(),
            "second+"
        );
        let hello = resolve("{ws}/hello.txt");
        assert!(matches!(
            validator.rename(&hello, &renamed, false),
            Err(PathError::AlreadyExists { .. })
        ));
        let into_storage = resolve("{storage}/moved.txt");
        validator.rename(&renamed, &into_storage, false).unwrap();
        assert!(tree.storage.join("moved.txt").is_file());

        assert!(matches!(
            validator.remove(&resolve("{ws}/a")),
            Err(PathError::Refused { reason, .. }) if reason.contains("not empty")
        ));
        validator.remove(&in_deep).unwrap();
        validator.remove(&deep).unwrap();
        validator.remove(&resolve("{ws}/link_out")).unwrap();
        assert!(
            tree.outside.join("secret.txt").exists(),
            "removing a link removes the link only"
        );
        validator.remove_all(&resolve("{ws}/a")).unwrap();
        assert!(!tree.ws.join("a").exists());
        assert!(tree.outside.join("secret.txt").exists());
    }
}

#[test]
fn remove_all_never_follows_links_out() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let tree = Tree::new();
        let validator = tree.validator(resolver);
        fs::create_dir_all(tree.ws.join("t/u")).unwrap();
        symlink("../../../outside", tree.ws.join("t/u/out")).unwrap();
        symlink(&tree.outside, tree.ws.join("t/out_abs")).unwrap();
        let before = tree.outside_snapshot();
        validator
            .remove_all(&validator.resolve(&tree.expand("{ws}/t")).unwrap())
            .unwrap();
        assert!(!tree.ws.join("t").exists());
        assert_eq!(tree.outside_snapshot(), before);
    }
}

#[test]
fn not_yet_existing_paths_are_judged_by_their_nearest_ancestor() {
    for resolver in [Resolver::Openat2, Resolver::Walk] {
        let tree = Tree::new();
        let validator = tree.validator(resolver);
        let check = |template: &str| validator.validate_path(&tree.expand(template));
        assert!(check("{ws}/new.txt").is_ok());
        assert!(check("{ws}/new/deeper/file.txt").is_ok());
        assert!(check("{ws}/dir/new.txt").is_ok());
        assert!(check("{ws}/hello.txt").is_ok());
        let escape = check("{ws}/link_out/new/file.txt").unwrap_err();
        let dangling = check("{ws}/dangling_out").unwrap_err();
        if resolver == Resolver::Openat2 {
            assert!(
                matches!(escape, PathError::SymlinkEscape { .. }),
                "{escape:?}"
            );
            assert!(
                matches!(dangling, PathError::SymlinkEscape { .. }),
                "{dangling:?}"
            );
            assert!(check("{ws}/link_in/new.txt").is_ok());
        } else {
            assert!(is_symlink_refusal(&escape), "{escape:?}");
            assert!(is_symlink_refusal(&dangling), "{dangling:?}");
        }
        assert!(matches!(
            check("{ws}/../outside/new"),
            Err(PathError::OutsideRoots)
        ));
    }
}

#[test]
fn hard_linked_reads_can_be_allowed_but_never_writes() {
    let tree = Tree::new();
    let mut validator = tree.validator(Resolver::Openat2);
    validator.allow_hard_linked_reads(true);
    let path = validator.resolve(&tree.expand("{ws}/hard_secret")).unwrap();
    let mut content = String::new();
    validator
        .open_read(&path)
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, SECRET);
    for mode in [
        WriteMode::Existing,
        WriteMode::Append,
        WriteMode::CreateOrTruncate,
    ] {
        assert!(matches!(
            validator.open_write(&path, mode),
            Err(PathError::Refused { .. })
        ));
    }
    assert_eq!(
        fs::read_to_string(tree.outside.join("hard-target.txt")).unwrap(),
        SECRET
    );
}

#[test]
fn roots_match_whole_components_and_the_innermost_wins() {
    let tree = Tree::new();
    let mut validator = tree.validator(Resolver::Openat2);
    let nested = tree.ws.join("dir");
    validator.add_root(RootKind::Temp, &nested).unwrap();
    let inner = validator
        .resolve(&tree.expand("{ws}/dir/inner.txt"))
        .unwrap();
    assert_eq!(inner.root_kind(), RootKind::Temp);
    assert_eq!(inner.to_string(), "temp:inner.txt");
    let outer = validator.resolve(&tree.expand("{ws}/dirt")).unwrap();
    assert_eq!(outer.root_kind(), RootKind::Workspace);

    // A second workspace folder is told apart in messages, and a root given through a link is
    // reached by both spellings.
    let alias = tree.base.join("ws_alias");
    symlink(&tree.ws, &alias).unwrap();
    let mut second = tree.validator(Resolver::Openat2);
    second.add_workspace_folder(&alias).unwrap();
    let through_alias = second
        .resolve(&format!("{}/hello.txt", alias.display()))
        .unwrap();
    assert_eq!(through_alias.to_string(), "workspace#2:hello.txt");
    let mut content = String::new();
    second
        .open_read(&through_alias)
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "hello");
}

#[test]
fn a_path_only_works_with_the_validator_that_resolved_it() {
    let tree = Tree::new();
    let first = tree.validator(Resolver::Openat2);
    let second = tree.validator(Resolver::Openat2);
    let path = first.resolve(&tree.expand("{ws}/hello.txt")).unwrap();
    assert!(first.open_read(&path).is_ok());
    assert!(matches!(
        second.open_read(&path),
        Err(PathError::InvalidPath { .. })
    ));
}

const INSIDE: &str = "inside";
const RACE_ITERATIONS: usize = 200_000;
const RACE_DURATION: Duration = Duration::from_secs(2);

/// Calls `step` until it has run `RACE_ITERATIONS` times or `RACE_DURATION` has passed; the
/// duration only bounds the test's length, nothing is asserted about it.
fn for_a_while(mut step: impl FnMut()) {
    let started = Instant::now();
    for _ in 0..RACE_ITERATIONS {
        if started.elapsed() > RACE_DURATION {
            break;
        }
        step();
    }
}

/// Swaps `d` for a symbolic link to `outside` (relative and absolute in turn) and back until
/// told to stop; returns how many swaps it made.
fn swap_until(stop: &AtomicBool, d: &Path, outside: &Path) -> u64 {
    let parked = d.with_extension("parked");
    let mut swaps = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        fs::rename(d, &parked).unwrap();
        if swaps.is_multiple_of(2) {
            symlink("../outside", d).unwrap();
        } else {
            symlink(outside, d).unwrap();
        }
        std::thread::yield_now();
        fs::remove_file(d).unwrap();
        fs::rename(&parked, d).unwrap();
        std::thread::yield_now();
        swaps += 1;
    }
    swaps
}

/// Reads, rewrites and creates through `ws/d` in a loop; returns (served, refused).
fn serve_through_d(validator: &PathValidator, ws: &Path, worker: usize) -> (u64, u64) {
    let path = validator.resolve(&format!("{}/d/f", ws.display())).unwrap();
    let scratch = validator
        .resolve(&format!("{}/d/new-{worker}", ws.display()))
        .unwrap();
    let (mut served, mut refused) = (0_u64, 0_u64);
    let mut tally = |result: Result<(), PathError>| match result {
        Ok(()) => served += 1,
        Err(error) => {
            // While `d` is swapped an access may find nothing or be refused; nothing else.
            assert!(
                matches!(
                    error,
                    PathError::NotFound { .. } | PathError::SymlinkEscape { .. }
                ) || is_symlink_refusal(&error),
                "unexpected error during the race: {error:?}"
            );
            refused += 1;
        }
    };
    for_a_while(|| {
        tally(validator.open_read(&path).map(|mut file| {
            let mut content = String::new();
            file.read_to_string(&mut content).unwrap();
            assert_eq!(content, INSIDE, "read something other than the inside file");
        }));
        tally(
            validator
                .open_write(&path, WriteMode::Existing)
                .map(|mut file| file.write_all(INSIDE.as_bytes()).unwrap()),
        );
        if validator.open_write(&scratch, WriteMode::CreateNew).is_ok() {
            // The directory may have been swapped since; a failed remove is fine.
            let _ = validator.remove(&scratch);
        }
    });
    (served, refused)
}

/// One thread keeps swapping `ws/d` for a symbolic link to `outside/` and back while others
/// read, write and create through `ws/d`. Nothing outside may ever be read or changed.
fn race(resolver: Resolver) {
    let tree = Tree::new();
    let validator = Arc::new(tree.validator(resolver));
    let d = tree.ws.join("d");
    fs::create_dir(&d).unwrap();
    fs::write(d.join("f"), INSIDE).unwrap();
    fs::write(tree.outside.join("f"), SECRET).unwrap();
    let before = tree.outside_snapshot();

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, d, outside) = (stop.clone(), d.clone(), tree.outside.clone());
        std::thread::spawn(move || swap_until(&stop, &d, &outside))
    };
    let brokers: Vec<_> = (0..2)
        .map(|worker| {
            let (validator, ws) = (validator.clone(), tree.ws.clone());
            std::thread::spawn(move || serve_through_d(&validator, &ws, worker))
        })
        .collect();
    // The control: a plain open of the same path does reach the secret while the race runs, so
    // the race is real and the brokers' clean record means something.
    let naive = {
        let path = d.join("f");
        std::thread::spawn(move || {
            let mut leaks = 0_u64;
            for_a_while(|| {
                if fs::read_to_string(&path).is_ok_and(|content| content == SECRET) {
                    leaks += 1;
                }
            });
            leaks
        })
    };

    // Joined before any unwrap, so a failing broker still stops the swapper.
    let results: Vec<_> = brokers
        .into_iter()
        .map(std::thread::JoinHandle::join)
        .collect();
    let naive_leaks = naive.join();
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().expect("swapper");
    let (mut served, mut refused) = (0, 0);
    for result in results {
        let (s, r) = result.expect("a broker thread failed");
        served += s;
        refused += r;
    }
    let naive_leaks = naive_leaks.expect("naive reader");
    eprintln!(
        "{resolver:?}: {swaps} swaps, {served} served, {refused} refused; \
         a plain open read the secret {naive_leaks} times"
    );

    assert_eq!(fs::read_to_string(tree.outside.join("f")).unwrap(), SECRET);
    assert_eq!(
        tree.outside_snapshot(),
        before,
        "something outside was created or changed"
    );
    assert!(
        served > 0,
        "positive control: accesses succeed while d is a directory"
    );
    assert!(
        swaps > 0 && naive_leaks > 0,
        "control: the swap exposes the secret to a plain open"
    );
}

#[test]
fn race_swapping_a_directory_for_a_link_never_escapes_openat2() {
    race(Resolver::Openat2);
}

#[test]
fn race_swapping_a_directory_for_a_link_never_escapes_walk() {
    race(Resolver::Walk);
}

#[test]
fn roots_must_be_existing_directories() {
    let tree = Tree::new();
    let mut validator = PathValidator::new();
    let missing = tree.base.join("missing");
    let error = validator
        .add_root(RootKind::Logs, &missing)
        .expect_err("a missing root");
    assert_eq!(error.path(), missing);
    assert!(
        validator
            .add_root(RootKind::Logs, tree.ws.join("hello.txt"))
            .is_err()
    );
    assert!(matches!(
        validator.resolve(&tree.expand("{ws}/hello.txt")),
        Err(PathError::OutsideRoots)
    ));
}

#[test]
fn file_system_permission_errors_are_reported_as_such() {
    use std::os::unix::fs::PermissionsExt as _;
    let tree = Tree::new();
    let validator = tree.validator(Resolver::Openat2);
    let locked = tree.ws.join("locked.txt");
    fs::write(&locked, "locked").unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let result = validator.open_read(&validator.resolve(&tree.expand("{ws}/locked.txt")).unwrap());
    if nix::unistd::geteuid().is_root() {
        // Root reads it anyway (CAP_DAC_OVERRIDE); run the suite unprivileged to cover the denial.
        assert!(result.is_ok());
    } else {
        let error = result.expect_err("mode 000 is unreadable");
        assert!(
            matches!(error, PathError::PermissionDenied { .. }),
            "{error:?}"
        );
        assert_eq!(error.code().as_str(), "PermissionDenied");
    }
}
