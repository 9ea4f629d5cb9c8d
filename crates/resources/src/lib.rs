//! The Dapr resource model of Outrigger, free of I/O: reading Dapr documents (Component,
//! Subscription, Resiliency, Configuration, HTTPEndpoint, and Outrigger's AppIdentity) from
//! YAML or JSON, validating and normalising them, the registry of supported component types,
//! and writing documents out for export with secret values withheld.
//!
//! A control API stores documents like this:
//!
//! 1. [`parse_documents`] / [`parse_document`] read the input;
//! 2. [`Document::normalize`] validates it and returns the canonical document;
//! 3. [`Document::restore_withheld`] puts back values an earlier export withheld, from the
//!    document stored under the same kind and name;
//! 4. [`Document::check_references`] checks it against the rest of the project.
//!
//! and exports them with [`Document::for_export`] and [`render_yaml`].

mod app_identity;
mod component;
mod configuration;
mod document;
mod duration;
mod error;
mod fields;
mod files;
#[cfg(test)]
mod fixtures;
mod http_endpoint;
mod kind;
mod name_value;
mod names;
mod registry;
mod resiliency;
mod subscription;
mod withhold;

pub use app_identity::{AppIdentitySpec, APP_PROTOCOLS};
pub use configuration::sampling_rate;
pub use document::{parse_document, parse_documents, render_yaml, Document, ObjectMeta, ProjectCatalog};
pub use duration::{parse_go_duration, parse_go_duration_or_count};
pub use error::{Invalid, ParseError};
pub use files::{check_project_file, sqlite_file};
pub use kind::Kind;
pub use names::{validate_dns_label, validate_resource_name};
pub use registry::{
    optional, required, required_file, required_secret, secret, BuildingBlock, ComponentType, MetadataField, Registry,
    V1,
};
pub use withhold::WITHHELD_ANNOTATION;
