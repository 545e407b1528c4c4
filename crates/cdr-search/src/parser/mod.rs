//! The FHIR R4 search query parser: `(name, value)` pairs to a [`SearchQuery`].
//!
//! The caller splits the query string (GET) or the `application/x-www-form-urlencoded` body (POST `_search`) at
//! `&` and `=` and percent-decodes names and values (`+` becomes a space); it also drops the HTTP-level
//! parameters `_format` and `_pretty`, which the parser ignores too.
//!
//! # Grammar
//!
//! Names (`type` is a resource type of the current context, `code` one of its parameter codes):
//!
//! ```text
//! name          ::= result-name | criterion-name
//! result-name   ::= "_include" [":iterate" | ":recurse"] | "_revinclude" [":iterate" | ":recurse"]
//!                 | "_sort" | "_count" | "_total" | "_summary" | "_elements" | "_contained"
//!                 | "_containedType" | "_type"
//! criterion-name::= has | chain | param
//! has           ::= "_has:" type ":" code ":" criterion-name     ; criterion-name of `type`; code is a reference
//!                                                              ; parameter of `type` pointing at the context
//! chain         ::= code [":" type] "." criterion-name          ; code is a reference parameter; the inner name
//!                                                              ; is read in the context of the target type(s)
//! param         ::= code [":" modifier]
//! modifier      ::= "missing" | "exact" | "contains" | "text" | "not" | "above" | "below"
//!                 | "identifier" | "of-type" | "in" | "not-in" | type
//! ```
//!
//! Values (a backslash escapes `,` `|` `$` and `\`; an unescaped `,` separates alternatives, ORed):
//!
//! ```text
//! value         ::= alternative ("," alternative)*
//! number        ::= [prefix] decimal
//! date          ::= [prefix] YYYY ["-" MM ["-" DD ["T" hh ":" mm [":" ss ["." fraction]] [zone]]]]
//! zone          ::= "Z" | ("+" | "-") hh ":" mm
//! prefix        ::= "eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap"
//! string        ::= text
//! token         ::= code | "|" code | system "|" code | system "|"
//! of-type       ::= type-system "|" type-code "|" value                ; token with :of-type
//! reference     ::= id | type "/" id ["/_history/" version] | absolute-url ["|" version]
//! quantity      ::= [prefix] decimal ["|" [system] "|" [code]]
//! uri           ::= text
//! composite     ::= component ("$" component)*                        ; one per component, in order
//! missing       ::= "true" | "false"                                  ; any type with :missing
//! ```
//!
//! `_include`/`_revinclude` values are `*` or `type ":" code [":" type]` or `type ":*"`; `_sort` is a comma list of
//! `["-"] code`; `_type` and `_elements` are comma lists.
//!
//! # Errors
//!
//! Every problem is reported, each as a [`SearchError`]: [`SearchError::Unknown`] when a parameter (or a link of a
//! chain) is not defined, [`SearchError::Inapplicable`] for a well-formed `_include` of another type than the
//! searched one without `:iterate`, [`SearchError::Invalid`] with a byte position (in the name or in the value)
//! for anything else. The clause in error is left out of the query; whether that is acceptable (`Prefer: handling=lenient`) or
//! a 400 (`handling=strict`) is the caller's decision.
//!
//! A query bigger than its [`QueryLimits`] is reported with [`SearchError::LimitExceeded`], which no handling
//! excuses; the parser stops at the first bound on the whole query that is exceeded, so the work it does is
//! bounded by the limits. An un-typed chain link (`reference.tail`) is resolved on every target type of the
//! reference; the tail is parsed once per target type and clause, however many paths reach it.

mod limits;
mod result;
mod value;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use cdr_model::ResourceType;

use crate::alias::{standard_param_code, standard_type_name};
use crate::ast::{Clause, Criterion, Modifier, ParamFilter, ParamRef, SearchQuery};
use crate::registry::{SearchParamDef, SearchParamRegistry, SearchParamType};

pub use crate::parser::limits::{Limit, QueryLimits};

