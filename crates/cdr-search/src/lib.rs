//! FHIR R4 search, without IO: the SearchParameter registry, the query-string parser and its typed AST, and the
//! index values the store writes for each resource.
//!
//! Architecture Invariant: this crate knows nothing about SQL or HTTP. The store compiles [`SearchQuery`] to SQL
//! and writes [`IndexValue`]s into its tables; the API layer decides what a [`SearchError`] means for the response
//! (`Prefer: handling=strict|lenient`).
//!
//! Entry points:
//! * [`SearchParamRegistry::r4`] / [`SearchParamRegistry::with_extra`]: the parameters of every type;
//! * [`parse_query`]: `(name, value)` pairs to a [`SearchQuery`] plus a list of [`SearchError`]s
//!   ([`parse_query_with_limits`] within a given [`QueryLimits`] cost budget);
//! * [`index_values`]: one FHIR element to the [`IndexValue`]s a parameter indexes;
//! * [`extract()`]: every index row of a resource, by evaluating each parameter's FHIRPath expression;
//! * [`Compartment`]: the R4 patient compartment, which confines a [`SearchQuery`] and tests a resource.

mod alias;
mod ast;
mod code_systems;
mod compartment;
mod date;
mod extract;
mod geo;
mod index;
mod normalize;
mod number;
mod overlay;
mod parser;
mod patient_compartment;
mod registry;

pub use crate::ast::{
    Clause, ContainedMode, ContainedType, Criterion, Include, Modifier, ParamFilter, ParamRef,
    Prefix, ReferenceValue, SearchQuery, SearchValue, SortKey, SummaryMode, TokenSystem,
    TokenValue, TotalMode,
};
pub use crate::compartment::Compartment;
pub use crate::date::{DateError, DatePrecision, DateRange, DateValue, format_micros, parse_date};
pub use crate::extract::{ExtractFailure, Extraction, IndexEntry, extract};
pub use crate::geo::{EARTH_RADIUS_KM, GeoPoint, NearValue};
pub use crate::index::{
    IndexValue, QuantityIndex, ReferenceIndex, TokenIndex, TypeCoding, index_values,
};
pub use crate::normalize::normalize_string;
pub use crate::number::{DecimalValue, NumberError, parse_decimal};
pub use crate::parser::{
    ErrorPart, Limit, ParsedQuery, QueryLimits, SearchError, parse_query, parse_query_with_limits,
};
pub use crate::registry::{
    CompositeComponent, RegistryError, SearchParamDef, SearchParamRegistry, SearchParamType,
};

#[cfg(test)]
mod tests;
