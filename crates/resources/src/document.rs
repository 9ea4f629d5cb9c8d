//! Resource documents: reading them from YAML or JSON, normalising them for storage,
//! checking their references to the rest of a project, and writing them out as YAML.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::fields::{
    as_object, child, describe, item, optional_list, optional_object, present, required_string, Object,
};
use crate::{
    component, configuration, http_endpoint, resiliency, subscription, validate_dns_label, BuildingBlock, Invalid,
    Kind, ParseError, Registry,
};

/// A resource document as stored and exported (Kubernetes-style).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    /// The document's `apiVersion`, such as `dapr.io/v1alpha1`.
    pub api_version: String,
    /// What the document describes.
    pub kind: Kind,
    /// Name, annotations and labels.
    pub metadata: ObjectMeta,
    /// The kind-specific body; always a JSON object.
    #[schema(value_type = Object)]
    pub spec: Value,
    /// App IDs the resource applies to; empty means all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// For Component and HTTPEndpoint: `{"secretStore": "..."}`, the store that resolves
    /// `secretKeyRef`s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub auth: Option<Value>,
}

/// The part of Kubernetes object metadata a project keeps. `namespace` and anything else in
/// the input is dropped: the project takes the place of the namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ObjectMeta {
    /// The resource's name, unique per kind within a project.
    pub name: String,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Free-form labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What [`Document::check_references`] needs to know about the project a document goes into.
pub trait ProjectCatalog {
    /// Whether the project has an App ID called `name`.
    fn app_id_exists(&self, name: &str) -> bool;
    /// The `spec.type` of the project's component called `name`, if there is one.
    fn component_type(&self, name: &str) -> Option<String>;
    /// Whether the project has a Configuration called `name`.
    fn configuration_exists(&self, name: &str) -> bool;
}

/// Reads multi-document YAML (documents separated by `---`), skipping empty documents.
/// A failure names the 0-based index of the document, counting empty ones.
pub fn parse_documents(yaml: &str) -> Result<Vec<Document>, ParseError> {
    let mut documents = Vec::new();
    for (index, deserializer) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let failed = |reason: String| ParseError { index: Some(index), reason };
        let value = Value::deserialize(deserializer).map_err(|error| failed(error.to_string()))?;
        if !value.is_null() {
            documents.push(document_from_value(value).map_err(failed)?);
        }
    }
    Ok(documents)
}

/// Reads one document, as YAML when `yaml` is set and as JSON otherwise.
pub fn parse_document(body: &[u8], yaml: bool) -> Result<Document, ParseError> {
    let failed = |reason: String| ParseError { index: None, reason };
    let value: Value = if yaml {
        serde_yaml::from_slice(body).map_err(|error| failed(error.to_string()))?
    } else {
        serde_json::from_slice(body).map_err(|error| failed(error.to_string()))?
    };
    if value.is_null() {
        return Err(failed("the body holds no document".to_owned()));
    }
    document_from_value(value).map_err(failed)
}

/// Writes documents as multi-document YAML, separated by `---` lines. A document that
/// export withheld values from is preceded by a comment saying which ones.
pub fn render_yaml(documents: &[Document]) -> String {
    documents.iter().map(render_one).collect::<Vec<_>>().join("---\n")
}

fn render_one(document: &Document) -> String {
    let withheld = document.withheld();
    let mut out = String::new();
    if !withheld.is_empty() {
        out.push_str(&format!(
            "# Values withheld by export: {}.\n\
             # Supply them (or turn them into secretKeyRefs) before using this document elsewhere;\n\
             # applying it to the project it came from keeps the values stored there.\n",
            withheld.join(", ")
        ));
    }
    out.push_str(
        &serde_yaml::to_string(document)
            .expect("a Document is plain data with string keys, which YAML can always hold"),
    );
    out
}

/// Builds a document from a parsed value, or says what is wrong with it.
fn document_from_value(value: Value) -> Result<Document, String> {
    let Value::Object(mut top) = value else {
        return Err(format!("a document must be a mapping, found {}", describe(&value)));
    };
    let kind = match present(&top, "kind") {
        None => return Err(format!("missing kind; use one of: {}", Kind::known_kinds())),
        Some(Value::String(text)) => Kind::from_kind_str(text)
            .ok_or_else(|| format!("unknown kind '{text}'; use one of: {}", Kind::known_kinds()))?,
        Some(other) => return Err(format!("kind must be a string, found {}", describe(other))),
    };
    let api_version = match present(&top, "apiVersion") {
        None => return Err(format!("missing apiVersion; {kind} documents use {}", kind.api_versions().join(" or "))),
        Some(Value::String(text)) => text.clone(),
        Some(other) => return Err(format!("apiVersion must be a string, found {}", describe(other))),
    };
    let metadata = read_metadata(&top).map_err(|error| error.to_string())?;
    let spec = match top.remove("spec") {
        None | Some(Value::Null) => Value::Object(Object::new()),
        Some(spec @ Value::Object(_)) => spec,
        Some(other) => return Err(format!("spec must be a mapping, found {}", describe(&other))),
    };
    let scopes = read_strings(&top, "scopes").map_err(|error| error.to_string())?;
    let auth = match top.remove("auth") {
        None | Some(Value::Null) => None,
        Some(auth @ Value::Object(_)) => Some(auth),
        Some(other) => return Err(format!("auth must be a mapping, found {}", describe(&other))),
    };
    Ok(Document { api_version, kind, metadata, spec, scopes, auth })
}

