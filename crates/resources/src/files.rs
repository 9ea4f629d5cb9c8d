//! File paths tenants give components (`state.sqlite`'s database, `secretstores.local.file`'s file): names
//! relative to the project's own directory under the data dir, never reaching out of it. Checked when a
//! component is written (so a bad path answers 400 naming the field) and again when the worker opens it,
//! where links are resolved too.

use std::path::{Component, Path};

/// Why `path` cannot name a file in a project's directory, if it cannot.
pub fn check_project_file(path: &str) -> Result<(), String> {
    let hint = "give a name relative to the project's directory, such as data.db";
    if path.trim().is_empty() {
        return Err(format!("is empty; {hint}"));
    }
    if path.contains('\0') {
        return Err(format!("contains a NUL character; {hint}"));
    }
    // Windows drive letters and home-directory shorthands are absolute in spirit on every host.
    let looks_absolute = path.starts_with(['/', '\\', '~']) || path.as_bytes().get(1) == Some(&b':');
    if looks_absolute || Path::new(path).is_absolute() {
        return Err(format!("'{path}' is an absolute path, which tenants cannot use; {hint}"));
    }
    for component in Path::new(path).components().chain(path.split('\\').skip(1).map(|_| Component::CurDir)) {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(format!("'{path}' climbs out with '..', which is not allowed; {hint}")),
            Component::RootDir | Component::Prefix(_) => return Err(format!("'{path}' is absolute; {hint}")),
        }
    }
    if path.split(['/', '\\']).any(|segment| segment == "..") {
        return Err(format!("'{path}' climbs out with '..', which is not allowed; {hint}"));
    }
    Ok(())
}

/// The file a `state.sqlite` connection string names (`file:` prefix dropped); `None` for `:memory:`.
pub fn sqlite_file(connection_string: &str) -> Option<&str> {
    let path = connection_string.strip_prefix("file:").unwrap_or(connection_string);
    (path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_pass_and_everything_reaching_out_is_refused() {
        for good in ["data.db", "state/orders.db", "./data.db", "secrets.json"] {
            assert_eq!(check_project_file(good), Ok(()), "{good}");
        }
        for bad in
            ["/tmp/x.db", "../x.db", "a/../../x.db", "a\\..\\x.db", "~/x.db", "C:\\x.db", "", "a\0b", "\\\\host\\x"]
        {
            assert!(check_project_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sqlite_connection_strings_name_their_file() {
        assert_eq!(sqlite_file("file:data.db"), Some("data.db"));
        assert_eq!(sqlite_file(":memory:"), None);
        assert_eq!(sqlite_file("file::memory:"), None);
    }
}
