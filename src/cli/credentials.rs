//! The credential `outrigger login` keeps between commands, with the organization `outrigger org use` chose:
//! where the file lives and how it is written so that no one but its owner can ever read it.

use std::ffi::OsString;
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const FILE_NAME: &str = "credentials.json";

/// What the file holds: one control API's credential and current organization.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// The control API everything here belongs to; the credential is never sent to another.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token stops working.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The organization requests work in, sent as `Outrigger-Organization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

impl Stored {
    /// Whether it holds a credential, not only a chosen organization.
    pub fn signed_in(&self) -> bool {
        self.access_token.is_some() || self.api_key.is_some()
    }
}

/// The credentials file in the user's configuration directory.
pub struct CredentialFile {
    path: PathBuf,
}

impl CredentialFile {
    /// `$OUTRIGGER_CONFIG_DIR`, else `$XDG_CONFIG_HOME/outrigger`, else `~/.config/outrigger`.
    pub fn locate() -> anyhow::Result<Self> {
        let dir = config_dir(|name| std::env::var_os(name))?;
        Ok(Self { path: dir.join(FILE_NAME) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file holds, or None when there is no file.
    pub fn load(&self) -> anyhow::Result<Option<Stored>> {
        let path = self.path.display();
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error).with_context(|| format!("reading the stored credential {path}")),
        };
        let stored = serde_json::from_str(&text).with_context(|| {
            format!("{path} is not a credential `outrigger login` wrote: remove it with `outrigger logout`")
        })?;
        Ok(Some(stored))
    }

    /// Replaces the file. The new contents go to a file created readable by its owner only, then renamed over
    /// the old one: no reader ever sees half a file, and the secrets are never readable by anyone else, not
    /// even for the moment a chmod after writing would leave open.
    pub fn save(&self, stored: &Stored) -> anyhow::Result<()> {
        let dir = self.path.parent().expect("the credentials file is inside a directory");
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).with_context(|| format!("creating the configuration directory {}", dir.display()))?;
        let staging = dir.join(format!("{FILE_NAME}.{}.tmp", std::process::id()));
        // Left by a command of this process id that died between writing and renaming.
        let _ = std::fs::remove_file(&staging);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let written = options.open(&staging).and_then(|mut file| {
            let text = serde_json::to_string_pretty(stored).expect("a credential serializes");
            file.write_all(text.as_bytes())?;
            file.sync_all()
        });
        let renamed = written.and_then(|()| std::fs::rename(&staging, &self.path));
        if let Err(error) = renamed {
            let _ = std::fs::remove_file(&staging);
            return Err(error).with_context(|| format!("storing the credential in {}", self.path.display()));
        }
        Ok(())
    }

    /// Deletes the file; false when there was none.
    pub fn remove(&self) -> anyhow::Result<bool> {
        match std::fs::remove_file(&self.path) {
            Ok(()) => Ok(true),
            Err(error) if error.kind() == ErrorKind::NotFound => Ok(false),
            Err(error) => Err(error).with_context(|| format!("removing {}", self.path.display())),
        }
    }
}

/// The directory of the credentials file, from the environment variables `var` reads; empty ones count as unset.
fn config_dir(var: impl Fn(&str) -> Option<OsString>) -> anyhow::Result<PathBuf> {
    let set = |name: &str| var(name).filter(|value| !value.is_empty()).map(PathBuf::from);
    if let Some(dir) = set("OUTRIGGER_CONFIG_DIR") {
        return Ok(dir);
    }
    if let Some(config_home) = set("XDG_CONFIG_HOME") {
        return Ok(config_home.join("outrigger"));
    }
    match set("HOME") {
        Some(home) => Ok(home.join(".config").join("outrigger")),
        None => bail!("no configuration directory to keep the credential in: set OUTRIGGER_CONFIG_DIR (or HOME)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| vars.iter().find(|(key, _)| *key == name).map(|(_, value)| OsString::from(value))
    }

    #[test]
    fn the_directory_is_outrigger_s_own_then_xdg_then_home() {
        let all = [("OUTRIGGER_CONFIG_DIR", "/o"), ("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")];
        assert_eq!(config_dir(env(&all)).unwrap(), PathBuf::from("/o"));
        assert_eq!(config_dir(env(&all[1..])).unwrap(), PathBuf::from("/x/outrigger"));
        assert_eq!(config_dir(env(&all[2..])).unwrap(), PathBuf::from("/h/.config/outrigger"));
        let empty = [("OUTRIGGER_CONFIG_DIR", ""), ("XDG_CONFIG_HOME", ""), ("HOME", "/h")];
        assert_eq!(config_dir(env(&empty)).unwrap(), PathBuf::from("/h/.config/outrigger"));
        let error = config_dir(env(&[])).unwrap_err().to_string();
        assert!(error.contains("OUTRIGGER_CONFIG_DIR"), "{error}");
    }

    #[test]
    fn saved_credentials_read_back_and_only_their_owner_can_read_them() {
        let home = tempfile::tempdir().unwrap();
        let file = CredentialFile { path: home.path().join("nested").join(FILE_NAME) };
        assert_eq!(file.load().unwrap(), None);
        let stored = Stored {
            url: "http://127.0.0.1:8080/".to_owned(),
            api_key: Some("ork_secret".to_owned()),
            org: Some("acme".to_owned()),
            ..Stored::default()
        };
        file.save(&stored).unwrap();
        file.save(&Stored { org: Some("beta".to_owned()), ..stored.clone() }).unwrap();
        assert_eq!(file.load().unwrap().and_then(|stored| stored.org).as_deref(), Some("beta"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(file.path()), 0o600);
            assert_eq!(mode(file.path().parent().unwrap()), 0o700);
        }
        let names: Vec<_> = std::fs::read_dir(file.path().parent().unwrap()).unwrap().map(|e| e.unwrap()).collect();
        assert_eq!(names.len(), 1, "no staging file is left behind");
        assert!(file.remove().unwrap());
        assert!(!file.remove().unwrap());
    }

    #[test]
    fn a_file_that_is_not_a_credential_says_how_to_remove_it() {
        let home = tempfile::tempdir().unwrap();
        let file = CredentialFile { path: home.path().join(FILE_NAME) };
        std::fs::write(file.path(), "not json").unwrap();
        let error = format!("{:#}", file.load().unwrap_err());
        assert!(error.contains("outrigger logout"), "{error}");
    }
}
