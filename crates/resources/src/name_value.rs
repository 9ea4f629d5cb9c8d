//! Lists of `{name, value}` or `{name, secretKeyRef: {name, key}}` entries, the shape Dapr
//! uses for component metadata and HTTP endpoint headers.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::fields::{
    as_object, child, describe, item, optional_list, optional_string, present, required_string, Object,
};
use crate::Invalid;

/// Keys an entry may have.
const ENTRY_KEYS: [&str; 3] = ["name", "value", "secretKeyRef"];

/// One checked entry.
pub(crate) struct NameValue<'a> {
    /// The entry's `name`.
    pub name: &'a str,
    /// Whether it gives a non-empty value or a secret reference.
    pub supplied: bool,
    /// The inline value, when it is a string.
    pub value: Option<&'a str>,
}

/// Whether `holder` has a non-empty inline value at `key` (`null` and `""` are empty).
pub(crate) fn has_inline_value(holder: &Object, key: &str) -> bool {
    present(holder, key).is_some_and(|value| value.as_str() != Some(""))
}

/// Checks the list at `spec.<key>` and returns its entries; `noun` names an entry in
/// messages ("metadata field", "header").
pub(crate) fn check_name_value_list<'a>(
    spec: &'a Object,
    key: &str,
    noun: &str,
) -> Result<Vec<NameValue<'a>>, Invalid> {
    let list_path = child("spec", key);
    let Some(items) = optional_list(spec, key, "spec")? else {
        return Ok(Vec::new());
    };
    let mut first_index_of: BTreeMap<&str, usize> = BTreeMap::new();
    let mut entries = Vec::with_capacity(items.len());
    for (index, value) in items.iter().enumerate() {
        let path = item(&list_path, index);
        let entry = check_entry(as_object(value, &path)?, &path, noun)?;
        if let Some(first) = first_index_of.insert(entry.name, index) {
            return Err(Invalid::at(
                child(&path, "name"),
                format!("{noun} '{}' is already set at {}; keep one of them", entry.name, item(&list_path, first)),
            ));
        }
        entries.push(entry);
    }
    Ok(entries)
}

fn check_entry<'a>(entry: &'a Object, path: &str, noun: &str) -> Result<NameValue<'a>, Invalid> {
    if entry.contains_key("envRef") {
        return Err(Invalid::at(
            child(path, "envRef"),
            "a hosted sidecar does not share an environment with you; use value or secretKeyRef",
        ));
    }
    if let Some(unknown) = entry.keys().find(|key| !ENTRY_KEYS.contains(&key.as_str())) {
        return Err(Invalid::at(
            child(path, unknown),
            format!("unknown key; a {noun} has name and either value or secretKeyRef"),
        ));
    }
    let name = required_string(entry, "name", path)?;
    if name.contains(',') {
        // Withheld values are listed comma-separated in an annotation.
        return Err(Invalid::at(child(path, "name"), "must not contain ','"));
    }
    let value = present(entry, "value");
    if let Some(value @ (Value::Array(_) | Value::Object(_))) = value {
        return Err(Invalid::at(
            child(path, "value"),
            format!("must be a string, number or boolean, found {}", describe(value)),
        ));
    }
    let secret_ref = present(entry, "secretKeyRef");
    if value.is_some() && secret_ref.is_some() {
        return Err(Invalid::at(path, format!("{noun} '{name}' sets both value and secretKeyRef; keep one")));
    }
    if let Some(secret_ref) = secret_ref {
        check_secret_key_ref(secret_ref, &child(path, "secretKeyRef"))?;
    }
    let supplied = secret_ref.is_some() || has_inline_value(entry, "value");
    Ok(NameValue { name, supplied, value: value.and_then(Value::as_str) })
}

fn check_secret_key_ref(value: &Value, path: &str) -> Result<(), Invalid> {
    let reference = as_object(value, path)?;
    if let Some(unknown) = reference.keys().find(|key| !matches!(key.as_str(), "name" | "key")) {
        return Err(Invalid::at(child(path, unknown), "unknown key; a secretKeyRef has name and optionally key"));
    }
    required_string(reference, "name", path)?;
    optional_string(reference, "key", path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(list: Value) -> Result<Vec<(String, bool)>, Invalid> {
        let spec = json!({ "metadata": list });
        let entries = check_name_value_list(spec.as_object().unwrap(), "metadata", "metadata field")?;
        Ok(entries.into_iter().map(|entry| (entry.name.to_owned(), entry.supplied)).collect())
    }

    #[test]
    fn accepts_scalars_references_and_empty_values() {
        let entries = check(json!([
            {"name": "redisHost", "value": "localhost:6379"},
            {"name": "redisDB", "value": 0},
            {"name": "enableTLS", "value": false},
            {"name": "redisPassword", "value": ""},
            {"name": "nothing", "value": null},
            {"name": "bare"},
            {"name": "fromSecret", "secretKeyRef": {"name": "redis", "key": "password"}},
            {"name": "keyless", "secretKeyRef": {"name": "redis"}},
        ]))
        .unwrap();
        let supplied: Vec<_> = entries.iter().map(|(name, supplied)| (name.as_str(), *supplied)).collect();
        assert_eq!(
            supplied,
            [
                ("redisHost", true),
                ("redisDB", true),
                ("enableTLS", true),
                ("redisPassword", false),
                ("nothing", false),
                ("bare", false),
                ("fromSecret", true),
                ("keyless", true),
            ]
        );
        assert_eq!(check(json!(null)).unwrap(), []);
    }

    #[test]
    fn refuses_malformed_entries() {
        let cases = [
            (json!({"name": "a"}), "spec.metadata: must be a list, found a mapping"),
            (json!(["a"]), "spec.metadata[0]: must be a mapping, found a string"),
            (json!([{"value": "x"}]), "spec.metadata[0].name: required; set a non-empty string"),
            (json!([{"name": 5}]), "spec.metadata[0].name: must be a string, found a number"),
            (
                json!([{"name": "a", "value": [1]}]),
                "spec.metadata[0].value: must be a string, number or boolean, found a list",
            ),
            (
                json!([{"name": "a", "valeu": "x"}]),
                "spec.metadata[0].valeu: unknown key; a metadata field has name and either value or secretKeyRef",
            ),
            (json!([{"name": "a", "envRef": "HOME"}]), "spec.metadata[0].envRef: a hosted sidecar"),
            (json!([{"name": "a", "value": "x", "secretKeyRef": {"name": "s"}}]), "sets both value and secretKeyRef"),
            (json!([{"name": "a", "secretKeyRef": {"key": "k"}}]), "spec.metadata[0].secretKeyRef.name: required"),
            (json!([{"name": "a", "secretKeyRef": "s"}]), "spec.metadata[0].secretKeyRef: must be a mapping"),
            (json!([{"name": "a", "secretKeyRef": {"name": "s", "store": "x"}}]), "secretKeyRef.store: unknown key"),
            (json!([{"name": "a,b", "value": "x"}]), "must not contain ','"),
            (
                json!([{"name": "a", "value": 1}, {"name": "b"}, {"name": "a"}]),
                "spec.metadata[2].name: metadata field 'a' is already set at spec.metadata[0]; keep one of them",
            ),
        ];
        for (list, expected) in cases {
            let error = check(list.clone()).expect_err(&list.to_string());
            assert!(error.to_string().contains(expected), "{list}: {error}");
        }
    }
}