fn read_metadata(top: &Object) -> Result<ObjectMeta, Invalid> {
    let missing_name = || Invalid::new("missing metadata.name; every document needs a name");
    let metadata = optional_object(top, "metadata", "")?.ok_or_else(missing_name)?;
    let name = match present(metadata, "name") {
        None => return Err(missing_name()),
        Some(Value::String(name)) if name.is_empty() => return Err(missing_name()),
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(Invalid::at("metadata.name", format!("must be a string, found {}", describe(other))))
        }
    };
    Ok(ObjectMeta {
        name,
        annotations: read_string_map(metadata, "annotations")?,
        labels: read_string_map(metadata, "labels")?,
    })
}

fn read_string_map(metadata: &Object, key: &str) -> Result<BTreeMap<String, String>, Invalid> {
    let path = child("metadata", key);
    let Some(entries) = optional_object(metadata, key, "metadata")? else {
        return Ok(BTreeMap::new());
    };
    entries
        .iter()
        .map(|(name, value)| match value {
            Value::String(text) => Ok((name.clone(), text.clone())),
            other => {
                Err(Invalid::at(child(&path, name), format!("must be a string, found {}; quote it", describe(other))))
            }
        })
        .collect()
}

fn read_strings(top: &Object, key: &str) -> Result<Vec<String>, Invalid> {
    let Some(items) = optional_list(top, key, "")? else {
        return Ok(Vec::new());
    };
    items
        .iter()
        .enumerate()
        .map(|(index, value)| match value {
            Value::String(text) => Ok(text.clone()),
            other => Err(Invalid::at(item(key, index), format!("must be a string, found {}", describe(other)))),
        })
        .collect()
}

impl Document {
    /// A document of `kind` called `name` with `spec`, written with the kind's current
    /// apiVersion and nothing else set.
    pub fn new(kind: Kind, name: &str, spec: Value) -> Document {
        Document {
            api_version: kind.api_versions()[0].to_owned(),
            kind,
            metadata: ObjectMeta { name: name.to_owned(), ..ObjectMeta::default() },
            spec,
            scopes: Vec::new(),
            auth: None,
        }
    }

    /// Context-free validation and normalisation; returns the canonical document to store.
    ///
    /// A document from an export may still carry the `outrigger.io/withheld` annotation: a
    /// required value it lists counts as given, and the annotation is kept for
    /// [`Document::restore_withheld`], which must run before the document is stored.
    pub fn normalize(mut self, types: &Registry) -> Result<Document, Invalid> {
        let accepted = self.kind.api_versions();
        if !accepted.contains(&self.api_version.as_str()) {
            return Err(Invalid::at(
                "apiVersion",
                format!("'{}' is not an apiVersion of {}; use {}", self.api_version, self.kind, accepted.join(" or ")),
            ));
        }
        self.kind.check_name(&self.metadata.name).map_err(|error| error.for_field("metadata.name"))?;
        self.check_scopes()?;
        self.check_auth()?;
        // Also refuses an annotation listing anything export never withholds.
        let withheld_metadata = self.withheld_entries("metadata")?;
        let Value::Object(spec) = &mut self.spec else {
            return Err(Invalid::at("spec", format!("must be a mapping, found {}", describe(&self.spec))));
        };
        match self.kind {
            Kind::Component => component::check(types, spec, &withheld_metadata)?,
            Kind::Subscription => subscription::normalize(&mut self.api_version, spec)?,
            Kind::Resiliency => resiliency::check(spec)?,
            Kind::Configuration => configuration::check(spec)?,
            Kind::HttpEndpoint => http_endpoint::check(spec)?,
            Kind::AppIdentity => drop(self.app_identity_spec()?),
        }
        self.spec = with_sorted_keys(self.spec);
        Ok(self)
    }

