//! Builds the bundled plugins (`plugins/*`) from source as WebAssembly
//! components for `wasm32-wasip2`, so that the engine embeds exactly what
//! the sources say. Installs the target through rustup when it is missing.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The bundled plugins, the one list of them: (plugin name, the folder
/// under `plugins/`, package, artifact file name). The engine's own list,
/// with each component and config schema, is generated from it
/// (`OUT_DIR/bundled.rs`).
const BUNDLED: &[(&str, &str, &str, &str)] = &[
    (
        "catchmail",
        "catchmail",
        "relais-plugin-catchmail",
        "relais_plugin_catchmail.wasm",
    ),
    (
        "alert-dispatch",
        "alert-dispatch",
        "relais-plugin-alert-dispatch",
        "relais_plugin_alert_dispatch.wasm",
    ),
    (
        "ticket-link",
        "ticket-link",
        "relais-plugin-ticket-link",
        "relais_plugin_ticket_link.wasm",
    ),
    (
        "reminders",
        "reminders",
        "relais-plugin-reminders",
        "relais_plugin_reminders.wasm",
    ),
];

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("engine/ sits in the workspace")
        .to_path_buf();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("set by cargo"));
    for watched in [
        "plugins",
        "sdk/src",
        "sdk/wit",
        "sdk/Cargo.toml",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    ensure_target();

    // A target directory of its own, stable across profiles so that it stays
    // warm, and apart from the outer build's so that the two never wait on
    // each other's lock.
    let target_dir = target_root(&out_dir).join("wasm-plugins");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(&root)
        .args(["build", "--release", "--target", TARGET, "--target-dir"])
        .arg(&target_dir);
    for (_, _, package, _) in BUNDLED {
        command.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy, coverage) are for the
    // host, not for the plugins.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(variable);
    }
    // Small components load faster: no DWARF, but keep the name section so
    // that a trap's backtrace still names the plugin's functions.
    command
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo");
    let status = command.status().expect("cargo runs");
    assert!(
        status.success(),
        "building the bundled plugins for {TARGET} failed"
    );

    let bundled = out_dir.join("bundled");
    std::fs::create_dir_all(&bundled).expect("create OUT_DIR/bundled");
    let mut list = String::from(
        "/// The bundled plugins, built from `plugins/` by `build.rs`.\n\
         pub(crate) const BUNDLED: &[Bundled] = &[\n",
    );
    for (name, dir, _, artifact) in BUNDLED {
        let built = target_dir.join(TARGET).join("release").join(artifact);
        let component = bundled.join(format!("{name}.wasm"));
        std::fs::copy(&built, &component)
            .unwrap_or_else(|e| panic!("cannot copy {}: {e}", built.display()));
        let schema = root.join("plugins").join(dir).join("config.schema.json");
        list.push_str(&format!(
            "    Bundled {{ name: {name:?}, component: include_bytes!({component:?}), \
             config_schema: include_str!({schema:?}) }},\n",
        ));
    }
    list.push_str("];\n");
    std::fs::write(out_dir.join("bundled.rs"), list).expect("write OUT_DIR/bundled.rs");
}

/// `<target>` from `<target>/<profile>/build/<pkg>-<hash>/out`.
fn target_root(out_dir: &Path) -> PathBuf {
    out_dir
        .ancestors()
        .nth(4)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| out_dir.to_path_buf())
}

/// Adds the target through rustup when it is missing; without rustup, the
/// build below says what is wrong.
fn ensure_target() {
    let Ok(output) = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
    else {
        return;
    };
    let installed = String::from_utf8_lossy(&output.stdout);
    if !installed.lines().any(|line| line.trim() == TARGET) {
        let status = Command::new("rustup")
            .args(["target", "add", TARGET])
            .status();
        if !status.is_ok_and(|s| s.success()) {
            println!("cargo:warning=could not install the {TARGET} target with rustup");
        }
    }
}
