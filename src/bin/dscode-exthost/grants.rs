//! `dscode-exthost grant|revoke|deny`: edit the grants file, then have a running supervisor
//! apply it.

use std::sync::Arc;

use anyhow::{Context, bail};
use dscode_extension_host::config::Config;
use dscode_extension_host::control::ReloadReply;
use dscode_extension_host::permissions::{GrantsFile, PermissionRequest};
use dscode_extension_host::rpc::{IpcManager, NoMethods, RetryPolicy};
use dscode_extension_host::runtime::NodeRuntime;

use crate::GrantArgs;

pub(crate) enum Edit {
    Grant,
    Revoke,
    Deny,
}

pub(crate) async fn edit(edit: Edit, args: GrantArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    crate::migrate_grants(&config)?;
    let node = NodeRuntime::embedded(config.node()).context("failed to unpack the Node.js host")?;
    let specs = config.host_specs(&node)?;
    let Some(spec) = specs.iter().find(|s| s.id == args.extension) else {
        let known: Vec<_> = specs.iter().map(|s| s.id.as_str()).collect();
        bail!(
            "{} names no extension {}; it has: {}",
            args.config.display(),
            args.extension,
            known.join(", ")
        );
    };
    let wanted = PermissionRequest::parse(&args.permission)?;
    let requested: Vec<String> = spec.permissions.iter().map(ToString::to_string).collect();
    let path = config.grants_path();
    let mut file = GrantsFile::load(&path)?;
    let verb = match edit {
        Edit::Grant => {
            file.grant(&spec.id, &spec.version, &requested, &args.permission)?;
            if !spec
                .permissions
                .iter()
                .any(|r| r.permission == wanted.permission)
            {
                eprintln!(
                    "note: {} {} does not ask for {}; the grant does nothing until a version that asks for it",
                    spec.id, spec.version, wanted.permission
                );
            }
            "granted"
        }
        Edit::Revoke => {
            if !file.revoke(&spec.id, &args.permission)? {
                bail!("{} has no grant `{wanted}` in {}", spec.id, path.display());
            }
            "revoked"
        }
        Edit::Deny => {
            file.deny(&spec.id, &spec.version, &requested, &args.permission)?;
            "denied"
        }
    };
    file.save()?;
    println!(
        "{verb} `{wanted}` for {} {} in {}",
        spec.id,
        spec.version,
        path.display()
    );
    reload(args.socket, &config).await;
    Ok(())
}

/// Asks a running supervisor to re-read the grants; it is fine if none is running.
async fn reload(socket: Option<std::path::PathBuf>, config: &Config) {
    let socket = match socket.or_else(|| config.control_socket()) {
        Some(socket) => socket,
        None => crate::default_socket(),
    };
    let client = IpcManager::new().with_retry(RetryPolicy {
        attempts: 1,
        step: std::time::Duration::ZERO,
    });
    match client.connect(&socket, Arc::new(NoMethods)).await {
        Ok((connection, _)) => match connection.request("reload-grants", None).await {
            Ok(reply) => {
                println!("the running supervisor applied it");
                let reply: ReloadReply = serde_json::from_str(reply.get()).unwrap_or(ReloadReply {
                    restarted: Vec::new(),
                });
                for host in reply.restarted {
                    match host.error {
                        None => println!("restarted {} so its sandbox matches its grants", host.id),
                        Some(err) => eprintln!(
                            "warning: {} was restarted for its new grants but did not run again: {err}",
                            host.id
                        ),
                    }
                }
            }
            Err(err) => eprintln!(
                "warning: the running supervisor did not apply it: {:#}",
                anyhow::Error::new(err)
            ),
        },
        Err(_) => println!(
            "no supervisor is running at {}; it applies when one starts",
            socket.display()
        ),
    }
}
