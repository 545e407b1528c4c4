//! JSON Patch (RFC 6902) on the resource JSON, with the `json-patch` crate. The operations edit the JSON as
//! it is: keeping a primitive's `_name` sibling in step with it is the client's business.

use json_patch::PatchOperation;
use serde_json::Value;

use cdr_model::{Issue, IssueType, OperationOutcome};

use crate::{InteractionError, ResourceLimits};

/// Parses a JSON Patch document: an array of operation objects.
///
/// # Errors
/// [`InteractionError::Invalid`] when the body is not one.
pub(crate) fn parse(body: &[u8]) -> Result<json_patch::Patch, InteractionError> {
    serde_json::from_slice(body).map_err(|error| {
        InteractionError::invalid(format!(
            "the body is not a JSON Patch document (RFC 6902: an array of operations): {error}"
        ))
    })
}

/// Applies `patch` to `resource`, one operation after the other. A `copy` can double the document each
/// time, so the elements copies add are counted against `limits` as they are made.
///
/// # Errors
/// [`InteractionError::Unprocessable`] naming the operation that failed (a `test` that does not hold, a
/// path that does not exist); [`InteractionError::ResourceTooCostly`] when copies grow the resource past
/// the element limit.
pub(crate) fn apply(
    resource: &mut Value,
    patch: &json_patch::Patch,
    limits: &ResourceLimits,
) -> Result<(), InteractionError> {
    let mut n_elements = count_elements(resource);
    for (index, operation) in patch.iter().enumerate() {
        if let PatchOperation::Copy(copy) = operation
            && let Some(copied) = resource.pointer(copy.from.as_str())
        {
            n_elements += count_elements(copied);
            if n_elements > limits.max_elements {
                return Err(InteractionError::ResourceTooCostly(format!(
                    "JSON Patch operation {index} (copy) grows the resource past {} elements, the most this server accepts",
                    limits.max_elements
                )));
            }
        }
        // The document is a copy that is thrown away on failure, so nothing needs undoing.
        json_patch::patch_unsafe(resource, std::slice::from_ref(operation)).map_err(|error| {
            let name = match operation {
                PatchOperation::Add(_) => "add",
                PatchOperation::Remove(_) => "remove",
                PatchOperation::Replace(_) => "replace",
                PatchOperation::Move(_) => "move",
                PatchOperation::Copy(_) => "copy",
                PatchOperation::Test(_) => "test",
            };
            InteractionError::Unprocessable(OperationOutcome::single(Issue::error(
                IssueType::Processing,
                format!(
                    "JSON Patch operation {index} ({name} at '{}') failed: {}",
                    operation.path(),
                    error.kind
                ),
            )))
        })?;
    }
    Ok(())
}

/// The JSON values in `value`, itself included.
fn count_elements(value: &Value) -> usize {
    let mut n_elements = 0;
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        n_elements += 1;
        match value {
            Value::Array(values) => stack.extend(values),
            Value::Object(members) => stack.extend(members.values()),
            _ => {}
        }
    }
    n_elements
}
