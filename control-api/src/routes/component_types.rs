//! `/api/v1/component-types`: the component types a project may create, read from the registry the workers
//! declare (`Options::component_types`), so that a form can offer one input per metadata field.

use axum::extract::State;
use axum::Json;
use outrigger_resources::{BuildingBlock, ComponentType, MetadataField};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiResult;
use crate::AppState;

/// The component types of this installation.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ComponentTypes {
    /// The types users may create, sorted by `type`.
    types: Vec<CreatableType>,
    /// The building blocks those types implement, sorted by name.
    building_blocks: Vec<BuildingBlockOut>,
    /// The types the platform provides to every project itself; no component of these types can be created.
    managed: Vec<ManagedType>,
}

/// A component type users may create.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreatableType {
    /// The Dapr `spec.type`, such as `state.redis`.
    #[serde(rename = "type")]
    #[schema(example = "state.redis")]
    type_name: &'static str,
    /// What it implements.
    building_block: BuildingBlock,
    /// Accepted `spec.version` values, the first one the one to use.
    versions: Vec<&'static str>,
    /// Every metadata field the type reads: its own, then those daprd reads from every component of its building
    /// block. Fields not listed are accepted too, as daprd accepts them.
    fields: Vec<FieldOut>,
}

/// One metadata field (`spec.metadata[].name`) of a component type.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FieldOut {
    /// The name in `spec.metadata[].name`.
    name: &'static str,
    /// The component cannot start without it.
    required: bool,
    /// It holds a secret: withheld from exports and from reads unless given as a `secretKeyRef`.
    sensitive: bool,
    /// It names a file, relative to the project's own directory (`filesDir` of the project).
    file: bool,
    /// What the component uses when the field is left out: Dapr's default for it, or what Outrigger's backend
    /// applies where the two differ. Absent when there is no such value, as for required fields and secrets.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "0")]
    default: Option<&'static str>,
}

/// A building block, with what one of its components is called.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BuildingBlockOut {
    /// Its name, also the prefix of its types' names (`state`, `pubsub`, ...).
    name: BuildingBlock,
    /// What one component of it is called, such as `state store`.
    #[schema(example = "state store")]
    noun: &'static str,
}

/// A type the platform manages.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManagedType {
    /// The Dapr `spec.type`, such as `state.outrigger`.
    #[serde(rename = "type")]
    type_name: &'static str,
    /// The name of the per-project component it backs, such as `kvstore`.
    component: &'static str,
}

fn field_out(field: &MetadataField) -> FieldOut {
    FieldOut {
        name: field.name,
        required: field.required,
        sensitive: field.sensitive,
        file: field.file,
        default: field.default,
    }
}

fn creatable(declared: &ComponentType) -> CreatableType {
    CreatableType {
        type_name: declared.name,
        building_block: declared.building_block,
        versions: declared.versions.to_vec(),
        fields: declared.fields().map(field_out).collect(),
    }
}

/// List the component types projects may create, with their versions and metadata fields.
///
/// The same for every caller: it describes the installation, not a project.
#[utoipa::path(get, path = "/api/v1/component-types", tag = "resources",
    responses((status = 200, body = ComponentTypes)))]
pub(crate) async fn list_component_types(State(state): State<AppState>) -> ApiResult<Json<ComponentTypes>> {
    let registry = state.types();
    let types: Vec<CreatableType> =
        registry.types().filter(|declared| declared.user_creatable()).map(creatable).collect();
    let mut blocks: Vec<BuildingBlock> = types.iter().map(|declared| declared.building_block).collect();
    blocks.sort_by_key(|block| block.as_str());
    blocks.dedup();
    let building_blocks =
        blocks.into_iter().map(|block| BuildingBlockOut { name: block, noun: block.noun() }).collect();
    let managed = registry
        .managed()
        .filter_map(|declared| {
            declared.managed_component.map(|component| ManagedType { type_name: declared.name, component })
        })
        .collect();
    Ok(Json(ComponentTypes { types, building_blocks, managed }))
}
