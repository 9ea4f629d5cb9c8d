//! What a tenant's component may reach: the hosts it dials pass the egress rule ([`Egress`]) and are pinned to
//! the address checked, and the files it opens stay inside the project's own directory under the data dir.
//! Components the operator configures (the managed stores) are opened with [`Boundary::operator`] instead.

use std::net::SocketAddr;
use std::path::PathBuf;

use outrigger_outbound::Egress;

use crate::state::open::OpenError;

/// Where components may reach.
#[derive(Clone, Debug)]
pub struct Boundary {
    egress: Egress,
    /// The project's directory; `None`: the operator's own configuration, taken as given.
    files: Option<PathBuf>,
}

impl Boundary {
    /// The operator's own components: hosts and files as given.
    pub fn operator() -> Boundary {
        Boundary { egress: Egress::default(), files: None }
    }

    /// A tenant's components: hosts through `egress`, files inside `project_dir` (created when needed).
    pub fn tenant(egress: Egress, project_dir: PathBuf) -> Boundary {
        Boundary { egress, files: Some(project_dir) }
    }

    fn is_operator(&self) -> bool {
        self.files.is_none()
    }

    /// The path to open for the file a component's `field` names: inside the project's directory, with every
    /// link on the way resolved and still inside it.
    pub async fn file(
        &self,
        component_type: &'static str,
        field: &'static str,
        path: &str,
    ) -> Result<PathBuf, OpenError> {
        let Some(root) = &self.files else { return Ok(PathBuf::from(path)) };
        let refused = |reason: String| OpenError::InvalidField { component_type, field, reason };
        outrigger_resources::check_project_file(path).map_err(refused)?;
        let failed = |err: std::io::Error| OpenError::Backend {
            component_type,
            message: format!("cannot prepare the project's file directory: {err}"),
        };
        tokio::fs::create_dir_all(root).await.map_err(failed)?;
        let root = tokio::fs::canonicalize(root).await.map_err(failed)?;
        let wanted = root.join(path);
        // The deepest part that exists, with its links resolved, must still be inside the project's
        // directory; what does not exist yet is created below it.
        let mut existing = wanted.as_path();
        let resolved = loop {
            match tokio::fs::canonicalize(existing).await {
                Ok(resolved) => match wanted.strip_prefix(existing) {
                    Ok(rest) if !rest.as_os_str().is_empty() => break resolved.join(rest),
                    _ => break resolved,
                },
                // An entry that exists but does not resolve is a dangling link: where it would create a file
                // is not knowable here, so it is refused.
                Err(_) if tokio::fs::symlink_metadata(existing).await.is_ok() => {
                    return Err(refused(format!("'{path}' goes through a link that leads nowhere; remove the link")));
                }
                Err(_) => existing = existing.parent().unwrap_or(&root),
            }
        };
        if !resolved.starts_with(&root) {
            return Err(refused(format!("'{path}' leads out of the project's directory through a link")));
        }
        if let Some(parent) = resolved.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(failed)?;
        }
        Ok(resolved)
    }

    /// The address to connect to for `host` on `port`, named by a component's `field`: resolved and judged by
    /// the egress rule. The operator's components keep their names (they may not resolve yet at start).
    pub async fn host(
        &self,
        component_type: &'static str,
        field: &'static str,
        host: &str,
        port: u16,
    ) -> Result<Option<SocketAddr>, OpenError> {
        if self.is_operator() {
            return Ok(None);
        }
        // Refused or unresolvable alike: the field names a host this component cannot use.
        let pinned = self.egress.pin(host, port).await;
        pinned.map(Some).map_err(|err| OpenError::InvalidField { component_type, field, reason: err.to_string() })
    }

    /// An HTTP client whose every connection, redirects included, passes the egress rule.
    pub fn http_client(&self) -> reqwest::Client {
        self.egress.client(true)
    }

    /// Whether the component's connections must ignore servers a server points them to (NATS cluster
    /// discovery): those addresses were never judged.
    pub fn is_confined(&self) -> bool {
        !self.is_operator()
    }
}