/// A problem with one query parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchError {
    /// The parameter (or a link of its chain) is not defined for the type searched.
    #[error("unknown search parameter '{name}'")]
    Unknown { name: String },
    /// The parameter is known but its name or value is malformed or not allowed.
    #[error("invalid search parameter '{name}': {message} (at byte {position} of the {part})")]
    Invalid { name: String, part: ErrorPart, position: usize, message: String },
    /// The parameter is well formed but does not apply to this search: an `_include` without `:iterate` that
    /// starts at another type than the one searched (R4 search.html#include: it applies to the matches only).
    /// Like [`SearchError::Unknown`], lenient handling may ignore it; unlike it, only this one `value` is.
    #[error("search parameter '{name}={value}' does not apply: {message}")]
    Inapplicable { name: String, value: String, message: String },
    /// The query is bigger than a bound of its [`QueryLimits`] allows: too costly to run, whatever the rest of
    /// it says.
    #[error("search parameter '{name}' exceeds the limit of {max} {limit}")]
    LimitExceeded { name: String, limit: Limit, max: usize },
}

/// Which part of a `name=value` pair an error position refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorPart {
    Name,
    Value,
}

/// The parser's output: the query made of every well-formed parameter, and a list of the others.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedQuery {
    pub query: SearchQuery,
    pub errors: Vec<SearchError>,
}

impl std::fmt::Display for ErrorPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorPart::Name => "name",
            ErrorPart::Value => "value",
        })
    }
}

/// Parses percent-decoded `(name, value)` pairs of a search on `resource_type` (`None` for system-level search),
/// within the default [`QueryLimits`].
#[must_use]
pub fn parse_query(
    resource_type: Option<ResourceType>,
    pairs: &[(String, String)],
    registry: &SearchParamRegistry,
) -> ParsedQuery {
    parse_query_with_limits(resource_type, pairs, registry, &QueryLimits::default())
}

/// [`parse_query`] within `limits`.
#[must_use]
pub fn parse_query_with_limits(
    resource_type: Option<ResourceType>,
    pairs: &[(String, String)],
    registry: &SearchParamRegistry,
    limits: &QueryLimits,
) -> ParsedQuery {
    let mut query = SearchQuery {
        resource_type,
        types: Vec::new(),
        clauses: Vec::new(),
        includes: Vec::new(),
        revincludes: Vec::new(),
        sort: Vec::new(),
        count: None,
        total: None,
        summary: None,
        elements: Vec::new(),
        contained: None,
        contained_type: None,
        compartment: None,
    };
    if let Some((name, _)) = pairs.get(limits.max_parameters) {
        return ParsedQuery { query, errors: vec![limits.exceeded(name, Limit::Parameters)] };
    }
    let mut errors = Vec::new();
    // `_type` decides the context of every other parameter in system-level search, so it goes first.
    for (name, value) in pairs.iter().filter(|(name, _)| name == "_type") {
        match result::parse_types(resource_type, name, value) {
            Ok(types) => query.types.extend(types),
            Err(error) => errors.push(error),
        }
        if query.types.len() > limits.max_values {
            return ParsedQuery { query, errors: vec![limits.exceeded(name, Limit::Values)] };
        }
    }
    let scope = match resource_type {
        Some(resource_type) => Scope::One(resource_type),
        None if query.types.len() == 1 => Scope::One(query.types[0]),
        None if query.types.is_empty() => Scope::AllTypes,
        None => Scope::Some(query.types.clone()),
    };
    let parser = Parser { registry, scope, limits, chain_links: Cell::new(0) };
    let mut n_values = query.types.len();
    let mut n_clauses = 0;
    for (name, value) in pairs {
        let outcome = match name.split(':').next().unwrap_or_default() {
            "_type" | "_format" | "_pretty" => Ok(()),
            "_include" | "_revinclude" | "_sort" | "_count" | "_total" | "_summary"
            | "_elements" | "_contained" | "_containedType" => {
                result::parse_result_param(&parser, &mut query, name, value)
            }
            _ => {
                n_clauses += 1;
                match n_clauses > limits.max_clauses {
                    true => Err(limits.exceeded(name, Limit::Clauses)),
                    false => parser.parse_clause(name, value).and_then(|clause| {
                        n_values += count_values(&clause.criterion);
                        if n_values > limits.max_values {
                            return Err(limits.exceeded(name, Limit::Values));
                        }
                        query.clauses.push(clause);
                        Ok(())
                    }),
                }
            }
        };
        if let Err(error) = outcome {
            let stop =
                matches!(&error, SearchError::LimitExceeded { limit, .. } if limit.is_per_query());
            errors.push(error);
            if stop {
                break;
            }
        }
    }
    ParsedQuery { query, errors }
}

