//! `relais plugin run` (the plugin author's test bench) and
//! `relais plugin new` (a plugin from the template).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use relais::plugins::Plugin;
use relais::{Store, StoreHost};
use relais_sdk::Event;

use super::Paths;

/// The plugin of `plugin`: a `.wasm` file, or a bundled plugin by name
/// when no such file exists.
fn load(runtime: &relais::plugins::Runtime, plugin: &Path) -> Result<relais::plugins::WasmPlugin> {
    let bundled = relais::plugins::bundled()
        .iter()
        .find(|bundled| Path::new(bundled.name) == plugin);
    match bundled {
        Some(bundled) if !plugin.exists() => runtime
            .load(
                bundled.component,
                relais::plugins::Origin::Bundled,
                &Default::default(),
            )
            .map_err(|e| anyhow!("bundled plugin `{}`: {e}", bundled.name)),
        _ => runtime
            .load_file(plugin, &Default::default())
            .map_err(|e| anyhow!("{}: {e}", plugin.display())),
    }
}

/// Checks the plugin `file` as the engine loads plugins, then copies it
/// into the plugins directory under its name: written aside and renamed
/// into place, so that a running engine never reads half of it.
pub fn install(paths: &Paths, file: &Path) -> Result<ExitCode> {
    let runtime = super::runtime()?;
    let loaded = match runtime.load_file(file, &Default::default()) {
        Ok(loaded) => loaded,
        Err(error) => {
            eprintln!("{}: {error}: not installed", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    let info = loaded.info();
    std::fs::create_dir_all(&paths.plugins)
        .with_context(|| format!("cannot create {}", paths.plugins.display()))?;
    let target = paths.plugins.join(format!("{}.wasm", info.name));
    let aside = paths.plugins.join(format!(".{}.wasm.part", info.name));
    std::fs::copy(file, &aside).with_context(|| format!("cannot write {}", aside.display()))?;
    std::fs::rename(&aside, &target)
        .with_context(|| format!("cannot put {} in place", target.display()))?;
    let replaces = relais::plugins::bundled()
        .iter()
        .any(|bundled| bundled.name == info.name);
    println!(
        "installed {} {} as {}{}: handles {}; capabilities: {}",
        info.name,
        info.version,
        target.display(),
        if replaces {
            " (replacing the bundled one)"
        } else {
            ""
        },
        info.triggers.join(", "),
        if info.capabilities.is_empty() {
            "none".to_string()
        } else {
            info.capabilities.join(", ")
        },
    );
    println!(
        "a running engine loads it on its next reload; rules name it `plugin: {}`",
        info.name
    );
    Ok(ExitCode::SUCCESS)
}

/// Runs one plugin on one event against the store (or an empty one), and
/// prints its effects and logs as JSON. Nothing is applied.
pub fn run(
    paths: &Paths,
    plugin: &Path,
    event: &Path,
    config: Option<&Path>,
    account: &str,
) -> Result<ExitCode> {
    let runtime = super::runtime()?;
    let loaded = load(&runtime, plugin)?;
    let event = read_event(event, account)?;
    let config: serde_json::Value = match config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_yaml::from_str(&text)
                .with_context(|| format!("{}: not YAML or JSON", path.display()))?
        }
        None => serde_json::Value::Null,
    };
    let info = loaded.info();
    if !info.triggers.iter().any(|t| t == event.trigger()) {
        eprintln!(
            "plugin `{}` does not handle `{}`: it handles {}",
            info.name,
            event.trigger(),
            info.triggers.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Err(problem) = loaded.check_config(&config) {
        eprintln!("config: {problem}");
        return Ok(ExitCode::FAILURE);
    }
    let store = if paths.db.exists() {
        Store::open(&paths.db)?
    } else {
        eprintln!(
            "note: no store at {}: queries see an empty directory",
            paths.db.display()
        );
        Store::open_in_memory()?
    };
    let templates = match relais::Templates::load(&paths.templates) {
        Ok(templates) => Arc::new(templates),
        Err(diagnostics) => {
            super::print_diagnostics(&diagnostics);
            return Ok(ExitCode::FAILURE);
        }
    };
    let host = Arc::new(StoreHost::new(store, templates, &loaded.info().name));
    let started = std::time::Instant::now();
    let config = relais::rules::RuleConfig::new(config);
    let result = loaded.handle(&event, &config, host.clone());
    let duration_us = started.elapsed().as_micros() as u64;
    let (effects, error, failure) = match result {
        Ok(effects) => (effects, None, None),
        Err(failure) => (Vec::new(), Some(failure.to_string()), Some(failure.kind())),
    };
    let failed = error.is_some();
    let output = serde_json::json!({
        "plugin": loaded.info(),
        "trigger": event.trigger(),
        "effects": effects,
        "logs": host.take_logs(),
        "error": error,
        "failure": failure,
        "duration-us": duration_us,
    });
    println!("{}", serde_json::to_string_pretty(&output)?);
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// An event from a file: an `.eml` is a received mail; anything else is a
/// YAML or JSON event (`trigger: request-saved`, ...).
fn read_event(path: &Path, account: &str) -> Result<Event> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("eml"))
    {
        let parsed = relais::sources::mail::parse(&bytes, account)
            .map_err(|e| anyhow!("{}: {e}", path.display()))?;
        return Ok(Event::MailReceived(parsed.mail));
    }
    let text =
        String::from_utf8(bytes).with_context(|| format!("{}: not UTF-8", path.display()))?;
    serde_yaml::from_str(&text).with_context(|| format!("{}: not an event", path.display()))
}

/// The template's files, with `relais-plugin-template` and `template` to
/// replace by the new plugin's names.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../../sdk/template/Cargo.toml"),
    ),
    (
        "src/lib.rs",
        include_str!("../../../sdk/template/src/lib.rs"),
    ),
    ("README.md", include_str!("../../../sdk/template/README.md")),
];

/// Creates `dir/NAME` from the template.
pub fn new(name: &str, dir: &Path, sdk: Option<&Path>) -> Result<ExitCode> {
    let valid = !name.is_empty()
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        eprintln!(
            "error: a plugin name is lowercase letters, digits and `-`, starting with a letter"
        );
        return Ok(ExitCode::from(2));
    }
    let folder = dir.join(name);
    if folder.exists() {
        eprintln!("error: {} already exists", folder.display());
        return Ok(ExitCode::FAILURE);
    }
    // The SDK this binary was built from, unless told otherwise.
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk");
    let sdk = match sdk {
        Some(path) => path.to_path_buf(),
        None => built_from
            .canonicalize()
            .map_err(|_| anyhow!("pass --sdk PATH: the path of the relais-sdk crate"))?,
    };
    let sdk = sdk
        .canonicalize()
        .with_context(|| format!("no SDK at {}", sdk.display()))?;
    for (file, text) in TEMPLATE {
        let text = text
            .replace("relais-plugin-template", &format!("relais-plugin-{name}"))
            .replace(
                "relais_plugin_template",
                &format!("relais_plugin_{}", name.replace('-', "_")),
            )
            .replace("plugin: template", &format!("plugin: {name}"))
            .replace(
                "const NAME: &str = \"template\";",
                &format!("const NAME: &str = \"{name}\";"),
            )
            .replace(
                "path = \"../\"",
                &format!("path = {:?}", sdk.display().to_string()),
            );
        let path = folder.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created {}", folder.display());
    println!(
        "build it:  cargo build --manifest-path {}/Cargo.toml --target wasm32-wasip2 --release",
        folder.display()
    );
    println!("try it:    relais plugin run <the .wasm> --event mail.eml");
    Ok(ExitCode::SUCCESS)
}
