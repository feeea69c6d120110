//! `dscode-exthost doctor`: which isolation layers this machine can enforce, and why not.

use std::path::PathBuf;

use dscode_extension_host::sandbox::{Backend, Enforcement, Probe};

pub fn run(json: bool, bwrap: Option<PathBuf>) -> anyhow::Result<()> {
    let bwrap = bwrap.unwrap_or_else(|| PathBuf::from("bwrap"));
    let probe = Probe::run(&bwrap, None);
    let layers = probe.layers();
    let backends: Vec<_> = [Backend::Landlock, Backend::Bwrap, Backend::BwrapLandlock]
        .into_iter()
        .map(|backend| {
            let (available, reason) = match backend {
                Backend::Landlock if probe.landlock.available => (true, probe.landlock.detail.clone()),
                Backend::Landlock => (false, probe.landlock.detail.clone()),
                _ if !probe.bwrap.available => (false, probe.bwrap.detail.clone()),
                _ if !probe.bwrap_usable() => (false, probe.user_namespaces.detail.clone()),
                Backend::BwrapLandlock if !probe.landlock.available => (false, probe.landlock.detail.clone()),
                _ => (true, probe.bwrap.detail.clone()),
            };
            serde_json::json!({ "backend": backend.name(), "available": available, "reason": reason })
        })
        .collect();
    if json {
        let out = serde_json::json!({
            "auto": probe.auto_backend().name(),
            "layers": layers,
            "backends": backends,
            "machine": probe,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("dscode-exthost doctor: what this machine can enforce\n");
    for check in [
        ("user namespaces", &probe.user_namespaces),
        ("private root", &probe.private_root),
        ("bubblewrap", &probe.bwrap),
        ("Landlock", &probe.landlock),
        ("seccomp", &probe.seccomp),
        ("cgroups", &probe.cgroups),
    ] {
        let mark = if check.1.available { "ok  " } else { "NO  " };
        println!("  {mark} {:<16} {}", check.0, check.1.detail);
        if let Some(advice) = &check.1.advice {
            println!("       {:<16} -> {advice}", "");
        }
    }
    println!("\nLayers (best over all backends):");
    for layer in &layers {
        let mark = match layer.enforcement {
            Enforcement::FullyEnforced => "full   ",
            Enforcement::PartiallyEnforced => "partial",
            Enforcement::NotEnforced => "none   ",
        };
        println!("  {mark} {:<13} {}", layer.layer.name(), layer.reason);
    }
    println!("\nBackends:");
    for backend in &backends {
        let mark = if backend["available"] == true {
            "ok  "
        } else {
            "NO  "
        };
        println!(
            "  {mark} {:<15} {}",
            backend["backend"].as_str().unwrap_or_default(),
            backend["reason"].as_str().unwrap_or_default()
        );
    }
    println!(
        "\n`backend = \"auto\"` picks {} here.",
        probe.auto_backend()
    );
    Ok(())
}
