//! The cost budget of one search: how many parameters, clauses, values, sort keys, includes and chain links a
//! query may have before the parser refuses it with [`SearchError::LimitExceeded`].
//!
//! The defaults are far above what an imaging client sends (a viewer's searches have a handful of parameters, a
//! few values each, chains one or two links deep) and far below what makes the databases fail on the compiled
//! SQL: SQLite nests expressions at most 1,000 deep (every AND-ed clause and every OR-ed value adds a level) and
//! binds at most 32,766 variables, PostgreSQL 65,535. Each value binds a few variables (a token its system and
//! code, a date or a quantity its range), and each target type of a chain one; [`QueryLimits::max_values`]
//! counts both.
//!
//! [`SearchError::LimitExceeded`]: crate::SearchError::LimitExceeded

use crate::parser::SearchError;

/// Bounds on the size of one search query; [`QueryLimits::default`] is what the server uses unless configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLimits {
    /// Most `name=value` pairs in the query, result parameters (`_sort`, `_include`, …) included.
    pub max_parameters: usize,
    /// Most bytes in one parameter name (a chain is one name).
    pub max_name_bytes: usize,
    /// Most bytes in one criterion's value (all its alternatives), before it is unescaped and normalised.
    pub max_value_bytes: usize,
    /// Most criteria (AND-ed parameters, repetitions included).
    pub max_clauses: usize,
    /// Most comma-separated alternatives (OR-ed values) in one parameter.
    pub max_alternatives: usize,
    /// Most values in the whole query: every alternative of every criterion, every target type of a chain and
    /// the source type of a `_has`, and every `_type` entry.
    pub max_values: usize,
    /// Most `_sort` keys, over all `_sort` parameters.
    pub max_sort_keys: usize,
    /// Most `_include` and `_revinclude` parameters together.
    pub max_includes: usize,
    /// How deep chains and `_has` may nest (`a.b.c.d` is depth 3).
    pub max_chain_depth: usize,
    /// Most chain links the parser resolves in the whole query: a link written with `:Type` (and each `_has`)
    /// counts one, a link without it one per target type of the reference (`Provenance?target.x` reads `x` on
    /// each of the 145 types `target` may point to).
    pub max_chain_links: usize,
}

/// Which bound of [`QueryLimits`] a query exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Parameters,
    NameBytes,
    ValueBytes,
    Clauses,
    Alternatives,
    Values,
    SortKeys,
    Includes,
    ChainDepth,
    ChainLinks,
}

impl Default for QueryLimits {
    fn default() -> QueryLimits {
        QueryLimits {
            max_parameters: 200,
            max_name_bytes: 1_000,
            max_value_bytes: 16_384,
            max_clauses: 100,
            max_alternatives: 100,
            max_values: 1_000,
            max_sort_keys: 10,
            max_includes: 20,
            max_chain_depth: 4,
            max_chain_links: 1_000,
        }
    }
}

impl QueryLimits {
    /// The value of the bound `limit`.
    #[must_use]
    pub fn get(&self, limit: Limit) -> usize {
        match limit {
            Limit::Parameters => self.max_parameters,
            Limit::NameBytes => self.max_name_bytes,
            Limit::ValueBytes => self.max_value_bytes,
            Limit::Clauses => self.max_clauses,
            Limit::Alternatives => self.max_alternatives,
            Limit::Values => self.max_values,
            Limit::SortKeys => self.max_sort_keys,
            Limit::Includes => self.max_includes,
            Limit::ChainDepth => self.max_chain_depth,
            Limit::ChainLinks => self.max_chain_links,
        }
    }

    /// The error for parameter `name` going past `limit`; a name longer than the name limit is cut to it.
    pub(crate) fn exceeded(&self, name: &str, limit: Limit) -> SearchError {
        let name = match name.len() > self.max_name_bytes {
            true => format!("{}…", &name[..name.floor_char_boundary(self.max_name_bytes)]),
            false => name.to_owned(),
        };
        SearchError::LimitExceeded { name, limit, max: self.get(limit) }
    }
}

impl Limit {
    /// Whether the bound is on the whole query (the parser stops reading it) rather than on one parameter.
    pub(crate) fn is_per_query(self) -> bool {
        !matches!(
            self,
            Limit::NameBytes | Limit::ValueBytes | Limit::Alternatives | Limit::ChainDepth
        )
    }
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Limit::Parameters => "parameters per query (max_parameters)",
            Limit::NameBytes => "bytes per parameter name (max_name_bytes)",
            Limit::ValueBytes => "bytes per parameter value (max_value_bytes)",
            Limit::Clauses => "criteria per query (max_clauses)",
            Limit::Alternatives => "alternatives per parameter (max_alternatives)",
            Limit::Values => "values per query (max_values)",
            Limit::SortKeys => "_sort keys per query (max_sort_keys)",
            Limit::Includes => "_include and _revinclude parameters per query (max_includes)",
            Limit::ChainDepth => "nested chain and _has links (max_chain_depth)",
            Limit::ChainLinks => "chain links resolved per query (max_chain_links)",
        })
    }
}
