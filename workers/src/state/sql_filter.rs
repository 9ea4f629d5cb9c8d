//! A query's filter as SQL, so that a SQL store sends back only the values that may match: on a large store
//! a query that matches little then costs the database's JSON parsing, not the transfer and parsing of
//! every value in the worker.
//!
//! The SQL is a *pre-filter*: it may let through items the filter does not select (the worker evaluates every
//! candidate again, [`super::query`]), but it must never hold back one the filter selects. So where SQL and
//! the worker could disagree, the SQL is looser: numbers are compared with a margin (the engines' and
//! serde's decimal parsing may differ in the last bit), `NEQ` only asks that the field exists, and a part it
//! cannot write (a field name SQLite's JSON paths cannot quote) selects everything.
//!
//! Values are JSON text in a BLOB (SQLite) or BYTEA (PostgreSQL) column. SQLite's `json_valid` keeps values
//! that are not JSON out of the JSON functions; PostgreSQL has no such test before version 16, so its
//! conversion may fail on a batch, and the store then reads that batch without the pre-filter.

use serde_json::Value;

use super::query::{Comparison, Filter};

/// Which SQL JSON functions to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonDialect {
    /// SQLite's JSON functions over `CAST(value AS TEXT)`.
    Sqlite,
    /// PostgreSQL's `jsonb` functions over the document `j.d` the statement converts once per row.
    Postgres,
}

/// A value bound to a placeholder of the pre-filter.
#[derive(Clone, Debug, PartialEq)]
pub enum Bind {
    Text(String),
    Float(f64),
}

/// The pre-filter's SQL and the values of its placeholders, numbered from the `first` given to [`compile`].
#[derive(Clone, Debug, PartialEq)]
pub struct Prefilter {
    pub sql: String,
    pub binds: Vec<Bind>,
}

/// Relative margin of numeric comparisons: far above any difference in parsing, far below any difference
/// that makes a pre-filter worth having.
const NUMBER_MARGIN: f64 = 1e-9;

struct Writer {
    dialect: JsonDialect,
    first: usize,
    binds: Vec<Bind>,
}

/// A field as SQL: an expression for its JSON type and one for its scalar value.
struct FieldSql {
    /// Is the field there (SQL NULL when missing).
    json: String,
    type_name: String,
    text: String,
    number: String,
}

impl Writer {
    fn bind(&mut self, value: Bind) -> String {
        self.binds.push(value);
        format!("${}", self.first + self.binds.len() - 1)
    }

    fn field(&mut self, path: &[String]) -> Option<FieldSql> {
        match self.dialect {
            JsonDialect::Sqlite => {
                // SQLite's path labels are double-quoted with no way to escape a quote.
                if path.iter().any(|name| name.contains('"')) {
                    return None;
                }
                let labels: String = path.iter().map(|name| format!(".\"{name}\"")).collect();
                let path = self.bind(Bind::Text(format!("${labels}")));
                let type_name = format!("json_type(CAST(value AS TEXT), {path})");
                let extract = format!("json_extract(CAST(value AS TEXT), {path})");
                Some(FieldSql { json: type_name.clone(), type_name, text: extract.clone(), number: extract })
            }
            JsonDialect::Postgres => {
                let names: Vec<String> = path.iter().map(|name| self.bind(Bind::Text(name.clone()))).collect();
                let names = names.join(", ");
                let json = format!("jsonb_extract_path(j.d, {names})");
                let type_name = format!("jsonb_typeof({json})");
                Some(FieldSql {
                    text: format!("jsonb_extract_path_text(j.d, {names})"),
                    number: format!("CASE WHEN {type_name} = 'number' THEN ({json})::float8 END"),
                    json,
                    type_name,
                })
            }
        }
    }

    fn is_number(&self, field: &FieldSql) -> String {
        match self.dialect {
            JsonDialect::Sqlite => format!("{} IN ('integer', 'real')", field.type_name),
            JsonDialect::Postgres => format!("{} = 'number'", field.type_name),
        }
    }

