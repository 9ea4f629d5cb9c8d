//! Keyset pagination of the control-plane listings (projects, App IDs, documents of one kind, tokens).
//!
//! A page is `WHERE <scope> AND <sort key> > <last key of the previous page> ORDER BY <sort key> LIMIT n + 1`:
//! every sort key is a unique index (or the leading columns of one), so a page costs an index range scan of
//! `n + 1` rows however many rows the table holds, and a row created or deleted between two pages neither
//! repeats nor shifts anything. OFFSET would re-read every row before the page. The continuation token is
//! the last row's key, encoded: it only ever names a position inside the scope the caller already resolved,
//! so a forged one can skip rows of that scope but never reach another's.
//!
//! The API log pages its own way (`api_log_blocks`), reusing the token's encoding.

use sqlx::any::AnyRow;
use sqlx::Row;

use outrigger_resources::Kind;

use crate::records::{self, AppIdentity, Project, ProjectId, StoredResource, TokenInfo};
use crate::{now_millis, Error, Result, Tx};

/// Entries per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most entries one page holds.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which page to read: how many entries, and after which (the previous page's continuation token).
#[derive(Clone, Debug, Default)]
pub struct PageRequest {
    /// Entries wanted; 0 means the default, more than [`MAX_PAGE_SIZE`] is capped.
    pub limit: u32,
    /// The previous page's continuation token; `None` for the first page.
    pub continuation: Option<String>,
}

impl PageRequest {
    /// Entries the page holds at most.
    pub(crate) fn limit(&self) -> u32 {
        if self.limit == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.limit.min(MAX_PAGE_SIZE)
        }
    }
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct Page<T> {
    /// The entries, in the listing's order.
    pub items: Vec<T>,
    /// Where the next page starts; `None` on the last page.
    pub continuation: Option<String>,
}

impl<T> Page<T> {
    /// The same page with its entries converted.
    pub fn map<U>(self, convert: impl FnMut(T) -> U) -> Page<U> {
        Page { items: self.items.into_iter().map(convert).collect(), continuation: self.continuation }
    }
}

/// A value bound to a placeholder, or one column of a sort key.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub(crate) enum Value {
    Number(i64),
    Text(String),
}

/// A column of a sort key and the type of its values.
#[derive(Clone, Copy)]
pub(crate) enum KeyColumn {
    Text(&'static str),
    Number(&'static str),
}

impl KeyColumn {
    fn name(self) -> &'static str {
        match self {
            KeyColumn::Text(name) | KeyColumn::Number(name) => name,
        }
    }

    fn read(self, row: &AnyRow) -> Result<Value> {
        Ok(match self {
            KeyColumn::Text(name) => Value::Text(row.try_get(name)?),
            KeyColumn::Number(name) => Value::Number(row.try_get(name)?),
        })
    }

    fn accepts(self, value: &Value) -> bool {
        matches!((self, value), (KeyColumn::Text(_), Value::Text(_)) | (KeyColumn::Number(_), Value::Number(_)))
    }
}

/// The encoded position after `key`: hex of its JSON (opaque to callers; hex keeps it URL-safe as is).
pub(crate) fn encode(key: &[Value]) -> String {
    hex::encode(serde_json::to_vec(key).expect("key values serialise"))
}

/// The key a continuation token names, checked against the listing's key columns.
pub(crate) fn decode(token: &str, columns: &[KeyColumn]) -> Result<Vec<Value>> {
    let key: Vec<Value> = hex::decode(token)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or(Error::InvalidContinuation)?;
    let fits = key.len() == columns.len() && columns.iter().zip(&key).all(|(column, value)| column.accepts(value));
    if fits {
        Ok(key)
    } else {
        Err(Error::InvalidContinuation)
    }
}

/// One listing: a table, the columns read, conditions that scope it, and the unique sort key it pages by.
pub(crate) struct Keyset {
    table: &'static str,
    columns: &'static str,
    key: &'static [KeyColumn],
    clauses: Vec<String>,
    values: Vec<Value>,
    descending: bool,
    /// Whether the statement is planned for each run's values (not prepared once and reused).
    planned_per_run: bool,
}

impl Keyset {
    pub(crate) fn new(table: &'static str, columns: &'static str, key: &'static [KeyColumn]) -> Keyset {
        Keyset {
            table,
            columns,
            key,
            clauses: Vec::new(),
            values: Vec::new(),
            descending: false,
            planned_per_run: false,
        }
    }

    /// Plans the statement for each run's values. A prepared statement run five times gets PostgreSQL's generic
    /// plan, which cannot tell a project holding millions of rows from one holding ten: for the API log it read
    /// a heavy project's every row and sorted them (seconds) where the plan for the values stops after a page.
    pub(crate) fn planned_per_run(mut self) -> Keyset {
        self.planned_per_run = true;
        self
    }

    /// Pages from the highest key down (the newest first, for a key that starts with a time).
    pub(crate) fn newest_first(mut self) -> Keyset {
        self.descending = true;
        self
    }

    /// Adds a value; its placeholder.
    fn bind(&mut self, value: Value) -> String {
        self.values.push(value);
        format!("${}", self.values.len())
    }

    /// Adds a condition whose every `?` stands for `value`.
    pub(crate) fn filter(mut self, clause: &str, value: Value) -> Keyset {
        let placeholder = self.bind(value);
        self.clauses.push(clause.replace('?', &placeholder));
        self
    }

