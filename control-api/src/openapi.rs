//! The OpenAPI document's cross-cutting facts, added to every route in one pass after the routes are
//! collected: who may call each route ([`crate::access::RULES`]: `x-required-role` and a sentence in its
//! description), the error answers each route can give because of how requests are read and authorized (401
//! without a valid credential, 403 for a role too low, 400 from the query, path and body extractors, 404 for an
//! organization, project or entry that is absent or out of the caller's sight, 413 and 422 for bodies), and the
//! name rules of path parameters and body fields ([`crate::names`]). Route annotations list only what is
//! particular to a route (its success answers, 409s, a 400 with a special meaning).

use serde_json::{json, Map, Value};
use utoipa::openapi::OpenApi;

use crate::access::{rule, Need};
use crate::names::{FIELD_RULES, PATH_RULES};

/// The shared error answers: status, component name, and when it is given.
const ERRORS: [(&str, &str, &str); 6] = [
    ("400", "BadRequest", "Invalid input: a query parameter, path parameter or body the message names"),
    ("401", "Unauthorized", "Missing, wrong, expired or revoked credential"),
    ("403", "Forbidden", "The caller's role does not allow this: the message names the role it needs"),
    (
        "404",
        "NotFound",
        "The organization, the project, or the entry the path names does not exist or is outside the caller's roles",
    ),
    ("413", "PayloadTooLarge", "The body exceeds OUTRIGGER_CONTROL_API_MAX_BODY_BYTES"),
    ("422", "UnprocessableEntity", "Well-formed JSON of the wrong shape (a missing, unknown or mistyped field)"),
];

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// `document` with the shared error answers and name rules, as JSON (utoipa's types cannot read some of
/// what JSON Schema says, such as a nullable string with a pattern, back in).
pub(crate) fn complete(document: OpenApi) -> Value {
    let mut value = serde_json::to_value(document).expect("the OpenAPI document serialises");
    add_required_roles(&mut value);
    add_error_responses(&mut value);
    mark_optional_bodies(&mut value);
    add_path_rules(&mut value);
    add_field_rules(&mut value);
    value
}

/// Which shared error answers an operation gives, from how its request is read and authorized.
fn errors_of(need: Need, operation: &Value) -> Vec<&'static str> {
    let body = operation["requestBody"]["content"].as_object();
    // JSON-only bodies are read by `JsonBody`, which tells malformed JSON (400) from a wrong shape (422);
    // documents and YAML are parsed by the resource model, whose refusals are 400s.
    let json_only = body.is_some_and(|content| content.keys().eq(["application/json"].iter()));
    let mut statuses = vec!["400"];
    statuses.extend((need != Need::Public).then_some("401"));
    statuses.extend(matches!(need, Need::Installation | Need::Org(_) | Need::Project(_)).then_some("403"));
    // The organization a request works in (its header, or the path) may be absent or out of sight.
    statuses.extend((need != Need::Public).then_some("404"));
    statuses.extend(body.is_some().then_some("413"));
    statuses.extend(json_only.then_some("422"));
    statuses
}

/// The rule the server enforces on an operation.
fn need_at(path: &str, method: &str) -> Need {
    let method = method.to_uppercase().parse::<axum::http::Method>().unwrap_or_default();
    rule(&method, path).0
}

/// States each operation's need from the access rules the server enforces.
fn add_required_roles(document: &mut Value) {
    for (path, method, operation) in operations(document) {
        let need = need_at(&path, &method);
        let description = operation["description"].as_str().unwrap_or_default().to_owned();
        let sentence = format!("Required: {}.", need.describe());
        operation["description"] =
            Value::String(if description.is_empty() { sentence } else { format!("{description}\n\n{sentence}") });
        operation["x-required-role"] = Value::String(need.describe());
        if need == Need::Public {
            operation["security"] = json!([]);
        }
    }
}

fn add_error_responses(document: &mut Value) {
    let mut responses = document["components"]["responses"].as_object_mut().map(std::mem::take).unwrap_or_default();
    for (_, name, description) in ERRORS {
        responses.insert(
            name.to_owned(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            }),
        );
    }
    document["components"]["responses"] = Value::Object(responses);
    for (path, method, operation) in operations(document) {
        for status in errors_of(need_at(&path, &method), operation) {
            let (_, name, _) = ERRORS.iter().find(|(code, _, _)| *code == status).expect("a shared error");
            let answers = operation["responses"].as_object_mut().expect("operations have responses");
            answers.entry(status).or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
        }
    }
}

