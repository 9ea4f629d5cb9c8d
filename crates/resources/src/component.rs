//! Rules for Component documents.

use std::collections::BTreeSet;

use crate::fields::{check_optional_bool, check_optional_duration, optional_string, Object};
use crate::name_value::check_name_value_list;
use crate::{Invalid, Registry};

/// Checks a Component's spec against the type registry. Fields named in `withheld` had their
/// values withheld by an export and count as given; restoring puts them back.
pub(crate) fn check(types: &Registry, spec: &Object, withheld: &BTreeSet<String>) -> Result<(), Invalid> {
    let supported = || types.supported_types().collect::<Vec<_>>().join(", ");
    let type_name = match optional_string(spec, "type", "spec")? {
        Some(name) if !name.is_empty() => name,
        _ => return Err(Invalid::at("spec.type", format!("required; supported types: {}", supported()))),
    };
    let Some(component_type) = types.lookup(type_name) else {
        return Err(Invalid::at(
            "spec.type",
            format!("unknown component type '{type_name}'; supported types: {}", supported()),
        ));
    };
    if let Some(managed) = component_type.managed_component {
        return Err(Invalid::at(
            "spec.type",
            format!(
                "type {type_name} backs the project's managed '{managed}' component and cannot be \
                 created; supported types: {}",
                supported()
            ),
        ));
    }
    let versions = component_type.versions.join(", ");
    match optional_string(spec, "version", "spec")? {
        Some(version) if component_type.versions.contains(&version) => {}
        Some(version) if !version.is_empty() => {
            return Err(Invalid::at(
                "spec.version",
                format!("'{version}' is not a version of {type_name}; use {versions}"),
            ))
        }
        _ => {
            return Err(Invalid::at("spec.version", format!("required; component type {type_name} accepts {versions}")))
        }
    }
    let entries = check_name_value_list(spec, "metadata", "metadata field")?;
    for field in component_type.fields().filter(|field| field.required) {
        let supplied =
            entries.iter().any(|entry| entry.name == field.name && (entry.supplied || withheld.contains(entry.name)));
        if !supplied {
            return Err(Invalid::at(
                "spec.metadata",
                format!(
                    "field '{}' is required by component type {type_name}; give it a non-empty value or a secretKeyRef",
                    field.name
                ),
            ));
        }
    }
    for (index, entry) in entries.iter().enumerate() {
        let (Some(field), Some(value)) = (component_type.field(entry.name), entry.value) else { continue };
        // A SQLite connection string may name no file at all (`:memory:`).
        let file = if component_type.name == "state.sqlite" { crate::sqlite_file(value) } else { Some(value) };
        if let (true, Some(file)) = (field.file, file) {
            crate::check_project_file(file)
                .map_err(|reason| Invalid::at(format!("spec.metadata[{index}].value ({})", entry.name), reason))?;
        }
    }
    check_optional_duration(spec, "initTimeout", "spec")?;
    check_optional_bool(spec, "ignoreErrors", "spec")
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::fixtures;

    fn check_value(spec: Value) -> Result<(), Invalid> {
        check(fixtures::registry(), spec.as_object().unwrap(), &BTreeSet::new())
    }

    #[test]
    fn quickstart_components_pass() {
        for yaml in [fixtures::REDIS_STATESTORE, fixtures::REDIS_PUBSUB] {
            let document = crate::parse_document(yaml.as_bytes(), true).unwrap();
            assert_eq!(check_value(document.spec), Ok(()), "{yaml}");
        }
    }

    #[test]
    fn every_supported_type_passes_with_its_required_fields() {
        for type_name in fixtures::registry().supported_types() {
            let metadata: Vec<Value> = fixtures::registry()
                .lookup(type_name)
                .unwrap()
                .fields()
                .filter(|field| field.required)
                .map(|field| json!({"name": field.name, "value": "x"}))
                .collect();
            let spec = json!({"type": type_name, "version": "v1", "metadata": metadata});
            assert_eq!(check_value(spec), Ok(()), "{type_name}");
        }
    }

    #[test]
    fn unknown_type_lists_the_supported_types() {
        let error = check_value(json!({"type": "state.mongodb", "version": "v1"})).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("spec.type"));
        assert!(error.reason.starts_with("unknown component type 'state.mongodb'; supported types: "));
        for type_name in fixtures::registry().supported_types() {
            assert!(error.reason.contains(type_name), "{type_name} missing from {error}");
        }
        assert!(!error.reason.contains("outrigger"));
    }

    #[test]
    fn managed_types_cannot_be_created() {
        let error = check_value(json!({"type": "state.outrigger", "version": "v1"})).unwrap_err();
        assert!(error.reason.contains("managed 'kvstore' component"), "{error}");
        let error = check_value(json!({"type": "pubsub.outrigger", "version": "v1"})).unwrap_err();
        assert!(error.reason.contains("managed 'pubsub' component"), "{error}");
    }

    #[test]
    fn missing_required_field_names_the_field_and_the_type() {
        let cases = [
            json!({"type": "state.redis", "version": "v1", "metadata": [{"name": "redisPassword", "value": ""}]}),
            json!({"type": "state.redis", "version": "v1", "metadata": [{"name": "redisHost", "value": ""}]}),
            json!({"type": "state.redis", "version": "v1", "metadata": [{"name": "redisHost"}]}),
            json!({"type": "state.redis", "version": "v1"}),
        ];
        for spec in cases {
            let error = check_value(spec.clone()).unwrap_err();
            assert_eq!(
                error.to_string(),
                "spec.metadata: field 'redisHost' is required by component type state.redis; \
                 give it a non-empty value or a secretKeyRef",
                "{spec}"
            );
        }
        let from_secret = json!({"type": "state.postgresql", "version": "v1", "metadata": [
            {"name": "connectionString", "secretKeyRef": {"name": "pg", "key": "dsn"}}
        ]});
        assert_eq!(check_value(from_secret), Ok(()));
        let withheld = json!({"type": "state.postgresql", "version": "v1", "metadata": [{"name": "connectionString"}]});
        let withheld_names = BTreeSet::from(["connectionString".to_owned()]);
        assert_eq!(check(fixtures::registry(), withheld.as_object().unwrap(), &withheld_names), Ok(()));
        assert!(check_value(withheld).is_err());
    }

    #[test]
    fn version_must_be_accepted() {
        let missing = check_value(json!({"type": "state.in-memory"})).unwrap_err();
        assert_eq!(missing.to_string(), "spec.version: required; component type state.in-memory accepts v1");
        let wrong = check_value(json!({"type": "state.in-memory", "version": "v2"})).unwrap_err();
        assert_eq!(wrong.to_string(), "spec.version: 'v2' is not a version of state.in-memory; use v1");
        let missing_type = check_value(json!({"version": "v1"})).unwrap_err();
        assert!(missing_type.to_string().starts_with("spec.type: required; supported types: "));
    }

    #[test]
    fn unknown_metadata_is_accepted_and_options_are_typed() {
        let spec = json!({"type": "state.in-memory", "version": "v1", "initTimeout": "10s",
            "ignoreErrors": true, "metadata": [{"name": "somethingNew", "value": 3}]});
        assert_eq!(check_value(spec), Ok(()));
        let bad_timeout = json!({"type": "state.in-memory", "version": "v1", "initTimeout": "soon"});
        assert_eq!(check_value(bad_timeout).unwrap_err().field.as_deref(), Some("spec.initTimeout"));
        let bad_flag = json!({"type": "state.in-memory", "version": "v1", "ignoreErrors": "yes"});
        assert_eq!(check_value(bad_flag).unwrap_err().field.as_deref(), Some("spec.ignoreErrors"));
    }
}
