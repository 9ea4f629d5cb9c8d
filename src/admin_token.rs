//! The operator token: taken from the configuration, or, for the embedded default only, read from the data
//! directory, or generated into it (owner-readable) on first start and shown once.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Context};

use crate::config::Config;

/// Name of the file in the data directory that holds a generated operator token.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// Connects to the control-plane database and applies pending migrations.
/// The operator token: configured, or (embedded default only) read from / generated into the data dir.
pub(crate) fn admin_token(config: &Config, may_generate: bool) -> anyhow::Result<String> {
    if let Some(token) = &config.admin_token {
        return Ok(token.trim().to_owned());
    }
    if !may_generate {
        bail!("OUTRIGGER_ADMIN_TOKEN is not set: the control API needs an operator token (at least 16 characters)");
    }
    let path = config.data_dir.join(ADMIN_TOKEN_FILE);
    if path.exists() {
        let token = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        return Ok(token.trim().to_owned());
    }
    let token = generate_admin_token();
    write_private(&path, &token).with_context(|| format!("writing {}", path.display()))?;
    print_first_start_banner(&path, &token);
    Ok(token)
}

fn generate_admin_token() -> String {
    use rand::RngCore;
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let hex: String = secret.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("ora_{hex}")
}

/// Writes a file readable by its owner only.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

fn print_first_start_banner(path: &Path, token: &str) {
    println!(
        "\nOutrigger generated an operator token and stored it in {path}:\n\n    {token}\n\n\
         The CLI reads that file when run from this directory; elsewhere set OUTRIGGER_TOKEN.\n\
         Next steps:\n\
         \x20   outrigger project create demo\n\
         \x20   outrigger appid create orders --project demo\n\
         then give the app the three DAPR_* variables that command prints.\n",
        path = path.display()
    );
}
