//! Export withholding: secret values never leave the platform in an export. What was
//! withheld is listed in an annotation, so that applying the export back to its project can
//! put the stored values back.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::fields::Object;
use crate::name_value::has_inline_value;
use crate::{Document, Invalid, Kind, Registry};

/// Annotation listing, comma-separated, the values an export withheld from a document
/// (for example `spec.metadata.redisPassword`).
pub const WITHHELD_ANNOTATION: &str = "outrigger.io/withheld";

/// A secret at a fixed place in some kind's spec.
struct FixedSlot {
    kind: Kind,
    /// The name it is listed under in the annotation.
    label: &'static str,
    /// JSON pointer, within the spec, to the object holding the value.
    holder: &'static str,
    /// Key of the value in that object.
    key: &'static str,
    /// Key that, present instead of the value, refers to a secret store.
    reference_key: Option<&'static str>,
}

const FIXED_SLOTS: [FixedSlot; 2] = [
    FixedSlot { kind: Kind::AppIdentity, label: "spec.appToken", holder: "", key: "appToken", reference_key: None },
    FixedSlot {
        kind: Kind::HttpEndpoint,
        label: "spec.clientTLS.privateKey",
        holder: "/clientTLS/privateKey",
        key: "value",
        reference_key: Some("secretKeyRef"),
    },
];

/// The name/value list (under `spec`) whose entries can hold secrets, for kinds that have one.
fn secret_list(kind: Kind) -> Option<&'static str> {
    match kind {
        Kind::Component => Some("metadata"),
        Kind::HttpEndpoint => Some("headers"),
        _ => None,
    }
}

/// A place in a spec where a secret value can sit.
enum SecretSlot {
    /// The `value` of the entry called `name` in the list `spec.<list>`.
    Entry { list: &'static str, name: String },
    /// A place the kind always has.
    Fixed(&'static FixedSlot),
}

impl SecretSlot {
    /// The slot `label` names in a document of `kind`, if it names one.
    fn from_label(kind: Kind, label: &str) -> Option<SecretSlot> {
        if let Some(fixed) = FIXED_SLOTS.iter().find(|fixed| fixed.kind == kind && fixed.label == label) {
            return Some(SecretSlot::Fixed(fixed));
        }
        let list = secret_list(kind)?;
        let name = label.strip_prefix("spec.")?.strip_prefix(list)?.strip_prefix('.')?;
        Some(SecretSlot::Entry { list, name: name.to_owned() })
    }

    fn label(&self) -> String {
        match self {
            SecretSlot::Entry { list, name } => format!("spec.{list}.{name}"),
            SecretSlot::Fixed(fixed) => fixed.label.to_owned(),
        }
    }

    fn key(&self) -> &'static str {
        match self {
            SecretSlot::Entry { .. } => "value",
            SecretSlot::Fixed(fixed) => fixed.key,
        }
    }

    fn reference_key(&self) -> Option<&'static str> {
        match self {
            SecretSlot::Entry { .. } => Some("secretKeyRef"),
            SecretSlot::Fixed(fixed) => fixed.reference_key,
        }
    }

    /// JSON pointer, within `spec`, to the object holding this slot's value, if `spec` has it.
    fn holder_pointer(&self, spec: &Value) -> Option<String> {
        let pointer = match self {
            SecretSlot::Entry { list, name } => {
                let index = spec
                    .get(list)?
                    .as_array()?
                    .iter()
                    .position(|entry| entry.get("name").and_then(Value::as_str) == Some(name.as_str()))?;
                format!("/{list}/{index}")
            }
            SecretSlot::Fixed(fixed) => fixed.holder.to_owned(),
        };
        spec.pointer(&pointer)?.is_object().then_some(pointer)
    }

    /// The slot's holder in `spec`.
    fn holder<'a>(&self, spec: &'a Value) -> Option<&'a Object> {
        spec.pointer(&self.holder_pointer(spec)?)?.as_object()
    }

    /// The slot's holder in `spec`, for changing it.
    fn holder_mut<'a>(&self, spec: &'a mut Value) -> Option<&'a mut Object> {
        let pointer = self.holder_pointer(spec)?;
        spec.pointer_mut(&pointer)?.as_object_mut()
    }
}

/// Whether a name (a header, or a metadata field the registry does not know) suggests its
/// value is a credential.
fn name_looks_secret(name: &str) -> bool {
    const SECRET_WORDS: [&str; 6] = ["authorization", "cookie", "token", "secret", "key", "password"];
    let lower = name.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|word| lower.contains(word))
}

