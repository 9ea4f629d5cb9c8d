//! The bindings API as a worker serves it: the caller's binding, the operations it takes, and the call under
//! the component's outbound Resiliency policy. daprd answers every failure (unknown binding, refused
//! operation, failed call) with one error, `ERR_INVOKE_OUTPUT_BINDING`.

use outrigger_bus::{BindingResponse, DataError, InvokeBinding};
use outrigger_outbound::resiliency;

use super::BindingRequest;
use crate::handler::Scope;

/// `InvokeBinding`.
pub(crate) async fn invoke(scope: &Scope<'_>, call: InvokeBinding) -> Result<BindingResponse, DataError> {
    let InvokeBinding { name, operation, data, metadata } = call;
    let failed = |message: String| DataError::InvokeBinding { name: name.clone(), message };
    let app_id = &scope.tenant.app_id;
    let component =
        scope.project.bindings.values().find(|component| component.name == name && component.allows(app_id));
    let component = component.ok_or_else(|| failed(format!("couldn't find output binding {name}")))?;
    let binding = component.backend.clone().map_err(failed)?;
    let operations = binding.operations();
    if !operations.contains(&operation.as_str()) {
        return Err(failed(format!(
            "binding {name} does not support operation {operation}. supported operations:{}",
            operations.join(" ")
        )));
    }
    let (policy, breaker) = scope.component_policy(&name);
    let request = || binding.invoke(BindingRequest { operation: &operation, data: &data, metadata: &metadata });
    let caller = resiliency::Caller::component(scope.tenant.metric_labels(), "Binding", &component.component_type);
    resiliency::execute_fallible(&policy, breaker.as_deref(), caller, &format!("binding {name}"), request)
        .await
        .map_err(failed)
}
