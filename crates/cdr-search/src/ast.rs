//! The typed search query: what [`crate::parse_query`] produces and the store compiles to SQL.
//!
//! Semantics, for whoever writes the compiler (FHIR R4 §3.1.1):
//!
//! * A [`SearchQuery`] matches the resources of `resource_type` (or of `types`, in system-level search) that
//!   match **every** [`Clause`] in `clauses` (AND by repetition of a parameter).
//! * A [`Criterion::Param`] matches when **any** of its `values` matches (OR by comma), under its modifier.
//!   `:not` is the exception: a resource matches `code:not=a,b` when it has no token equal to `a` or to `b`
//!   (resources without the element match too).
//! * A [`Criterion::Chain`] matches a resource whose reference parameter `reference` points to a resource of one
//!   of `target_types` that matches `inner` (`subject:Patient.name=x`, `patient.identifier=s|v`).
//! * A [`Criterion::Has`] matches a resource that is the target of reference parameter `reference` of some
//!   resource of `source_type` matching `inner` (`_has:Observation:patient:code=x`).
//! * Values carry their parsed form: dates as UTC ranges, numbers with their precision range, strings already
//!   normalized (see [`crate::normalize_string`]), tokens split into system and code.
//!
//! Prefix semantics of dates, against an indexed range `[ilow, ihigh)` and a search range `[slow, shigh)`:
//! `eq`: `slow <= ilow && ihigh <= shigh`; `ne`: not `eq`; `gt`: `ihigh > shigh`; `lt`: `ilow < slow`;
//! `ge`: `gt` or `eq`; `le`: `lt` or `eq`; `sa`: `ilow >= shigh`; `eb`: `ihigh <= slow`;
//! `ap`: the ranges overlap once the search range is widened by 10% of its distance from now.
//!
//! Numbers and quantities: the stored value `v` is a point, compared as is (R4 §3.1.1.4.1: "the precision of
//! the search value is used to determine the range; the stored value is compared as is"), with the search
//! value's precision range `[slow, shigh)` and its exact value `s`:
//! `eq`: `slow <= v < shigh` (`45.0` finds a stored 45, not 45.4); `ne`: not `eq`; `gt`: `v > s`;
//! `lt`: `v < s`; `ge`: `v >= s`; `le`: `v <= s` (`lt100` is "less than exactly 100"); `sa`: `v >= shigh`;
//! `eb`: `v < slow`; `ap`: within the search range widened by 10% of `s` on each side. The widths of `ap`
//! are the server's choice.

use cdr_model::ResourceType;

use crate::date::DateValue;
use crate::geo::NearValue;
use crate::number::DecimalValue;
use crate::registry::SearchParamType;

/// A parsed search: the criteria to match and how to shape the result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchQuery {
    /// The searched type (`[base]/Type?…`); `None` for system-level search (`[base]?…`).
    pub resource_type: Option<ResourceType>,
    /// `_type` of a system-level search: the types to search; empty means every type.
    pub types: Vec<ResourceType>,
    /// Criteria, all of which must match (AND).
    pub clauses: Vec<Clause>,
    /// `_include` (and `_include:iterate`) directives, in query order.
    pub includes: Vec<Include>,
    /// `_revinclude` (and `_revinclude:iterate`) directives, in query order.
    pub revincludes: Vec<Include>,
    /// `_sort` keys, most significant first.
    pub sort: Vec<SortKey>,
    /// `_count`: the page size the client asked for (the caller caps it).
    pub count: Option<u32>,
    /// `_total`.
    pub total: Option<TotalMode>,
    /// `_summary`.
    pub summary: Option<SummaryMode>,
    /// `_elements`: element names to keep, as written.
    pub elements: Vec<String>,
    /// `_contained`.
    pub contained: Option<ContainedMode>,
    /// `_containedType`.
    pub contained_type: Option<ContainedType>,
    /// Not a parameter: the patient compartment the caller is confined to (set by the interaction layer),
    /// which every match and every resource a chain or `_has` walks over must be in.
    pub compartment: Option<crate::compartment::Compartment>,
}

/// One `name=value` pair of the query: a criterion every match must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The parameter name as the client wrote it, such as `basedOn:ServiceRequest.code`.
    pub name: String,
    /// The name in standard R4 spelling, rebuilt from the resolved parameters, such as
    /// `based-on:ServiceRequest.code`; equal to `name` unless an alias was used.
    pub canonical_name: String,
    pub criterion: Criterion,
}