    /// SQL true for every item whose field equals `operand` (and maybe others).
    fn equals(&mut self, field: &FieldSql, operand: &Value) -> String {
        let type_is = |name: &str| format!("{} = '{name}'", field.type_name);
        match (self.dialect, operand) {
            (_, Value::String(text)) => {
                let text_type = if self.dialect == JsonDialect::Sqlite { "text" } else { "string" };
                let placeholder = self.bind(Bind::Text(text.clone()));
                format!("({} AND {} = {placeholder})", type_is(text_type), field.text)
            }
            (_, Value::Number(number)) => {
                let number = number.as_f64().unwrap_or(f64::NAN);
                let margin = number.abs() * NUMBER_MARGIN + f64::MIN_POSITIVE;
                let low = self.bind(Bind::Float(number - margin));
                let high = self.bind(Bind::Float(number + margin));
                format!("({} AND {} BETWEEN {low} AND {high})", self.is_number(field), field.number)
            }
            (JsonDialect::Sqlite, Value::Bool(flag)) => type_is(if *flag { "true" } else { "false" }),
            (JsonDialect::Postgres, Value::Bool(flag)) => format!("{} = '{flag}'::jsonb", field.json),
            (_, Value::Null) => type_is("null"),
            (_, Value::Array(_)) => type_is("array"),
            (_, Value::Object(_)) => type_is("object"),
        }
    }

    /// `None` when the filter cannot narrow anything (every item is a candidate).
    fn filter(&mut self, filter: &Filter) -> Option<String> {
        match filter {
            Filter::Compare { path, comparison, operand } => {
                let field = self.field(path)?;
                let bound = operand.as_f64().unwrap_or(f64::NAN);
                let margin = bound.abs() * NUMBER_MARGIN + f64::MIN_POSITIVE;
                let (operator, bound) = match comparison {
                    Comparison::Eq => return Some(self.equals(&field, operand)),
                    Comparison::Neq => return Some(format!("{} IS NOT NULL", field.json)),
                    Comparison::Gt => (">", bound - margin),
                    Comparison::Gte => (">=", bound - margin),
                    Comparison::Lt => ("<", bound + margin),
                    Comparison::Lte => ("<=", bound + margin),
                };
                let placeholder = self.bind(Bind::Float(bound));
                Some(format!("({} AND {} {operator} {placeholder})", self.is_number(&field), field.number))
            }
            Filter::In { path, operands } => {
                let field = self.field(path)?;
                let alternatives: Vec<String> = operands.iter().map(|operand| self.equals(&field, operand)).collect();
                Some(format!("({})", alternatives.join(" OR ")))
            }
            Filter::And(filters) => {
                let parts: Vec<String> = filters.iter().filter_map(|filter| self.filter(filter)).collect();
                (!parts.is_empty()).then(|| format!("({})", parts.join(" AND ")))
            }
            Filter::Or(filters) => {
                let parts: Option<Vec<String>> = filters.iter().map(|filter| self.filter(filter)).collect();
                parts.map(|parts| format!("({})", parts.join(" OR ")))
            }
        }
    }
}

/// The pre-filter of `filter`, its placeholders numbered from `first`; `None` when it would select every
/// item anyway.
pub fn compile(dialect: JsonDialect, filter: &Filter, first: usize) -> Option<Prefilter> {
    let mut writer = Writer { dialect, first, binds: Vec::new() };
    let condition = writer.filter(filter)?;
    let sql = match dialect {
        // json_valid first: the other JSON functions fail the whole statement on a value that is not JSON.
        JsonDialect::Sqlite => format!("CASE WHEN json_valid(CAST(value AS TEXT)) THEN {condition} ELSE 0 END"),
        JsonDialect::Postgres => condition,
    };
    Some(Prefilter { sql, binds: writer.binds })
}