/// `JsonBody` reads a missing body as `{}`, so a JSON body none of whose fields is required may be left out.
fn mark_optional_bodies(document: &mut Value) {
    let schemas = document["components"]["schemas"].clone();
    for (_, _, operation) in operations(document) {
        let Some(body) = operation.get_mut("requestBody") else { continue };
        let Some(content) =
            body["content"].as_object().filter(|content| content.keys().eq(["application/json"].iter()))
        else {
            continue;
        };
        let schema = &content["application/json"]["schema"];
        let schema = match schema["$ref"].as_str().and_then(|reference| reference.strip_prefix("#/components/schemas/"))
        {
            Some(name) => &schemas[name],
            None => schema,
        };
        if schema["required"].as_array().is_none_or(Vec::is_empty) {
            body["required"] = Value::Bool(false);
        }
    }
}

fn add_path_rules(document: &mut Value) {
    let collections: Vec<&str> = outrigger_resources::Kind::DAPR.iter().map(|kind| kind.collection()).collect();
    for (_, _, operation) in operations(document) {
        // `get_mut`, not indexing: indexing a JSON object inserts the key (as null) when it is missing.
        let parameters = operation.get_mut("parameters").and_then(Value::as_array_mut);
        for parameter in parameters.into_iter().flatten() {
            if parameter["in"] != "path" {
                continue;
            }
            let name = parameter["name"].as_str().unwrap_or_default();
            if let Some((_, rule)) = PATH_RULES.iter().find(|(param, _)| *param == name) {
                parameter["schema"] = rule.schema();
            } else if name == "kind" {
                parameter["schema"] = json!({"type": "string", "enum": collections});
            }
        }
    }
}

fn add_field_rules(document: &mut Value) {
    for (schema, field, rule) in FIELD_RULES {
        let property = &mut document["components"]["schemas"][schema]["properties"][field];
        assert!(property.is_object(), "no field {schema}.{field} in the OpenAPI document");
        let mut declared = rule.schema();
        // An optional field keeps accepting null, which the server reads as absent.
        if property["type"].as_array().is_some_and(|types| types.contains(&json!("null"))) {
            declared["type"] = json!(["string", "null"]);
        }
        if let Some(description) = property.get("description").cloned() {
            declared["description"] = description;
        }
        *property = declared;
    }
}

/// Every operation of the document, with its path and method.
fn operations(document: &mut Value) -> impl Iterator<Item = (String, String, &mut Value)> {
    let paths = document["paths"].as_object_mut().into_iter().flat_map(Map::iter_mut);
    paths.flat_map(|(path, item)| {
        item.as_object_mut().into_iter().flat_map(move |item| {
            item.iter_mut()
                .filter(|(method, _)| METHODS.contains(&method.as_str()))
                .map(move |(method, operation)| (path.clone(), method.clone(), operation))
        })
    })
}

#[cfg(test)]
mod tests {
    use outrigger_store::Role;

    use super::*;

    #[test]
    fn error_answers_follow_from_how_the_request_is_read() {
        let list = json!({"parameters": [{"in": "query", "name": "limit"}]});
        assert_eq!(errors_of(Need::Signed, &list), ["400", "401", "404"]);
        let get = json!({"parameters": [{"in": "path", "name": "project"}]});
        assert_eq!(errors_of(Need::Project(Role::Viewer), &get), ["400", "401", "403", "404"]);
        let create = json!({"requestBody": {"content": {"application/json": {}}}});
        assert_eq!(errors_of(Need::Installation, &create), ["400", "401", "403", "404", "413", "422"]);
        assert_eq!(errors_of(Need::Public, &create), ["400", "413", "422"]);
        let put = json!({"parameters": [{"in": "path"}], "requestBody": {"content": {"application/json": {}, "application/yaml": {}}}});
        assert_eq!(errors_of(Need::Member, &put), ["400", "401", "404", "413"]);
    }
}
