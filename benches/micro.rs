//! Micro-benchmarks of the supervisor's per-request work: the codec, the permission, path and
//! rate-limit checks. `cargo bench` runs them; `dscode-exthost bench` covers whole round trips.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::num::NonZeroU32;
use std::path::Path;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dscode_extension_host::paths::PathValidator;
use dscode_extension_host::permissions::{
    ExtensionPermissions, Grant, Permission, PermissionRequest, ScopeRoot,
};
use dscode_extension_host::ratelimit::{ApiFamily, RateLimitConfig, RateLimiter};
use dscode_extension_host::wire::{
    DEFAULT_MAX_FRAME, Message, MessageCodec, decode_body, encode_message,
};
use serde_json::value::RawValue;

fn request(payload_bytes: usize) -> Message {
    let params = format!(
        r#"{{"command":"hello.echo","args":["{}"]}}"#,
        "x".repeat(payload_bytes)
    );
    Message::Request {
        id: 42,
        method: "command/execute".to_owned(),
        params: Some(RawValue::from_string(params).expect("valid JSON")),
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    for (name, payload) in [("small", 40), ("64KiB", 64 * 1024)] {
        let message = request(payload);
        let mut frame = BytesMut::new();
        encode_message(&message, DEFAULT_MAX_FRAME, &mut frame).expect("encodes");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_function(format!("encode/{name}"), |b| {
            let mut buf = BytesMut::with_capacity(frame.len());
            b.iter(|| {
                buf.clear();
                encode_message(black_box(&message), DEFAULT_MAX_FRAME, &mut buf).expect("encodes");
            });
        });
        group.bench_function(format!("decode/{name}"), |b| {
            let mut codec = MessageCodec::new(DEFAULT_MAX_FRAME);
            b.iter(|| {
                let mut buf = frame.clone();
                let decoded = codec.decode(&mut buf).expect("decodes");
                black_box(decoded.expect("a whole frame").expect("a valid message"));
            });
        });
        group.bench_function(format!("decode_body/{name}"), |b| {
            let body = &frame[4..];
            b.iter(|| black_box(decode_body(black_box(body)).expect("decodes")));
        });
    }
    group.finish();
}

fn permissions(c: &mut Criterion) {
    let requested: Vec<PermissionRequest> =
        ["fileSystem.read:src/**", "network.http:api.example.com"]
            .iter()
            .map(|p| PermissionRequest::parse(p).expect("parses"))
            .collect();
    let grant = Grant {
        version: "1.0.0".to_owned(),
        requested: vec![
            "fileSystem.read:src/**".to_owned(),
            "network.http:api.example.com".to_owned(),
        ],
        allow: vec!["fileSystem.read".to_owned(), "network.http".to_owned()],
        deny: vec!["fileSystem.read:src/secrets/**".to_owned()],
    };
    let perms = ExtensionPermissions::effective("bench.ext", "1.0.0", &requested, Some(&grant))
        .expect("a valid grant");
    let allowed = Path::new("src/lib/parser.rs");
    let denied = Path::new("src/secrets/key.pem");
    let mut group = c.benchmark_group("permission");
    group.bench_function("path/allowed", |b| {
        b.iter(|| {
            perms
                .check_path(
                    Permission::FileSystemRead,
                    ScopeRoot::Workspace,
                    black_box(allowed),
                )
                .expect("allowed");
        });
    });
    group.bench_function("path/denied", |b| {
        b.iter(|| {
            perms
                .check_path(
                    Permission::FileSystemRead,
                    ScopeRoot::Workspace,
                    black_box(denied),
                )
                .expect_err("denied");
        });
    });
    group.bench_function("host/allowed", |b| {
        b.iter(|| {
            perms
                .check_host(Permission::NetworkHttp, black_box("api.example.com"), 443)
                .expect("allowed");
        });
    });
    group.finish();
}

fn paths(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("src/lib")).expect("mkdir");
    std::fs::write(dir.path().join("src/lib/parser.rs"), "fn main() {}").expect("write");
    let mut validator = PathValidator::new();
    validator
        .add_workspace_folder(dir.path())
        .expect("a workspace root");
    let inside = format!("{}/src/lib/parser.rs", dir.path().display());
    let escape = format!("{}/src/../../../etc/passwd", dir.path().display());
    let mut group = c.benchmark_group("path");
    group.bench_function("resolve/inside", |b| {
        b.iter(|| validator.resolve(black_box(&inside)).expect("inside"));
    });
    group.bench_function("resolve/escape", |b| {
        b.iter(|| validator.resolve(black_box(&escape)).expect_err("outside"));
    });
    group.bench_function("validate/inside", |b| {
        b.iter(|| validator.validate_path(black_box(&inside)).expect("inside"));
    });
    group.finish();
}

fn rate_limit(c: &mut Criterion) {
    let generous = RateLimitConfig {
        per_second: NonZeroU32::MAX,
        burst: NonZeroU32::MAX,
        ..RateLimitConfig::default()
    };
    let limiter = RateLimiter::new(generous);
    let strict = RateLimiter::new(RateLimitConfig {
        per_second: NonZeroU32::MIN,
        burst: NonZeroU32::MIN,
        ..RateLimitConfig::default()
    });
    let _ = strict.check("bench.ext", ApiFamily::of_method("fs/readFile"));
    let mut group = c.benchmark_group("ratelimit");
    group.bench_function("check/allowed", |b| {
        b.iter(|| {
            limiter
                .check(black_box("bench.ext"), ApiFamily::of_method("fs/readFile"))
                .expect("allowed");
        });
    });
    // One token a second: all but about one call a second are refused.
    group.bench_function("check/limited", |b| {
        b.iter(|| {
            black_box(strict.check(black_box("bench.ext"), ApiFamily::of_method("fs/readFile")))
        });
    });
    group.finish();
}

criterion_group!(benches, codec, permissions, paths, rate_limit);
criterion_main!(benches);