    /// The statement reading `columns` of the rows the clauses so far select, in key order.
    fn select(&self, columns: &str, order: &[String], limit: u64) -> String {
        let filter =
            if self.clauses.is_empty() { String::new() } else { format!("WHERE {}", self.clauses.join(" AND ")) };
        format!("SELECT {columns} FROM {} {filter} ORDER BY {} LIMIT {limit}", self.table, order.join(", "))
    }

    /// Runs `sql` with `values` bound to its placeholders.
    async fn fetch(&self, tx: &mut Tx, sql: &str, values: &[Value]) -> Result<Vec<AnyRow>> {
        let mut query = sqlx::query(sql).persistent(!self.planned_per_run);
        for value in values {
            query = match value {
                Value::Text(text) => query.bind(text),
                Value::Number(number) => query.bind(*number),
            };
        }
        Ok(query.fetch_all(&mut *tx.tx).await?)
    }

    /// Reads the page `request` names, converting each row with `read`.
    pub(crate) async fn page<T>(
        mut self,
        tx: &mut Tx,
        request: &PageRequest,
        read: impl Fn(&AnyRow) -> Result<T>,
    ) -> Result<Page<T>> {
        let limit = request.limit();
        let names: Vec<&str> = self.key.iter().map(|column| column.name()).collect();
        if let Some(token) = &request.continuation {
            let after: Vec<String> = decode(token, self.key)?.into_iter().map(|value| self.bind(value)).collect();
            // A row-value comparison, which both engines answer from an index on the key's columns.
            let beyond = if self.descending { "<" } else { ">" };
            self.clauses.push(format!("({}) {beyond} ({})", names.join(", "), after.join(", ")));
        }
        let order: Vec<String> = names
            .iter()
            .map(|name| if self.descending { format!("{name} DESC") } else { (*name).to_owned() })
            .collect();
        let sql = self.select(self.columns, &order, u64::from(limit) + 1);
        let mut rows = self.fetch(tx, &sql, &self.values).await?;
        // The one row past the page says whether another page follows, without counting the rest.
        let continuation = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            let last = rows.last().expect("a full page has a last row");
            Some(encode(&self.key.iter().map(|column| column.read(last)).collect::<Result<Vec<_>>>()?))
        } else {
            None
        };
        Ok(Page { items: rows.iter().map(read).collect::<Result<_>>()?, continuation })
    }
}

const BY_NAME: &[KeyColumn] = &[KeyColumn::Text("name")];
const BY_CREATION: &[KeyColumn] = &[KeyColumn::Number("created_at"), KeyColumn::Text("id")];

impl Tx {
    /// A page of the organization's projects, by name (the unique index on `(org_id, name)`); with `granted_to`,
    /// only those the principal holds a role on.
    pub async fn page_projects(
        &mut self,
        org: &crate::OrgId,
        granted_to: Option<&crate::PrincipalId>,
        request: &PageRequest,
    ) -> Result<Page<Project>> {
        let mut listing = Keyset::new("projects", records::PROJECT_COLUMNS, BY_NAME)
            .filter("org_id = ?", Value::Text(org.as_str().to_owned()));
        if let Some(principal) = granted_to {
            listing = listing.filter(
                "id IN (SELECT project_id FROM memberships WHERE principal_id = ?)",
                Value::Text(principal.as_str().to_owned()),
            );
        }
        listing.page(self, request, records::project_from_row).await
    }

    /// A page of the project's App IDs, by name (the primary key).
    pub async fn page_app_ids(&mut self, project: &ProjectId, request: &PageRequest) -> Result<Page<AppIdentity>> {
        Keyset::new("app_ids", records::APP_ID_COLUMNS, BY_NAME)
            .filter("project_id = ?", Value::Text(project.as_str().to_owned()))
            .page(self, request, records::app_identity_from_row)
            .await
    }

    /// A page of the project's documents of one kind, by name (the primary key).
    pub async fn page_resources(
        &mut self,
        project: &ProjectId,
        kind: Kind,
        request: &PageRequest,
    ) -> Result<Page<StoredResource>> {
        Keyset::new("resources", "kind, name, document, created_at, updated_at", BY_NAME)
            .filter("project_id = ?", Value::Text(project.as_str().to_owned()))
            .filter("kind = ?", Value::Text(kind.as_str().to_owned()))
            .page(self, request, records::resource_from_row)
            .await
    }

    /// A page of the App ID's valid tokens (never their secrets), oldest first.
    pub async fn page_tokens(
        &mut self,
        project: &ProjectId,
        app_name: &str,
        request: &PageRequest,
    ) -> Result<Page<TokenInfo>> {
        self.app_id(project, app_name).await?;
        Keyset::new("api_tokens", "id, created_at, expires_at", BY_CREATION)
            .filter("project_id = ?", Value::Text(project.as_str().to_owned()))
            .filter("app_name = ?", Value::Text(app_name.to_owned()))
            .filter("(expires_at IS NULL OR expires_at > ?)", Value::Number(now_millis()))
            .page(self, request, records::token_from_row)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_a_key_of_the_listing_s_shape() {
        let token = encode(&[Value::Number(17), Value::Text("tok_1".into())]);
        assert_eq!(decode(&token, BY_CREATION).unwrap(), [Value::Number(17), Value::Text("tok_1".into())]);
        assert!(matches!(decode(&token, BY_NAME), Err(Error::InvalidContinuation)));
        let name = encode(&[Value::Text("p042".into())]);
        assert!(matches!(decode(&name, BY_CREATION), Err(Error::InvalidContinuation)));
        for garbage in ["", "zz", "not-one-of-ours", &hex::encode("{\"a\":1}")] {
            assert!(matches!(decode(garbage, BY_NAME), Err(Error::InvalidContinuation)), "{garbage}");
        }
    }
}
