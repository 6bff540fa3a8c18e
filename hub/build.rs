//! Builds the WebAssembly guests (the connectors in `plugins/` and the test fixtures in
//! `tests/fixtures/`) for `wasm32-wasip2`, so the `hub` binary can bundle the connectors and the
//! tests can load the fixtures. The guests get their own target directory, so this nested cargo
//! never waits on the outer one's lock.

use std::path::{Path, PathBuf};
use std::process::Command;

fn guest_crates(root: &Path, folder: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root.join(folder)) else {
        return out;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if dir.join("Cargo.toml").is_file()
            && let Some(name) = dir.file_name().and_then(|n| n.to_str())
        {
            out.push((name.to_string(), dir));
        }
    }
    out.sort();
    out
}

fn watch(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for entry in entries.flatten() {
            let p = entry.path();
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "node_modules")
            {
                continue;
            }
            watch(&p);
        }
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir
        .parent()
        .expect("hub/ lives in the workspace root")
        .to_path_buf();
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target_root = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let guest_target = target_root.join("guests");

    for path in [
        "plugins",
        "plugin-sdk/src",
        "plugin-sdk/wit",
        "plugin-sdk/Cargo.toml",
        "tests/fixtures",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        watch(&root.join(path));
    }

    // `HUB_NO_GUESTS=1` builds the host alone, bundling no connector: for the fuzz targets,
    // which exercise parsers only and are built by a nightly toolchain that may lack the
    // wasm32-wasip2 target.
    println!("cargo:rerun-if-env-changed=HUB_NO_GUESTS");
    let no_guests = std::env::var_os("HUB_NO_GUESTS").is_some_and(|v| v == "1");
    let (plugins, fixtures) = if no_guests {
        (Vec::new(), Vec::new())
    } else {
        (
            guest_crates(&root, "plugins"),
            guest_crates(&root, "tests/fixtures"),
        )
    };
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(&root)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--target-dir",
        ])
        .arg(&guest_target);
    for (name, _) in plugins.iter().chain(fixtures.iter()) {
        cmd.args(["-p", name]);
    }
    // The outer build's flags are for the host; the guests get none of them.
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    if !plugins.is_empty() || !fixtures.is_empty() {
        let status = cmd
            .status()
            .expect("run cargo to build the wasm32-wasip2 guests");
        if !status.success() {
            panic!(
                "building the connectors for wasm32-wasip2 failed (is the target installed? run `rustup target add wasm32-wasip2`)"
            );
        }
    }
    let wasm_dir = guest_target.join("wasm32-wasip2").join("release");
    let mut builtin = String::from(
        "/// Connectors bundled in the binary: (name, component bytes).\npub static BUILTIN: &[(&str, &[u8])] = &[\n",
    );
    for (name, _) in &plugins {
        let file = wasm_dir.join(format!("{}.wasm", name.replace('-', "_")));
        builtin.push_str(&format!(
            "    ({name:?}, include_bytes!({:?})),\n",
            file.display().to_string()
        ));
    }
    builtin.push_str("];\n");
    std::fs::write(out_dir.join("builtin.rs"), builtin).expect("write builtin.rs");
    println!("cargo:rustc-env=HUB_GUEST_WASM_DIR={}", wasm_dir.display());
}
