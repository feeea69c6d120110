//! Embeds the JavaScript host and the example extensions into the crate, so the binary and
//! embedders run without a checkout beside them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("readable dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with('.') || name == "node_modules" || name == "test" {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, out);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("js" | "json")
        ) {
            out.push(path.strip_prefix(root).expect("under root").to_owned());
        }
    }
}

fn embed(manifest_dir: &Path, root: &str, name: &str, code: &mut String) {
    let root_path = manifest_dir.join(root);
    println!("cargo:rerun-if-changed={root}");
    let mut files = Vec::new();
    if root_path.is_dir() {
        collect(&root_path, &root_path, &mut files);
    }
    writeln!(
        code,
        "/// Files under `{root}`, as (relative path, contents)."
    )
    .unwrap();
    writeln!(code, "pub const {name}: &[(&str, &str)] = &[").unwrap();
    for file in files {
        let rel = file.to_str().expect("utf-8 path");
        let abs = root_path.join(&file);
        writeln!(
            code,
            "    ({rel:?}, include_str!({:?})),",
            abs.to_str().expect("utf-8 path")
        )
        .unwrap();
    }
    writeln!(code, "];").unwrap();
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let mut code = String::new();
    embed(&manifest_dir, "node-host", "NODE_HOST", &mut code);
    embed(
        &manifest_dir,
        "examples/extensions",
        "EXAMPLE_EXTENSIONS",
        &mut code,
    );
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("embedded.rs");
    std::fs::write(out, code).expect("writable OUT_DIR");
}
