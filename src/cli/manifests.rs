//! `outrigger apply` and `outrigger export`: a project's App IDs and Dapr resources as YAML files.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::Value;

use super::api::ApiClient;
use super::appid::{environment_project, print_app_environment};
use super::output::{cell, emit, OutputArgs, Table};
use super::ProjectArg;

#[derive(Args, Debug)]
pub struct ApplyArgs {
    #[command(flatten)]
    project: ProjectArg,
    /// A YAML file, or a directory whose *.yaml and *.yml files (not its subdirectories) are applied
    /// together; documents are Dapr resources (Component, Subscription, Resiliency, Configuration,
    /// HTTPEndpoint) or App IDs (kind AppIdentity, apiVersion outrigger.io/v1alpha1)
    #[arg(short = 'f', long = "file")]
    path: PathBuf,
    /// Report what would change without changing anything
    #[arg(long)]
    dry_run: bool,
    /// Also delete what the project has but the files do not declare, among the kinds the files
    /// declare (a kind absent from the files is left alone)
    #[arg(long)]
    prune: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    project: ProjectArg,
    /// Write the YAML to DIR/<project>.yaml (creating DIR) instead of printing it
    #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// The lists of an apply answer, in the order they are shown.
const OUTCOMES: [&str; 4] = ["created", "updated", "unchanged", "deleted"];

pub async fn apply(api: &ApiClient, args: ApplyArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    let documents = read_documents(&args.path)?;
    let mut url = api.url(&["projects", project, "apply"]);
    url.query_pairs_mut()
        .append_pair("dryRun", &args.dry_run.to_string())
        .append_pair("prune", &args.prune.to_string());
    let environment = environment_project(api, args.output.output, project).await?;
    let outcome = api.post_yaml(url, documents).await?;
    emit(args.output.output, &outcome, outcome_table)?;
    let Some(environment) = environment else {
        return Ok(());
    };
    if outcome["dryRun"] == Value::Bool(true) {
        println!("dry run: nothing was changed");
    }
    let created = outcome["created"].as_array().into_iter().flatten();
    for app_id in created.filter(|created| created["apiToken"].is_string()) {
        print_app_environment(&environment, &cell(app_id, "/name"), &cell(app_id, "/apiToken"));
    }
    Ok(())
}

pub async fn export(api: &ApiClient, args: ExportArgs) -> anyhow::Result<()> {
    let project = args.project.name()?;
    let documents = api.get_yaml(&["projects", project, "export"]).await?;
    match args.dir {
        None => print!("{documents}"),
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let file = dir.join(format!("{project}.yaml"));
            std::fs::write(&file, documents).with_context(|| format!("writing {}", file.display()))?;
            println!("project {project} exported to {}", file.display());
        }
    }
    Ok(())
}

fn outcome_table(outcome: &Value) -> Table {
    let mut table = Table::new(&["ACTION", "KIND", "NAME"]);
    for action in OUTCOMES {
        for entry in outcome[action].as_array().into_iter().flatten() {
            table.push(vec![action.to_owned(), cell(entry, "/kind"), cell(entry, "/name")]);
        }
    }
    table
}

/// The YAML at `path` as one multi-document text: the file itself, or the directory's *.yaml and
/// *.yml files in name order (so that a numbered prefix orders them) joined by `---` lines.
fn read_documents(path: &Path) -> anyhow::Result<String> {
    let metadata = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
    let files = if metadata.is_dir() {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).with_context(|| format!("listing {}", path.display()))? {
            let file = entry.with_context(|| format!("listing {}", path.display()))?.path();
            let is_yaml = matches!(file.extension().and_then(|extension| extension.to_str()), Some("yaml" | "yml"));
            if is_yaml && file.is_file() {
                files.push(file);
            }
        }
        if files.is_empty() {
            bail!("{} has no *.yaml or *.yml files to apply", path.display());
        }
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let mut documents = String::new();
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        // A file that opens with its own `---` needs no separator; adding one would make an empty document.
        if !documents.is_empty() && !opens_with_document_marker(&text) {
            documents.push_str("---\n");
        }
        documents.push_str(&text);
        if !text.ends_with('\n') {
            documents.push('\n');
        }
    }
    Ok(documents)
}

/// Whether YAML text starts with a `---` document start marker line.
fn opens_with_document_marker(text: &str) -> bool {
    text.strip_prefix("---").is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_its_yaml_files_in_name_order_joined_without_empty_documents() {
        let dir = tempfile::tempdir().expect("creating a directory");
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("writing");
        write("b.yml", "---\nkind: B\n");
        write("a.yaml", "kind: A");
        write("c.yaml", "kind: C\n---\nkind: D\n");
        write("notes.txt", "kind: Ignored\n");
        std::fs::create_dir(dir.path().join("nested.yaml")).expect("creating a directory");
        std::fs::write(dir.path().join("nested.yaml/deep.yaml"), "kind: Deep\n").expect("writing");

        let documents = read_documents(dir.path()).expect("reading the directory");
        assert_eq!(documents, "kind: A\n---\nkind: B\n---\nkind: C\n---\nkind: D\n");
    }

    #[test]
    fn a_file_is_read_as_is() {
        let dir = tempfile::tempdir().expect("creating a directory");
        let file = dir.path().join("one.txt");
        std::fs::write(&file, "kind: A\n").expect("writing");
        assert_eq!(read_documents(&file).expect("reading the file"), "kind: A\n");
    }

    #[test]
    fn a_directory_without_yaml_is_an_error() {
        let dir = tempfile::tempdir().expect("creating a directory");
        let error = read_documents(dir.path()).expect_err("nothing to apply");
        assert!(error.to_string().contains("no *.yaml or *.yml files"), "{error}");
    }

    #[test]
    fn document_markers_are_recognised_only_as_whole_tokens() {
        assert!(opens_with_document_marker("---\nkind: A"));
        assert!(opens_with_document_marker("--- # first\nkind: A"));
        assert!(opens_with_document_marker("---"));
        assert!(!opens_with_document_marker("kind: A\n---\n"));
        assert!(!opens_with_document_marker("----\n"));
    }
}