/// The values a criterion counts against [`QueryLimits::max_values`].
fn count_values(criterion: &Criterion) -> usize {
    match criterion {
        Criterion::Param(filter) => filter.values.len(),
        Criterion::Chain { target_types, inner, .. } => target_types.len() + count_values(inner),
        Criterion::Has { inner, .. } => 1 + count_values(inner),
    }
}

/// The resource types a parameter name is read against.
#[derive(Debug, Clone)]
enum Scope {
    One(ResourceType),
    /// System-level search with several `_type`s: a parameter must exist, with one type, on each.
    Some(Vec<ResourceType>),
    /// System-level search without `_type`: only parameters defined on `Resource`.
    AllTypes,
}

#[derive(Debug)]
struct Parser<'a> {
    registry: &'a SearchParamRegistry,
    scope: Scope,
    limits: &'a QueryLimits,
    /// Chain links resolved so far in the query, against [`QueryLimits::max_chain_links`].
    chain_links: Cell<usize>,
}

/// The chain tails of one clause already parsed: by target type and byte offset of the tail in the name.
type LinkMemo = HashMap<(ResourceType, usize), Result<(Criterion, String), SearchError>>;

/// The name being parsed, for error reports.
#[derive(Debug, Clone, Copy)]
struct NameContext<'a> {
    full_name: &'a str,
    value: &'a str,
    depth: usize,
    /// The tail of a name always sits at the same depth, so the offset alone identifies it.
    links: &'a RefCell<LinkMemo>,
}

impl NameContext<'_> {
    fn invalid(&self, part: ErrorPart, position: usize, message: impl Into<String>) -> SearchError {
        SearchError::Invalid {
            name: self.full_name.to_owned(),
            part,
            position,
            message: message.into(),
        }
    }

    fn unknown(&self) -> SearchError {
        SearchError::Unknown { name: self.full_name.to_owned() }
    }
}

