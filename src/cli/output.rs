//! Printing answers: aligned tables for people, the control API's own JSON (or the same as YAML)
//! for scripts.

use std::fmt;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// Aligned columns with a header row
    Table,
    /// The control API's JSON answer, pretty-printed
    Json,
    /// The control API's JSON answer, as YAML
    Yaml,
}

/// How a command prints its answer.
#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Output format: a table for people, JSON or YAML for scripts
    #[arg(short, long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// Prints `answer` as JSON or YAML, or as the table `to_table` makes of it.
pub fn emit(format: OutputFormat, answer: &Value, to_table: impl FnOnce(&Value) -> Table) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => print!("{}", to_table(answer)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(answer).context("formatting JSON")?),
        OutputFormat::Yaml => print!("{}", serde_yaml::to_string(answer).context("formatting YAML")?),
    }
    Ok(())
}

/// Rows of text printed in columns as wide as their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Self { header: header.iter().map(|&title| title.to_owned()).collect(), rows: Vec::new() }
    }

    /// Adds a row; it should have as many cells as the header.
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    /// A table of one row, for an answer that is a single object.
    pub fn single(header: &[&str], answer: &Value, to_row: impl Fn(&Value) -> Vec<String>) -> Self {
        let mut table = Self::new(header);
        table.push(to_row(answer));
        table
    }

    /// One row per element of `answer["items"]` (the shape of every list answer).
    pub fn from_items(header: &[&str], answer: &Value, to_row: impl Fn(&Value) -> Vec<String>) -> Self {
        let mut table = Self::new(header);
        for item in answer["items"].as_array().into_iter().flatten() {
            table.push(to_row(item));
        }
        table
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lines = std::iter::once(&self.header).chain(&self.rows);
        let mut widths = vec![0; self.header.len()];
        for line in lines.clone() {
            for (width, cell) in widths.iter_mut().zip(line) {
                *width = (*width).max(cell.chars().count());
            }
        }
        for line in lines {
            let mut text = String::new();
            for (cell, width) in line.iter().zip(&widths) {
                text.push_str(&format!("{cell:<width$}  "));
            }
            writeln!(f, "{}", text.trim_end())?;
        }
        Ok(())
    }
}

/// The value at a JSON pointer as a table cell: `-` when absent or null, lists comma-separated.
pub fn cell(value: &Value, pointer: &str) -> String {
    match value.pointer(pointer) {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) if items.is_empty() => "-".to_owned(),
        Some(Value::Array(items)) => items.iter().map(|item| cell(item, "")).collect::<Vec<_>>().join(","),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&["NAME", "TYPE", "SCOPES"]);
        table.push(vec!["statestore".to_owned(), "state.redis".to_owned(), "-".to_owned()]);
        table.push(vec!["pubsub".to_owned(), "pubsub.redis".to_owned(), "orders,checkout".to_owned()]);
        assert_eq!(
            table.to_string(),
            "NAME        TYPE          SCOPES\n\
             statestore  state.redis   -\n\
             pubsub      pubsub.redis  orders,checkout\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(&["NAME", "NOTE"]);
        table.push(vec!["café".to_owned(), "x".to_owned()]);
        assert_eq!(table.to_string(), "NAME  NOTE\ncafé  x\n");
    }

    #[test]
    fn cells_show_absent_values_as_a_dash_and_lists_joined() {
        let document = json!({"name": "a", "none": null, "scopes": ["x", "y"], "empty": [], "count": 3, "flag": true});
        assert_eq!(cell(&document, "/name"), "a");
        assert_eq!(cell(&document, "/none"), "-");
        assert_eq!(cell(&document, "/missing/deeper"), "-");
        assert_eq!(cell(&document, "/scopes"), "x,y");
        assert_eq!(cell(&document, "/empty"), "-");
        assert_eq!(cell(&document, "/count"), "3");
        assert_eq!(cell(&document, "/flag"), "true");
    }

    #[test]
    fn list_answers_become_one_row_per_item() {
        let answer = json!({"items": [{"name": "a"}, {"name": "b"}]});
        let table = Table::from_items(&["NAME"], &answer, |item| vec![cell(item, "/name")]);
        assert_eq!(table.to_string(), "NAME\na\nb\n");
    }
}
