//! The install files in `deploy/`: the compose file is valid for Docker Compose (checked by `docker-compose
//! config`, no image pulled) and every Outrigger service in it runs a role the binary has, with settings the
//! binary accepts. That per-container check is shared with the Helm chart's tests (helm.rs).

use std::path::Path;
use std::process::Command;

use serde_yaml::Value;

use crate::harness::outrigger;

fn compose_file() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml"))
}

fn compose_config(admin_token: Option<&str>) -> std::process::Output {
    let mut command = Command::new("docker-compose");
    command.arg("-f").arg(compose_file()).args(["config", "-q"]).env_remove("OUTRIGGER_ADMIN_TOKEN");
    if let Some(token) = admin_token {
        command.env("OUTRIGGER_ADMIN_TOKEN", token);
    }
    command.output().expect("running docker-compose (scripts/test installs Debian's docker-compose)")
}

#[test]
fn the_compose_file_is_valid_and_asks_for_the_operator_token() {
    let valid = compose_config(Some("an-operator-token-of-some-length"));
    assert!(valid.status.success(), "{}", String::from_utf8_lossy(&valid.stderr));
    let missing = compose_config(None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("set OUTRIGGER_ADMIN_TOKEN"));
}

#[test]
fn every_outrigger_service_runs_a_role_with_settings_the_binary_accepts() {
    let compose: Value = serde_yaml::from_str(&std::fs::read_to_string(compose_file()).unwrap()).unwrap();
    let services = compose["services"].as_mapping().expect("services");
    let mut roles = Vec::new();
    for (name, service) in services {
        // `<<: *outrigger` merges the shared settings in.
        let mut service = service.clone();
        service.apply_merge().unwrap();
        if service["image"] != "outrigger:local" {
            continue;
        }
        let command: Vec<&str> =
            service["command"].as_sequence().unwrap().iter().map(|arg| arg.as_str().unwrap()).collect();
        let env: Vec<(String, String)> = service["environment"]
            .as_mapping()
            .unwrap()
            .iter()
            .map(|(variable, value)| {
                // `${VARIABLE:?...}` is what the operator sets.
                let value = value.as_str().unwrap();
                let value = if value.starts_with("${") { OPERATOR_VALUE } else { value };
                (variable.as_str().unwrap().to_owned(), value.to_owned())
            })
            .collect();
        check_outrigger_container(&format!("service {name:?}"), &command, &env)
            .unwrap_or_else(|error| panic!("{error}"));
        roles.push(command[0].to_owned());
    }
    roles.sort();
    assert_eq!(roles, ["control-api", "gateway", "gateway", "migrate", "worker", "worker"]);
}

/// Stands in for a value the operator supplies (a secret): long enough for the operator token.
pub const OPERATOR_VALUE: &str = "an-operator-token-of-some-length";

/// Whether a container that runs `outrigger <command>` with environment `env` (as a compose service or a
/// Kubernetes pod would) names a command of the binary and gives it settings it accepts. `what` names the
/// container in the error.
pub fn check_outrigger_container(what: &str, command: &[&str], env: &[(String, String)]) -> Result<(), String> {
    let help = outrigger(command.iter().chain(&["--help"])).output().unwrap();
    if !help.status.success() {
        return Err(format!("{what}: `outrigger {command:?}` is no command of the binary"));
    }
    // The settings load (a wrong name or value fails before anything is dialled).
    let mut migrate = outrigger(["migrate"]);
    migrate.envs(env.iter().map(|(name, value)| (name, value)));
    // A database file that cannot exist: the settings load, then connecting fails at once.
    let loaded = migrate.env("OUTRIGGER_DATABASE_URL", "sqlite:///no-such-directory/control.db").output().unwrap();
    let stderr = String::from_utf8_lossy(&loaded.stderr);
    match stderr.contains("connecting to the control-plane database") {
        true => Ok(()),
        false => Err(format!("{what}: {stderr}")),
    }
}