/// What a clause asks of a resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Criterion {
    /// A parameter of the resource itself: `code=a,b`, `date=ge2024`, `name:exact=Eve`.
    Param(ParamFilter),
    /// A chained parameter: `reference:Type.inner` or `reference.inner`.
    Chain {
        /// The reference parameter of the resource being searched.
        reference: ParamRef,
        /// The types the referenced resource may have: the `:Type` of the name, else every target type of
        /// `reference` that defines the inner parameter.
        target_types: Vec<ResourceType>,
        /// What the referenced resource must match (itself a parameter, a chain or a `_has`).
        inner: Box<Criterion>,
    },
    /// A reverse chain: `_has:source_type:reference:inner`.
    Has {
        /// The type of the resources that point at the one being searched.
        source_type: ResourceType,
        /// The reference parameter of `source_type` that points at the resource being searched.
        reference: ParamRef,
        /// What the pointing resource must match.
        inner: Box<Criterion>,
    },
}

/// A parameter, its modifier and the values of which any one must match.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamFilter {
    pub param: ParamRef,
    pub modifier: Option<Modifier>,
    /// Alternatives (OR); never empty. With `:missing` there is exactly one [`SearchValue::Missing`].
    pub values: Vec<SearchValue>,
}

/// A search parameter resolved in the registry: its code on the searched type and its type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ParamRef {
    /// The standard code, such as `based-on` (index rows are keyed by it).
    pub code: String,
    pub param_type: SearchParamType,
}

/// A search modifier (the part after `:` in a parameter name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `:missing`: whether the parameter has no value at all.
    Missing,
    /// `:exact` (string): the whole string, case- and accent-sensitive.
    Exact,
    /// `:contains` (string): the normalized value appears anywhere.
    Contains,
    /// `:text` (token): the normalized text or display starts with the value.
    Text,
    /// `:not` (token): no token of the resource equals any value.
    Not,
    /// `:above` (token, uri, reference): the value or its ancestors / URL prefixes.
    Above,
    /// `:below` (token, uri, reference): the value or its descendants / URLs it is a prefix of.
    Below,
    /// `:identifier` (reference): matches `Reference.identifier`.
    Identifier,
    /// `:of-type` (token on Identifier): `type-system|type-code|value`.
    OfType,
    /// `:in` (token): the code is in the value set named by the value.
    In,
    /// `:not-in` (token): the code is not in the value set named by the value.
    NotIn,
    /// `:[type]` (reference): the target has this type.
    Type(ResourceType),
}

/// One alternative of a parameter's value, parsed by the parameter's type and modifier.
#[derive(Debug, Clone, PartialEq)]
pub enum SearchValue {
    /// `:missing=true` (`true`) or `:missing=false` (`false`).
    Missing(bool),
    /// A number parameter value.
    Number { prefix: Prefix, number: DecimalValue },
    /// A date parameter value, as the UTC range its precision covers.
    Date { prefix: Prefix, date: DateValue },
    /// A string value (string parameters, and tokens with `:text`).
    String {
        /// Unescaped, as written (compared by `:exact`).
        exact: String,
        /// [`crate::normalize_string`] of `exact` (compared by default, by `:contains` and by `:text`).
        normalized: String,
    },
    /// A token value (also the value of a reference parameter with `:identifier`).
    Token(TokenValue),
    /// A token value with `:of-type`: the identifier type coding and the identifier value.
    OfType { type_system: String, type_code: String, value: String },
    /// A reference value.
    Reference(ReferenceValue),
    /// A quantity value: `[prefix]number[|system|code]`.
    Quantity {
        prefix: Prefix,
        number: DecimalValue,
        /// `None` when no system was given (`5.4` or `5.4||mg`): any system matches.
        system: Option<String>,
        /// `None` when no code was given; otherwise matched against the quantity's code, or its unit when no
        /// system was given.
        code: Option<String>,
    },
    /// A URI (uri parameters, and the value set URL of `:in`/`:not-in`).
    Uri(String),
    /// A composite value: one value per component, in the definition's order.
    Composite(Vec<SearchValue>),
    /// A Location `near` value: a centre and a distance (the test is [`NearValue::contains`]).
    Near(NearValue),
    /// The unescaped text of another `special` parameter, which the server does not interpret.
    Special(String),
}

