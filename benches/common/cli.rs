//! A bench binary's options (environment first, then the command line over it), where it finds the
//! binary under test and where it writes its JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::setup::progress;

/// A non-empty environment variable.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The parsed options: `--quick`, and the values of the named options.
pub struct Args {
    pub quick: bool,
    values: HashMap<&'static str, String>,
}

/// Parses the environment (`BENCH_QUICK` and each option's variable), then the command line:
/// `--quick`, `-h`/`--help` (prints `usage` and exits), and `--NAME VALUE` or `--NAME=VALUE` for each
/// (NAME, VARIABLE) of `options`. `cargo bench` passes `--bench` to every bench binary: ignored.
pub fn parse(usage: &str, options: &[(&'static str, &'static str)]) -> anyhow::Result<Args> {
    let mut quick = env("BENCH_QUICK").is_some_and(|value| !matches!(value.as_str(), "0" | "false" | "no"));
    let mut values = HashMap::new();
    for (name, variable) in options {
        if let Some(value) = env(variable) {
            values.insert(*name, value);
        }
    }
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg.clone(), None),
        };
        match flag.as_str() {
            "--bench" => continue,
            "--quick" => {
                quick = true;
                continue;
            }
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            _ => {}
        }
        let Some((name, _)) = options.iter().find(|(name, _)| flag.strip_prefix("--") == Some(*name)) else {
            bail!("unknown argument '{arg}'\n\n{usage}");
        };
        let value = match inline {
            Some(value) => value,
            None => args.next().with_context(|| format!("{flag} needs a value"))?,
        };
        values.insert(*name, value);
    }
    Ok(Args { quick, values })
}

impl Args {
    /// The option `name` as given.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The option `name` as a number, `default` when not given.
    pub fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.values.get(name) {
            None => Ok(default),
            Some(text) => text.trim().parse().map_err(|_| anyhow::anyhow!("{name}: '{text}' is not a number")),
        }
    }
}

/// Cargo's target directory: CARGO_TARGET_DIR or the workspace's `target`.
pub fn target_dir() -> PathBuf {
    env("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// The binary under test: OUTRIGGER_BIN or the release build.
pub fn binary(target_dir: &Path) -> PathBuf {
    env("OUTRIGGER_BIN").map(PathBuf::from).unwrap_or_else(|| target_dir.join("release/outrigger"))
}

/// Whether `binary` exists; says how to build it when not, and how old it is when it does.
pub fn check_binary(binary: &Path) -> bool {
    if !binary.is_file() {
        eprintln!(
            "error: {} does not exist.\nBuild it first with `cargo build --release` (or point OUTRIGGER_BIN at an \
             outrigger binary), then run `cargo bench --bench {}` again.",
            binary.display(),
            env!("CARGO_CRATE_NAME")
        );
        return false;
    }
    if let Ok(modified) = std::fs::metadata(binary).and_then(|metadata| metadata.modified()) {
        let age = modified.elapsed().unwrap_or_default().as_secs() / 60;
        progress(format!("using {} (built {age} min ago; rebuild with cargo build --release)", binary.display()));
    }
    true
}

/// Writes `json` to `target/bench/<bench>.json` and says where.
pub fn write_json(target_dir: &Path, json: &serde_json::Value) {
    let path = target_dir.join(format!("bench/{}.json", env!("CARGO_CRATE_NAME")));
    let written = std::fs::create_dir_all(target_dir.join("bench"))
        .and_then(|()| std::fs::write(&path, serde_json::to_string_pretty(json).unwrap_or_default() + "\n"));
    match written {
        Ok(()) => println!("written to {}", path.display()),
        Err(err) => eprintln!("could not write {}: {err}", path.display()),
    }
}
