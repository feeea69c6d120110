//! `dscode-exthost demo`: the supervisor's main job, end to end, for a newcomer.

use std::time::Duration;

use anyhow::{Context, bail};
use dscode_extension_host::Supervisor;
use dscode_extension_host::lifecycle::{
    ExtensionHostState, HostHandle, HostOptions, RestartPolicy,
};
use dscode_extension_host::permissions::GrantsFile;
use dscode_extension_host::process::Containment;
use dscode_extension_host::runtime::{EXAMPLE_EXTENSIONS, runtime_dir, write_tree};
use serde_json::value::RawValue;

fn raw(json: &str) -> Box<RawValue> {
    RawValue::from_string(json.to_owned()).expect("demo arguments are valid JSON")
}

async fn call(host: &HostHandle, command: &str, args: &str) -> anyhow::Result<()> {
    let result = host.execute_command(command, &raw(args)).await;
    match result {
        Ok(value) => println!(
            "  {:<18} {:<44} -> {}",
            host.id(),
            format!("{command} {args}"),
            value.get()
        ),
        Err(err) => println!(
            "  {:<18} {:<44} -> error: {err}",
            host.id(),
            format!("{command} {args}")
        ),
    }
    Ok(())
}

pub async fn run() -> anyhow::Result<()> {
    println!(
        "dscode-exthost demo: supervised extension hosts, one Node.js process per extension\n"
    );
    let dir = runtime_dir().context("failed to prepare the runtime directory")?;
    let examples = write_tree(&dir.join("demo-extensions"), EXAMPLE_EXTENSIONS)
        .context("failed to unpack the example extensions")?;
    let options = HostOptions {
        heartbeat_interval: Duration::from_millis(250),
        heartbeat_timeout: Duration::from_secs(3),
        restart: RestartPolicy {
            initial_backoff: Duration::from_millis(250),
            ..RestartPolicy::default()
        },
        ..HostOptions::default()
    };
    let workspace = demo_workspace(&dir)?;
    let mut grants = GrantsFile::default();
    // What a user would click in the editor's permission prompt.
    grants.grant("dscode.word-count", "1.0.0", &[], "fileSystem.read")?;
    // The one composition root: the broker, the hosts, their sandboxes and views, wired.
    let supervisor = Supervisor::builder()
        .workspace([workspace.clone()])
        .policy(grants)
        .host_options(options)
        .without_secrets()
        .build()
        .await?;
    let mut events = supervisor.events();
    for name in ["hello", "word-count"] {
        supervisor.add_extension(examples.join(name)).await?;
    }
    let printer = tokio::spawn(async move {
        while let Some(change) = events.next().await {
            println!("  [event] {change}");
        }
    });

    println!("1. Starting {} extension hosts", supervisor.hosts().len());
    for (id, result) in supervisor.start_all().await {
        result.with_context(|| format!("{id} did not start"))?;
    }
    settle().await;
    for host in supervisor.hosts() {
        let status = host.status();
        let contained = match status.containment {
            Some(Containment::PidNamespace) => "own PID namespace",
            _ => "death signal only (no PID namespace here)",
        };
        println!(
            "  {} running as pid {} ({contained}); commands: {}",
            host.id(),
            status.pid.unwrap_or(0),
            status.commands.join(", ")
        );
    }
    if let Some(report) = supervisor.hosts().first().and_then(|h| h.status().sandbox) {
        println!("\n  What the sandbox enforces for each host (the embedded default profile):");
        for line in report.table().lines() {
            println!("  {line}");
        }
    }

    let hello = supervisor
        .host("dscode.hello")
        .context("hello is missing")?;
    let words = supervisor
        .host("dscode.word-count")
        .context("word-count is missing")?;
    println!("\n2. Running commands over the socket");
    call(&hello, "hello.greet", r#"["DSCode"]"#).await?;
    call(&hello, "hello.add", "[2, 40]").await?;
    call(
        &words,
        "wordCount.count",
        r#"["the quick brown fox\njumps"]"#,
    )
    .await?;

    file_access(&words, &workspace, &examples, &dir).await?;

    println!("\n4. Killing the hello host with SIGKILL; the supervisor notices and restarts it");
    kill_and_watch_restart(&hello).await?;
    call(&hello, "hello.greet", r#"["again"]"#).await?;

    println!("\n5. Stopping every host (shutdown message, deactivate, then signals if needed)");
    supervisor.shutdown().await;
    settle().await;
    printer.abort();
    println!(
        "\nDone. Run your own: `dscode-exthost run --config FILE`, then `dscode-exthost status`."
    );
    Ok(())
}

/// Step 3: what the broker serves and what the OS refuses, for word-count's glob grant.
async fn file_access(
    words: &HostHandle,
    workspace: &std::path::Path,
    examples: &std::path::Path,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    println!(
        "\n3. File access through the broker: word-count asks for `fileSystem.read:**/*.txt`, granted"
    );
    let file =
        |rel: &str| serde_json::json!([workspace.join(rel).display().to_string()]).to_string();
    call(
        words,
        "wordCount.readWorkspaceFile",
        &file("notes/todo.txt"),
    )
    .await?;
    println!("  ...a file of the workspace outside the scope it asked for:");
    call(
        words,
        "wordCount.readWorkspaceFile",
        &file(".ssh/id_ed25519"),
    )
    .await?;
    println!("  ...and a file outside every root (the answer does not echo the path):");
    call(words, "wordCount.readWorkspaceFile", r#"["/etc/passwd"]"#).await?;
    println!(
        "\n  The same extension reading with Node's own fs module, no broker involved: the OS sandbox decides."
    );
    println!(
        "  A glob such as **/*.txt is not something the OS can show exactly, so the sandbox shows the host\n  none of the workspace: only the broker serves it, file by file. Its own folder is in its view:"
    );
    let own = examples.join("word-count/package.json");
    call(
        words,
        "wordCount.readFileDirectly",
        &serde_json::json!([own.display().to_string()]).to_string(),
    )
    .await?;
    println!(
        "  ...the workspace's private key, with Node's fs (the OS, not the broker, refuses it):"
    );
    call(
        words,
        "wordCount.readFileDirectly",
        &file(".ssh/id_ed25519"),
    )
    .await?;
    println!(
        "  ...a private key planted outside the workspace (an escape: not in the sandbox's view at all):"
    );
    let key = dir.join("demo-home/.ssh/id_ed25519");
    call(
        words,
        "wordCount.readFileDirectly",
        &serde_json::json!([key.display().to_string()]).to_string(),
    )
    .await?;

    Ok(())
}

async fn kill_and_watch_restart(hello: &HostHandle) -> anyhow::Result<()> {
    let old_pid = hello.status().pid.context("hello has no pid")?;
    let group = i32::try_from(old_pid).context("pid out of range")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(group),
        nix::sys::signal::Signal::SIGKILL,
    )
    .context("failed to kill the host")?;
    println!("  killed pid {old_pid}");
    let mut seen_unhealthy = false;
    for _ in 0..200 {
        seen_unhealthy |=
            hello.state() != ExtensionHostState::Running || hello.status().pid != Some(old_pid);
        if seen_unhealthy && hello.state() == ExtensionHostState::Running {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if hello.state() != ExtensionHostState::Running {
        bail!("hello did not come back: {}", hello.status().reason);
    }
    settle().await;
    let status = hello.status();
    println!(
        "  back as pid {} after {} restart(s)",
        status.pid.unwrap_or(0),
        status.restarts
    );
    Ok(())
}

/// A small workspace with a note the extension may read and a key it may not.
fn demo_workspace(runtime: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let workspace = runtime.join("demo-workspace");
    for (rel, text) in [
        ("notes/todo.txt", "ship the sandbox\nwrite the docs\n"),
        (".ssh/id_ed25519", "not a real key\n"),
        ("../demo-home/.ssh/id_ed25519", "not a real key either\n"),
    ] {
        let path = workspace.join(rel);
        std::fs::create_dir_all(path.parent().expect("has a parent"))?;
        std::fs::write(path, text)?;
    }
    Ok(workspace)
}

/// Lets the event printer catch up so the output reads in order.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}