    fn check_scopes(&self) -> Result<(), Invalid> {
        if let Some(refusal) = self.kind.scopes_refusal() {
            if !self.scopes.is_empty() {
                return Err(Invalid::at("scopes", refusal));
            }
        }
        for (index, scope) in self.scopes.iter().enumerate() {
            validate_dns_label(scope).map_err(|error| error.for_field(item("scopes", index)))?;
        }
        Ok(())
    }

    fn check_auth(&self) -> Result<(), Invalid> {
        let Some(auth) = &self.auth else {
            return Ok(());
        };
        if !self.kind.takes_auth() {
            return Err(Invalid::at(
                "auth",
                format!("{} documents take no auth; only Component and HTTPEndpoint do", self.kind),
            ));
        }
        let auth = as_object(auth, "auth")?;
        if let Some(unknown) = auth.keys().find(|key| key.as_str() != "secretStore") {
            return Err(Invalid::at(child("auth", unknown), "unknown key; auth has only secretStore"));
        }
        required_string(auth, "secretStore", "auth").map(drop)
    }

    /// References to the rest of the project: scopes must name existing App IDs, a
    /// Subscription's pubsubname must name a pub/sub component, an `auth.secretStore` must name
    /// a secret store component, an AppIdentity's `config` must name a Configuration. Expects a
    /// normalised document.
    pub fn check_references(&self, types: &Registry, project: &dyn ProjectCatalog) -> Result<(), Invalid> {
        for (index, scope) in self.scopes.iter().enumerate() {
            if !project.app_id_exists(scope) {
                return Err(Invalid::at(
                    item("scopes", index),
                    format!(
                        "App ID '{scope}' does not exist in this project; create it first or remove it from scopes"
                    ),
                ));
            }
        }
        if let Some(store) = self.secret_store() {
            check_component_reference(types, store, BuildingBlock::SecretStores, "auth.secretStore", project)?;
        }
        match self.kind {
            Kind::Subscription => {
                let spec = as_object(&self.spec, "spec")?;
                let pubsub = required_string(spec, "pubsubname", "spec")?;
                check_component_reference(types, pubsub, BuildingBlock::PubSub, "spec.pubsubname", project)
            }
            Kind::AppIdentity => match self.app_identity_spec()?.config {
                Some(config) if !project.configuration_exists(&config) => Err(Invalid::at(
                    "spec.config",
                    format!(
                        "Configuration '{config}' does not exist in this project; create it first or leave config out"
                    ),
                )),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    /// The secret store named in `auth.secretStore`: where the document's `secretKeyRef`s are read.
    pub fn secret_store(&self) -> Option<&str> {
        self.auth.as_ref()?.get("secretStore")?.as_str()
    }

    /// Whether the document applies to App ID `app_id`: its `scopes` name it, or are empty.
    pub fn applies_to(&self, app_id: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|scope| scope == app_id)
    }

    /// A Component's metadata entry `name` given inline (not as a `secretKeyRef`), as text.
    pub fn inline_metadata(&self, name: &str) -> Option<String> {
        let entries = self.spec.get("metadata")?.as_array()?;
        let entry = entries.iter().find(|entry| entry.get("name").and_then(Value::as_str) == Some(name))?;
        match entry.get("value")? {
            Value::String(text) => Some(text.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// A Component's `spec.type`.
    pub fn component_type(&self) -> Option<&str> {
        self.spec.get("type").and_then(Value::as_str)
    }
}

/// `field` names a component of `building_block` in the project.
fn check_component_reference(
    types: &Registry,
    name: &str,
    building_block: BuildingBlock,
    field: &str,
    project: &dyn ProjectCatalog,
) -> Result<(), Invalid> {
    let wanted = building_block.as_str();
    let problem = match project.component_type(name) {
        None => format!("there is no component '{name}' in this project; create a {wanted}.* component first"),
        Some(type_name) => {
            if types.lookup(&type_name).map(|known| known.building_block) == Some(building_block) {
                return Ok(());
            }
            format!("component '{name}' has type {type_name}, which is not a {wanted} component; name a {wanted}.* component")
        }
    };
    Err(Invalid::at(field, problem))
}

/// The same value with every object's keys in sorted order. serde_json keeps maps sorted
/// unless its `preserve_order` feature is on, which any crate in a build can switch on; this
/// keeps stored and exported documents deterministic either way.
fn with_sorted_keys(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<_> = object.into_iter().collect();
            entries.sort_by(|(left, _), (right, _)| left.cmp(right));
            Value::Object(entries.into_iter().map(|(key, value)| (key, with_sorted_keys(value))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(with_sorted_keys).collect()),
        scalar => scalar,
    }
}

#[cfg(test)]
mod tests;