/// Whether the list entry called `name` in `document` holds a secret: component fields as
/// the registry says, falling back to the name for fields it does not know.
fn entry_is_secret(types: &Registry, document: &Document, name: &str) -> bool {
    let registered = document
        .spec
        .get("type")
        .and_then(Value::as_str)
        .and_then(|type_name| types.lookup(type_name))
        .and_then(|component_type| component_type.field(name));
    match (document.kind, registered) {
        (Kind::Component, Some(field)) => field.sensitive,
        _ => name_looks_secret(name),
    }
}

/// Every slot of `document` that holds a secret, whether or not it has a value.
fn secret_slots(types: &Registry, document: &Document) -> Vec<SecretSlot> {
    let fixed = FIXED_SLOTS.iter().filter(|fixed| fixed.kind == document.kind).map(SecretSlot::Fixed);
    let entries = secret_list(document.kind).into_iter().flat_map(|list| {
        let names = document.spec.get(list).and_then(Value::as_array);
        names
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.get("name").and_then(Value::as_str))
            .filter(|name| entry_is_secret(types, document, name))
            .map(move |name| SecretSlot::Entry { list, name: name.to_owned() })
    });
    fixed.chain(entries).collect()
}

impl Document {
    /// For export: a copy with inline secret values removed (the entries stay, named), and
    /// the `outrigger.io/withheld` annotation listing what was removed. Values given as
    /// `secretKeyRef`s, and empty values, are kept. Component fields are judged by `types`.
    pub fn for_export(&self, types: &Registry) -> Document {
        let mut exported = self.clone();
        let mut withheld = Vec::new();
        for slot in secret_slots(types, self) {
            let key = slot.key();
            if let Some(holder) = slot.holder_mut(&mut exported.spec) {
                if has_inline_value(holder, key) {
                    holder.remove(key);
                    withheld.push(slot.label());
                }
            }
        }
        if !withheld.is_empty() {
            exported.metadata.annotations.insert(WITHHELD_ANNOTATION.to_owned(), withheld.join(","));
        }
        exported
    }

    /// The values an export withheld from this document, from its annotation.
    pub fn withheld(&self) -> Vec<&str> {
        self.metadata
            .annotations
            .get(WITHHELD_ANNOTATION)
            .map(|list| list.split(',').map(str::trim).filter(|label| !label.is_empty()).collect())
            .unwrap_or_default()
    }

    /// Names of the entries of the list `spec.<list>` whose values an export withheld,
    /// refusing an annotation that lists anything export never withholds from this kind.
    pub(crate) fn withheld_entries(&self, list: &str) -> Result<BTreeSet<String>, Invalid> {
        let mut names = BTreeSet::new();
        for label in self.withheld() {
            match SecretSlot::from_label(self.kind, label) {
                Some(SecretSlot::Entry { list: entry_list, name }) if entry_list == list => {
                    names.insert(name);
                }
                Some(_) => {}
                None => return Err(self.unknown_label(label)),
            }
        }
        Ok(names)
    }

    fn unknown_label(&self, label: &str) -> Invalid {
        Invalid::at(
            format!("metadata.annotations.{WITHHELD_ANNOTATION}"),
            format!(
                "'{label}' is not a value export withholds from {} documents; remove it from the annotation",
                self.kind
            ),
        )
    }