/// A token search value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenValue {
    pub system: TokenSystem,
    /// The code (or identifier value); `None` for `system|`, which matches any code in the system.
    pub code: Option<String>,
}

/// The system part of a token value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TokenSystem {
    /// `code`: any system, or none.
    Any,
    /// `|code`: the token must have no system.
    NoSystem,
    /// `system|code` or `system|`.
    Is(String),
}

/// A reference search value.
///
/// * `Patient/123` gives `resource_type` and `id`; `Patient/123/_history/2` adds `version`.
/// * `123` gives `id` only; `resource_type` is then the `:Type` modifier or the parameter's single target type.
/// * An absolute URL (`http://…`, `urn:…`) gives `url`; when it ends in `Type/id` (or `Type/id/_history/v`),
///   those parts are filled in too, so the store can match it against a local reference.
/// * A canonical `url|version` gives `url` and `version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReferenceValue {
    pub resource_type: Option<ResourceType>,
    pub id: Option<String>,
    pub version: Option<String>,
    pub url: Option<String>,
}

/// A comparison prefix on number, date and quantity values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    /// Starts after.
    Sa,
    /// Ends before.
    Eb,
    /// Approximately.
    Ap,
}

/// An `_include` or `_revinclude` directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The type whose reference parameter is followed (`DiagnosticReport` in
    /// `_include=DiagnosticReport:based-on`); `None` for a bare `*`.
    pub source_type: Option<ResourceType>,
    /// The reference parameter followed; `None` for `*` (every reference parameter).
    pub param: Option<String>,
    /// Only targets of this type (`_include=DiagnosticReport:based-on:ServiceRequest`).
    pub target_type: Option<ResourceType>,
    /// `:iterate` (or the R3 spelling `:recurse`): apply to included resources too.
    pub iterate: bool,
}

/// One `_sort` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SortKey {
    pub param: ParamRef,
    /// Written with a leading `-`.
    pub descending: bool,
}

/// `_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TotalMode {
    None,
    Estimate,
    Accurate,
}

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SummaryMode {
    True,
    False,
    Text,
    Data,
    Count,
}

/// `_contained`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainedMode {
    True,
    False,
    Both,
}

/// `_containedType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContainedType {
    Container,
    Contained,
}

impl Prefix {
    /// Every prefix, in the order R4 lists them.
    pub const ALL: [Prefix; 9] = [
        Prefix::Eq,
        Prefix::Ne,
        Prefix::Gt,
        Prefix::Lt,
        Prefix::Ge,
        Prefix::Le,
        Prefix::Sa,
        Prefix::Eb,
        Prefix::Ap,
    ];

    /// Parses a two-letter prefix such as `ge`.
    #[must_use]
    pub fn parse(code: &str) -> Option<Prefix> {
        Prefix::ALL.into_iter().find(|prefix| prefix.as_str() == code)
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Prefix::Eq => "eq",
            Prefix::Ne => "ne",
            Prefix::Gt => "gt",
            Prefix::Lt => "lt",
            Prefix::Ge => "ge",
            Prefix::Le => "le",
            Prefix::Sa => "sa",
            Prefix::Eb => "eb",
            Prefix::Ap => "ap",
        }
    }
}

impl Modifier {
    /// Parses a modifier other than `:[type]`, such as `exact` or `not-in`.
    #[must_use]
    pub fn parse(code: &str) -> Option<Modifier> {
        let modifier = match code {
            "missing" => Modifier::Missing,
            "exact" => Modifier::Exact,
            "contains" => Modifier::Contains,
            "text" => Modifier::Text,
            "not" => Modifier::Not,
            "above" => Modifier::Above,
            "below" => Modifier::Below,
            "identifier" => Modifier::Identifier,
            "of-type" => Modifier::OfType,
            "in" => Modifier::In,
            "not-in" => Modifier::NotIn,
            _ => return None,
        };
        Some(modifier)
    }

    /// The modifier as written after `:`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Modifier::Missing => "missing",
            Modifier::Exact => "exact",
            Modifier::Contains => "contains",
            Modifier::Text => "text",
            Modifier::Not => "not",
            Modifier::Above => "above",
            Modifier::Below => "below",
            Modifier::Identifier => "identifier",
            Modifier::OfType => "of-type",
            Modifier::In => "in",
            Modifier::NotIn => "not-in",
            Modifier::Type(resource_type) => resource_type.as_str(),
        }
    }
}
