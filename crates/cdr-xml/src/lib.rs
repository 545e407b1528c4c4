//! FHIR R4 XML (<https://hl7.org/fhir/R4/xml.html>): resource JSON to XML ([`to_xml`]) and XML to resource
//! JSON ([`from_xml`]), driven by the R4 type table of `cdr-fhirpath` ([`cdr_fhirpath::ModelType`]: element
//! order, primitives, repetitions, choice types, backbone elements and content references), not by code per
//! type.
//!
//! The two forms map as xml.html says: the resource type is the element name in the `http://hl7.org/fhir`
//! namespace (`resourceType` is never an element); elements come in StructureDefinition order, inherited ones
//! first; primitives carry their text in a `value` attribute, and their `id` and extensions (JSON's `_name`
//! sibling, arrays of them aligned with nulls) as the `id` attribute and `extension` children; `Element.id`
//! and `Extension.url` are attributes, `Resource.id` an element; a choice element is named with its type
//! (`valueQuantity`); contained resources and other resource-typed elements (`Bundle.entry.resource`) wrap the
//! resource in its type's element; the narrative `div` is inline XHTML in the XHTML namespace, carried as the
//! exact text of the JSON string. Numbers keep their text both ways (the workspace's serde_json keeps
//! decimals as written), so a valid resource goes JSON → XML → JSON unchanged.
//!
//! What XML cannot carry is refused with [`XmlError`] rather than dropped: a key R4 does not define, a JSON
//! value of the wrong shape, a character XML 1.0 cannot hold, a narrative that is not one well-formed
//! `<div xmlns="http://www.w3.org/1999/xhtml">`. JSON's order of keys is not kept (XML's is the definitions'),
//! nor whitespace around the narrative `div`, nor, from XML, comments and processing instructions.
//!
//! Reading refuses what is not FHIR XML, saying where (line, column and the element's path): an unknown or
//! out-of-order element, a repeated element that may appear once, a primitive with neither `value` nor
//! extensions, text where none is allowed, an unknown attribute, an element outside the FHIR namespace, a
//! document type declaration (so no entity is ever declared or expanded: no XXE, no billion laughs), an
//! entity other than XML's five, nesting deeper than [`MAX_DEPTH`] and more than [`MAX_ATTRIBUTES`] attributes
//! on an element.
//!
//! Architecture Invariant: no IO; the only knowledge of R4's structure is `cdr-fhirpath`'s table.

mod read;
mod write;

pub use crate::read::from_xml;
pub use crate::write::to_xml;

/// The FHIR namespace, of every element but the narrative's.
pub const FHIR_NAMESPACE: &str = "http://hl7.org/fhir";
/// The namespace of the narrative `div` and its content.
pub const XHTML_NAMESPACE: &str = "http://www.w3.org/1999/xhtml";
/// The deepest nesting of elements read (the narrative's included): deeper documents are refused.
pub const MAX_DEPTH: usize = 200;
/// The most attributes one element may carry (namespace declarations included).
pub const MAX_ATTRIBUTES: usize = 32;

/// Why a resource could not be converted: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct XmlError {
    /// What is wrong, with the line and column of the XML read when there is one.
    pub message: String,
    /// The element's path (`Patient.contact[0].name`), when the error is inside the resource.
    pub expression: Option<String>,
}

/// The FHIRPath of the element at `path` (names, with the index of repeated ones), as an error locates it;
/// `None` at the root.
fn path_expression<S: AsRef<str>>(path: &[(S, Option<usize>)]) -> Option<String> {
    let mut expression = String::new();
    for (name, index) in path {
        if !expression.is_empty() {
            expression.push('.');
        }
        expression.push_str(name.as_ref());
        if let Some(index) = index {
            expression.push_str(&format!("[{index}]"));
        }
    }
    (!expression.is_empty()).then_some(expression)
}

#[cfg(test)]
mod tests;