    /// On apply: puts back values that an export withheld, taking them from `current`, the
    /// document stored under the same kind and name in the target project, and drops the
    /// annotation. A value the document now supplies itself (inline or as a `secretKeyRef`)
    /// wins; an entry the document no longer has is not put back. Works on the document as
    /// parsed or as normalised.
    pub fn restore_withheld(&mut self, current: Option<&Document>) -> Result<(), Invalid> {
        let labels: Vec<String> = self.withheld().into_iter().map(str::to_owned).collect();
        for label in labels {
            let slot = SecretSlot::from_label(self.kind, &label).ok_or_else(|| self.unknown_label(&label))?;
            let key = slot.key();
            let Some(holder) = slot.holder(&self.spec) else {
                continue;
            };
            let supplied = holder.contains_key(key)
                || slot.reference_key().is_some_and(|reference| holder.contains_key(reference));
            if supplied {
                continue;
            }
            let stored = current
                .and_then(|current| slot.holder(&current.spec))
                .filter(|stored| has_inline_value(stored, key))
                .and_then(|stored| stored.get(key))
                .cloned()
                .ok_or_else(|| {
                    Invalid::at(
                        label.as_str(),
                        "value was withheld by export and the project has none to restore; supply it or use a secretKeyRef",
                    )
                })?;
            if let Some(holder) = slot.holder_mut(&mut self.spec) {
                holder.insert(key.to_owned(), stored);
            }
        }
        self.metadata.annotations.remove(WITHHELD_ANNOTATION);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{fixtures, parse_document, parse_documents, render_yaml};

    fn stored(yaml: &str) -> Document {
        parse_document(yaml.as_bytes(), true).unwrap().normalize(fixtures::registry()).unwrap()
    }

    #[test]
    fn secret_looking_names() {
        for secret in [
            "Authorization",
            "Proxy-Authorization",
            "Cookie",
            "X-Api-Key",
            "x-auth-token",
            "Client-Secret",
            "DB-Password",
        ] {
            assert!(name_looks_secret(secret), "{secret}");
        }
        for plain in ["Accept", "Content-Type", "X-Request-Source", "User-Agent"] {
            assert!(!name_looks_secret(plain), "{plain}");
        }
    }

    #[test]
    fn sensitive_component_values_are_withheld_and_listed() {
        let mut document = stored(fixtures::REDIS_STATESTORE);
        document.spec["metadata"][1]["value"] = json!("s3cret");
        let exported = document.for_export(fixtures::registry());
        assert_eq!(exported.withheld(), ["spec.metadata.redisPassword"]);
        assert_eq!(exported.spec["metadata"][1], json!({"name": "redisPassword"}));
        assert_eq!(exported.spec["metadata"][0], document.spec["metadata"][0]);
        assert_eq!(document.withheld(), Vec::<&str>::new());
    }

    #[test]
    fn empty_values_and_secret_references_are_not_withheld() {
        let document = stored(fixtures::REDIS_STATESTORE);
        assert_eq!(document.for_export(fixtures::registry()), document);
        let mut with_reference = document.clone();
        with_reference.spec["metadata"][1] =
            json!({"name": "redisPassword", "secretKeyRef": {"name": "redis", "key": "password"}});
        assert_eq!(with_reference.for_export(fixtures::registry()), with_reference);
    }

    #[test]
    fn unknown_component_fields_are_judged_by_name() {
        let mut document = stored(fixtures::REDIS_STATESTORE);
        document.spec["metadata"]
            .as_array_mut()
            .unwrap()
            .extend([json!({"name": "vendorApiToken", "value": "t"}), json!({"name": "vendorRegion", "value": "eu"})]);
        assert_eq!(document.for_export(fixtures::registry()).withheld(), ["spec.metadata.vendorApiToken"]);
    }

    #[test]
    fn other_kinds_withhold_their_secrets() {
        let endpoint = stored(fixtures::HTTP_ENDPOINT);
        let exported = endpoint.for_export(fixtures::registry());
        assert_eq!(exported.withheld(), ["spec.headers.Authorization"]);
        assert_eq!(exported.spec["headers"][0], json!({"name": "Authorization"}));
        assert_eq!(exported.spec["headers"][1], endpoint.spec["headers"][1]);
        assert_eq!(exported.spec["headers"][2], endpoint.spec["headers"][2]);

        let mut with_tls = endpoint.clone();
        with_tls.spec["clientTLS"] = json!({"certificate": {"value": "CERT"}, "privateKey": {"value": "KEY"}});
        let exported = with_tls.for_export(fixtures::registry());
        assert_eq!(exported.withheld(), ["spec.clientTLS.privateKey", "spec.headers.Authorization"]);
        assert_eq!(exported.spec["clientTLS"], json!({"certificate": {"value": "CERT"}, "privateKey": {}}));

        let app = stored(fixtures::APP_IDENTITY);
        let exported = app.for_export(fixtures::registry());
        assert_eq!(exported.withheld(), ["spec.appToken"]);
        assert_eq!(exported.spec.get("appToken"), None);
        assert_eq!(exported.spec["appEndpoint"], app.spec["appEndpoint"]);

        let postgres = stored(fixtures::POSTGRES_STATESTORE);
        assert_eq!(postgres.for_export(fixtures::registry()).withheld(), ["spec.metadata.connectionString"]);
        for untouched in [fixtures::RESILIENCY, fixtures::ACCESS_CONTROL, fixtures::SUBSCRIPTION_V2] {
            let document = stored(untouched);
            assert_eq!(document.for_export(fixtures::registry()), document);
        }
    }

    #[test]
    fn restore_puts_back_the_stored_values() {
        for yaml in [fixtures::POSTGRES_STATESTORE, fixtures::HTTP_ENDPOINT, fixtures::APP_IDENTITY] {
            let current = stored(yaml);
            let mut applied = current.for_export(fixtures::registry());
            assert_ne!(applied, current);
            applied.restore_withheld(Some(&current)).unwrap();
            assert_eq!(applied, current, "{yaml}");
        }
    }

    #[test]
    fn restore_keeps_what_the_document_supplies() {
        let current = stored(fixtures::POSTGRES_STATESTORE);
        let mut applied = current.for_export(fixtures::registry());
        applied.spec["metadata"][0] = json!({"name": "connectionString", "value": "host=new"});
        applied.restore_withheld(Some(&current)).unwrap();
        assert_eq!(applied.spec["metadata"][0]["value"], "host=new");
        assert!(applied.withheld().is_empty());

        let mut referenced = current.for_export(fixtures::registry());
        referenced.spec["metadata"][0] =
            json!({"name": "connectionString", "secretKeyRef": {"name": "pg", "key": "dsn"}});
        referenced.restore_withheld(None).unwrap();
        assert_eq!(referenced.spec["metadata"][0].get("value"), None);

        let mut removed = current.for_export(fixtures::registry());
        removed.spec["metadata"].as_array_mut().unwrap().remove(0);
        removed.restore_withheld(None).unwrap();
        assert!(removed.metadata.annotations.is_empty());
    }

    #[test]
    fn restore_without_a_stored_value_says_what_to_do() {
        let current = stored(fixtures::POSTGRES_STATESTORE);
        let exported = current.for_export(fixtures::registry());
        let mut first_apply = exported.clone();
        let error = first_apply.restore_withheld(None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "spec.metadata.connectionString: value was withheld by export and the project has none \
             to restore; supply it or use a secretKeyRef"
        );
        let mut from_reference = current.clone();
        from_reference.spec["metadata"][0] = json!({"name": "connectionString", "secretKeyRef": {"name": "pg"}});
        let mut applied = exported.clone();
        assert!(applied.restore_withheld(Some(&from_reference)).is_err());
    }

    #[test]
    fn restore_refuses_labels_export_never_writes() {
        let mut document = stored(fixtures::REDIS_STATESTORE);
        document.metadata.annotations.insert(WITHHELD_ANNOTATION.to_owned(), "spec.type".to_owned());
        let error = document.restore_withheld(None).unwrap_err();
        assert_eq!(error.field.as_deref(), Some("metadata.annotations.outrigger.io/withheld"));
        assert!(error.reason.contains("'spec.type' is not a value export withholds from Component documents"));
    }

    #[test]
    fn normalize_takes_withheld_required_values_as_given_and_keeps_the_annotation() {
        let exported = stored(fixtures::POSTGRES_STATESTORE).for_export(fixtures::registry());
        let normalized = exported.clone().normalize(fixtures::registry()).unwrap();
        assert_eq!(normalized, exported);

        let mut emptied = exported.clone();
        emptied.metadata.annotations.remove(WITHHELD_ANNOTATION);
        let error = emptied.normalize(fixtures::registry()).unwrap_err();
        assert!(error.reason.contains("field 'connectionString' is required"), "{error}");

        let mut unknown = exported;
        unknown.metadata.annotations.insert(WITHHELD_ANNOTATION.to_owned(), "spec.headers.Authorization".to_owned());
        let error = unknown.normalize(fixtures::registry()).unwrap_err();
        assert!(error.reason.contains("'spec.headers.Authorization' is not a value export withholds"), "{error}");
    }

    #[test]
    fn export_apply_export_is_byte_identical() {
        let stored_documents: Vec<Document> = fixtures::ALL.iter().map(|yaml| stored(yaml)).collect();
        let export = |documents: &[Document]| {
            render_yaml(&documents.iter().map(|document| document.for_export(fixtures::registry())).collect::<Vec<_>>())
        };
        let first = export(&stored_documents);
        assert!(first.contains("# Values withheld by export: spec.metadata.connectionString."));
        assert!(!first.contains("hunter2"));
        assert!(!first.contains("s3cr3t-app-token"));
        assert!(!first.contains("Bearer my-token"));

        let applied: Vec<Document> = parse_documents(&first)
            .unwrap()
            .into_iter()
            .zip(&stored_documents)
            .map(|(document, current)| {
                let mut document = document.normalize(fixtures::registry()).unwrap();
                document.restore_withheld(Some(current)).unwrap();
                document
            })
            .collect();
        assert_eq!(applied, stored_documents);
        assert_eq!(export(&applied), first);
    }
}