impl Parser<'_> {
    fn parse_clause(&self, name: &str, value: &str) -> Result<Clause, SearchError> {
        if name.len() > self.limits.max_name_bytes {
            return Err(self.limits.exceeded(name, Limit::NameBytes));
        }
        if value.len() > self.limits.max_value_bytes {
            return Err(self.limits.exceeded(name, Limit::ValueBytes));
        }
        let links = RefCell::new(LinkMemo::new());
        let context = NameContext { full_name: name, value, depth: 0, links: &links };
        let (criterion, canonical_name) = match &self.scope {
            Scope::One(resource_type) => self.parse_criterion(*resource_type, name, 0, context)?,
            Scope::Some(_) | Scope::AllTypes => self.parse_system_criterion(name, context)?,
        };
        Ok(Clause { name: name.to_owned(), canonical_name, criterion })
    }

    /// A parameter of a system-level search: no chains, and the parameter must be common to the types searched.
    fn parse_system_criterion(
        &self,
        name: &str,
        context: NameContext<'_>,
    ) -> Result<(Criterion, String), SearchError> {
        if name.starts_with("_has:") || name.contains('.') {
            return Err(context.invalid(
                ErrorPart::Name,
                0,
                "chains and _has need a single resource type",
            ));
        }
        let code = name.split(':').next().unwrap_or_default();
        let representative = match &self.scope {
            Scope::Some(types) => {
                let defs: Vec<Option<&SearchParamDef>> = types
                    .iter()
                    .map(|resource_type| self.registry.get(*resource_type, code))
                    .collect();
                let Some(Some(first)) = defs.first() else { return Err(context.unknown()) };
                let same_everywhere = defs
                    .iter()
                    .all(|def| def.is_some_and(|def| def.param_type == first.param_type));
                if !same_everywhere {
                    return Err(context.unknown());
                }
                first.base
            }
            Scope::One(resource_type) => *resource_type,
            Scope::AllTypes => {
                if !self.registry.is_common(code) {
                    return Err(context.unknown());
                }
                ResourceType::parse("Patient").map_err(|_| context.unknown())?
            }
        };
        self.parse_criterion(representative, name, 0, context)
    }

    /// Parses `name` (starting at byte `offset` of the full name) in the context of `resource_type`; returns the
    /// criterion and its canonical spelling.
    fn parse_criterion(
        &self,
        resource_type: ResourceType,
        name: &str,
        offset: usize,
        context: NameContext<'_>,
    ) -> Result<(Criterion, String), SearchError> {
        if context.depth > self.limits.max_chain_depth {
            return Err(self.limits.exceeded(context.full_name, Limit::ChainDepth));
        }
        if let Some(rest) = name.strip_prefix("_has:") {
            return self.parse_has(resource_type, rest, offset + 5, context);
        }
        let (head, tail) = match name.split_once('.') {
            Some((head, tail)) => (head, Some(tail)),
            None => (name, None),
        };
        let (code, modifier_text) = match head.split_once(':') {
            Some((code, modifier)) => (code, Some(modifier)),
            None => (head, None),
        };
        let def = self.resolve(resource_type, code).ok_or_else(|| context.unknown())?;
        let param = ParamRef { code: def.code.clone(), param_type: def.param_type };
        let modifier_offset = offset + code.len() + 1;
        let Some(tail) = tail else {
            let modifier = match modifier_text {
                None => None,
                Some(text) => Some(self.parse_modifier(def, text, modifier_offset, context)?),
            };
            let alternatives = value::split_unescaped(context.value, b',', 0);
            if alternatives.len() > self.limits.max_alternatives {
                return Err(self.limits.exceeded(context.full_name, Limit::Alternatives));
            }
            let values =
                value::parse_values(def, modifier, context.value, alternatives, self.registry)
                    .map_err(|error| {
                        context.invalid(ErrorPart::Value, error.position, error.message)
                    })?;
            let canonical = match modifier {
                Some(modifier) => format!("{}:{}", def.code, modifier.as_str()),
                None => def.code.clone(),
            };
            return Ok((Criterion::Param(ParamFilter { param, modifier, values }), canonical));
        };
        if def.param_type != SearchParamType::Reference {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                format!("'{code}' is not a reference parameter"),
            ));
        }
        let tail_offset = offset + head.len() + 1;
        let inner_context = NameContext { depth: context.depth + 1, ..context };
        let candidates = match modifier_text {
            Some(text) => vec![self.parse_target_type(def, text, modifier_offset, context)?],
            None if def.targets.is_empty() => {
                return Err(context.invalid(
                    ErrorPart::Name,
                    offset,
                    format!("'{code}' may point to any type: name one with '{code}:Type.'"),
                ));
            }
            None => def.targets.clone(),
        };
        let mut first_error = None;
        let mut resolved: Vec<(ResourceType, Criterion, String)> = Vec::new();
        for target in candidates {
            match self.parse_link(target, tail, tail_offset, inner_context) {
                Ok((criterion, canonical)) => resolved.push((target, criterion, canonical)),
                Err(error @ SearchError::LimitExceeded { .. }) => return Err(error),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let Some((_, criterion, inner_canonical)) = resolved.first().cloned() else {
            return Err(first_error.unwrap_or_else(|| context.unknown()));
        };
        if resolved.iter().any(|(_, other, _)| *other != criterion) {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                format!("the chain means different things for the targets of '{code}': name one with '{code}:Type.'"),
            ));
        }
        let target_types: Vec<ResourceType> =
            resolved.iter().map(|(target, _, _)| *target).collect();
        let canonical = match modifier_text {
            Some(_) => format!("{}:{}.{inner_canonical}", def.code, target_types[0]),
            None => format!("{}.{inner_canonical}", def.code),
        };
        Ok((
            Criterion::Chain { reference: param, target_types, inner: Box::new(criterion) },
            canonical,
        ))
    }

    /// Parses the `tail` of a chain (at byte `offset` of the full name) on `target`, once per clause: the links
    /// of an un-typed chain reach the same target type and tail by many paths.
    fn parse_link(
        &self,
        target: ResourceType,
        tail: &str,
        offset: usize,
        context: NameContext<'_>,
    ) -> Result<(Criterion, String), SearchError> {
        if let Some(parsed) = context.links.borrow().get(&(target, offset)) {
            return parsed.clone();
        }
        self.count_link(context)?;
        let parsed = self.parse_criterion(target, tail, offset, context);
        context.links.borrow_mut().insert((target, offset), parsed.clone());
        parsed
    }

    /// Counts one chain link against [`QueryLimits::max_chain_links`].
    fn count_link(&self, context: NameContext<'_>) -> Result<(), SearchError> {
        let n_links = self.chain_links.get() + 1;
        self.chain_links.set(n_links);
        match n_links > self.limits.max_chain_links {
            true => Err(self.limits.exceeded(context.full_name, Limit::ChainLinks)),
            false => Ok(()),
        }
    }

    /// Parses what follows `_has:` (at byte `offset` of the full name): `type:code:criterion-name`.
    fn parse_has(
        &self,
        resource_type: ResourceType,
        rest: &str,
        offset: usize,
        context: NameContext<'_>,
    ) -> Result<(Criterion, String), SearchError> {
        let mut pieces = rest.splitn(3, ':');
        let (Some(type_name), Some(code), Some(inner_name)) =
            (pieces.next(), pieces.next(), pieces.next())
        else {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                "_has takes _has:Type:reference:parameter",
            ));
        };
        let source_type = self.resolve_type(type_name).ok_or_else(|| {
            context.invalid(ErrorPart::Name, offset, format!("unknown resource type '{type_name}'"))
        })?;
        let code_offset = offset + type_name.len() + 1;
        let def = self.resolve(source_type, code).ok_or_else(|| context.unknown())?;
        let points_here = def.targets.is_empty() || def.targets.contains(&resource_type);
        if def.param_type != SearchParamType::Reference || !points_here {
            return Err(context.invalid(
                ErrorPart::Name,
                code_offset,
                format!("'{code}' of {source_type} is not a reference to {resource_type}"),
            ));
        }
        let inner_offset = code_offset + code.len() + 1;
        let inner_context = NameContext { depth: context.depth + 1, ..context };
        self.count_link(context)?;
        let (inner, inner_canonical) =
            self.parse_criterion(source_type, inner_name, inner_offset, inner_context)?;
        let reference = ParamRef { code: def.code.clone(), param_type: def.param_type };
        let canonical = format!("_has:{source_type}:{}:{inner_canonical}", def.code);
        Ok((Criterion::Has { source_type, reference, inner: Box::new(inner) }, canonical))
    }

    fn parse_modifier(
        &self,
        def: &SearchParamDef,
        text: &str,
        offset: usize,
        context: NameContext<'_>,
    ) -> Result<Modifier, SearchError> {
        let modifier = match Modifier::parse(text) {
            Some(modifier) => modifier,
            None if def.param_type == SearchParamType::Reference => {
                Modifier::Type(self.parse_target_type(def, text, offset, context)?)
            }
            None => {
                return Err(context.invalid(
                    ErrorPart::Name,
                    offset,
                    format!("unknown modifier ':{text}'"),
                ));
            }
        };
        if !matches!(modifier, Modifier::Type(_)) && !def.accepts_modifier(modifier) {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                format!(
                    "modifier ':{text}' does not apply to {} parameter '{}'",
                    def.param_type.as_str(),
                    def.code
                ),
            ));
        }
        Ok(modifier)
    }

    /// Reads the `Type` of `reference:Type`, which must be one of the reference's targets.
    fn parse_target_type(
        &self,
        def: &SearchParamDef,
        text: &str,
        offset: usize,
        context: NameContext<'_>,
    ) -> Result<ResourceType, SearchError> {
        let Some(target) = self.resolve_type(text) else {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                format!("unknown modifier or type ':{text}'"),
            ));
        };
        if !def.targets.is_empty() && !def.targets.contains(&target) {
            return Err(context.invalid(
                ErrorPart::Name,
                offset,
                format!("'{}' does not point to {target}", def.code),
            ));
        }
        Ok(target)
    }

    /// Looks up `code` on `resource_type`, accepting the Ontario aliases.
    fn resolve(&self, resource_type: ResourceType, code: &str) -> Option<&SearchParamDef> {
        self.registry.get(resource_type, code).or_else(|| {
            let standard = standard_param_code(resource_type.as_str(), code)?;
            self.registry.get(resource_type, standard)
        })
    }

    fn resolve_type(&self, name: &str) -> Option<ResourceType> {
        ResourceType::parse(name)
            .ok()
            .or_else(|| ResourceType::parse(standard_type_name(name)?).ok())
    }
}
