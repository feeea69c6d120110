//! Embedding the supervisor: start an extension host, run one of its commands, watch its
//! lifecycle, stop it. Run with `cargo run --example embed`.

use std::path::Path;
use std::sync::Arc;

use dscode_extension_host::broker::DenyAll;
use dscode_extension_host::lifecycle::{ExtensionHostManager, HostOptions};
use dscode_extension_host::runtime::NodeRuntime;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Hosts are sandboxed by default, and the sandbox runs this same executable as its stage
    // before `node` starts; this call is what makes that work. Keep it first in main.
    dscode_extension_host::sandbox::stage::run_if_requested();
    // The JavaScript host ships inside the crate; this unpacks it into a private directory.
    let node = NodeRuntime::embedded("node")?;
    // The broker decides every privileged call an extension makes; DenyAll grants nothing.
    let manager = ExtensionHostManager::new(Arc::new(DenyAll));

    let mut events = manager.subscribe();
    tokio::spawn(async move {
        while let Some(change) = events.recv().await {
            eprintln!("lifecycle: {change}");
        }
    });

    let extension = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/extensions/hello");
    let hello = manager.add(node.host_spec(&extension, HostOptions::default())?)?;
    hello.start().await?;

    let args = serde_json::value::to_raw_value(&["Ada"])?;
    let reply = hello.execute_command("hello.greet", &args).await?;
    println!("hello.greet -> {}", reply.get());

    manager.stop_all().await;
    Ok(())
}
