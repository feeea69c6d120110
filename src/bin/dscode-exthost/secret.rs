//! `dscode-exthost secret set|get|delete|list`: an operator's view of the secret storage.
//!
//! Values are read from standard input (a prompt without echo on a terminal), never from the
//! command line, where every user on the machine could read them in `/proc/*/cmdline`.

use std::io::{IsTerminal, Read, Write};

use anyhow::{Context, bail};
use clap::Subcommand;
use dscode_extension_host::secrets::{Secret, SecretStorage};

#[derive(Debug, Subcommand)]
pub(crate) enum SecretCommand {
    /// Store a secret; the value is read from stdin.
    Set {
        /// The extension or host id.
        extension: String,
        /// The secret's name.
        key: String,
    },
    /// Print a secret's value on stdout.
    Get {
        /// The extension or host id.
        extension: String,
        /// The secret's name.
        key: String,
    },
    /// Delete one secret, or with --all every secret of the extension.
    Delete {
        /// The extension or host id.
        extension: String,
        /// The secret's name.
        key: Option<String>,
        /// Delete every secret of the extension.
        #[arg(long, conflicts_with = "key")]
        all: bool,
    },
    /// List the names (never the values) of an extension's secrets.
    List {
        /// The extension or host id.
        extension: String,
    },
}

pub(crate) async fn run(command: SecretCommand) -> anyhow::Result<()> {
    let storage = SecretStorage::detect().await?;
    eprintln!("secret storage: {}", storage.backend_name());
    match command {
        SecretCommand::Set { extension, key } => {
            let value = read_value(&key)?;
            storage.set(&extension, &key, value).await?;
            eprintln!("stored {key} for {extension}");
        }
        SecretCommand::Get { extension, key } => match storage.get(&extension, &key).await? {
            Some(secret) => println!("{}", secret.expose_secret()),
            None => bail!("{extension} has no secret {key}"),
        },
        SecretCommand::Delete {
            extension,
            key: Some(key),
            ..
        } => {
            if !storage.delete(&extension, &key).await? {
                bail!("{extension} has no secret {key}");
            }
            eprintln!("deleted {key} of {extension}");
        }
        SecretCommand::Delete {
            extension,
            key: None,
            all: true,
        } => {
            let count = storage.delete_all_for_extension(&extension).await?;
            eprintln!("deleted {count} secret(s) of {extension}");
        }
        SecretCommand::Delete {
            key: None,
            all: false,
            ..
        } => bail!("name a KEY to delete, or pass --all"),
        SecretCommand::List { extension } => {
            for key in storage.list(&extension).await? {
                println!("{key}");
            }
        }
    }
    Ok(())
}

/// Reads the value from stdin: one line (without echo) on a terminal, everything otherwise,
/// without a trailing newline.
fn read_value(key: &str) -> anyhow::Result<Secret> {
    let mut stdin = std::io::stdin();
    let mut value = String::new();
    if stdin.is_terminal() {
        eprint!("value for {key} (not shown): ");
        std::io::stderr().flush()?;
        let _echo = EchoOff::new();
        stdin
            .read_line(&mut value)
            .context("failed to read the value")?;
        eprintln!();
    } else {
        stdin
            .read_to_string(&mut value)
            .context("failed to read the value from stdin")?;
    }
    let trimmed = value.trim_end_matches(['\n', '\r']).to_owned();
    zeroize::Zeroize::zeroize(&mut value);
    if trimmed.is_empty() {
        bail!(
            "the value is empty; pipe it in: `printf %s \"$TOKEN\" | dscode-exthost secret set ID {key}`"
        );
    }
    Ok(Secret::from(trimmed))
}

/// Turns terminal echo off until dropped.
struct EchoOff(Option<nix::sys::termios::Termios>);

impl EchoOff {
    fn new() -> Self {
        use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        let Ok(original) = tcgetattr(&stdin) else {
            return Self(None);
        };
        let mut quiet = original.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &quiet);
        Self(Some(original))
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(original) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                original,
            );
        }
    }
}
