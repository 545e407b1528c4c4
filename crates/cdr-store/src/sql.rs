//! A small SQL text builder shared by both backends: fragments are static text written in this crate, values
//! are always `$n` bind parameters (both PostgreSQL and SQLite accept that placeholder form).

use crate::StoreError;

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Bind {
    Int(i64),
    Float(f64),
    Text(String),
    OptText(Option<String>),
}

/// SQL text with its bind values, in placeholder order.
#[derive(Debug, Default, Clone)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) binds: Vec<Bind>,
}

impl Sql {
    pub(crate) fn new(text: &str) -> Sql {
        Sql { text: text.to_owned(), binds: Vec::new() }
    }

    /// Appends SQL text written in this crate (never a client value).
    pub(crate) fn push(&mut self, text: &str) -> &mut Sql {
        self.text.push_str(text);
        self
    }

    /// Appends a `$n` placeholder bound to `value`.
    pub(crate) fn bind(&mut self, value: Bind) -> &mut Sql {
        self.binds.push(value);
        self.text.push('$');
        self.text.push_str(&self.binds.len().to_string());
        self
    }

    pub(crate) fn bind_text(&mut self, value: &str) -> &mut Sql {
        self.bind(Bind::Text(value.to_owned()))
    }

    pub(crate) fn bind_int(&mut self, value: i64) -> &mut Sql {
        self.bind(Bind::Int(value))
    }

    /// Appends ` LIMIT n` with `n` written out, never bound. SQLite reads a bound LIMIT's value while planning
    /// and so marks the statement to be prepared again whenever that parameter is bound, which is on every
    /// execution: with a bound LIMIT, re-preparing took a third of the server's time on an identifier
    /// search. The row counts come from the server's own page sizes and caps, never from a client's text.
    pub(crate) fn push_limit(&mut self, rows: i64) -> &mut Sql {
        self.push(" LIMIT ").push(&rows.to_string())
    }

    /// Appends `other` (text and binds), renumbering its placeholders to follow this statement's.
    pub(crate) fn append(&mut self, other: &Sql) -> &mut Sql {
        let offset = self.binds.len();
        let mut characters = other.text.char_indices().peekable();
        while let Some((_, character)) = characters.next() {
            if character != '$' {
                self.text.push(character);
                continue;
            }
            let mut number = 0;
            while let Some((_, digit)) =
                characters.peek().copied().filter(|(_, c)| c.is_ascii_digit())
            {
                number = number * 10 + digit.to_digit(10).map_or(0, |digit| digit as usize);
                characters.next();
            }
            self.text.push('$');
            self.text.push_str(&(number + offset).to_string());
        }
        self.binds.extend(other.binds.iter().cloned());
        self
    }

    /// `(a, b, c)` of text binds.
    pub(crate) fn bind_text_list<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> &mut Sql {
        self.push("(");
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.bind_text(value);
        }
        self.push(")")
    }
}

/// Most bound values one statement may have: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (PostgreSQL allows
/// 65,535), so the same statement runs on both.
pub(crate) const MAX_BINDS: usize = 32_766;

/// Deepest expression one statement may hold, as [`Sql::expression_depth`] estimates it: below SQLite's
/// `SQLITE_MAX_EXPR_DEPTH` (1,000), with room for what the estimate does not see.
pub(crate) const MAX_EXPRESSION_DEPTH: usize = 900;

impl Sql {
    /// Refuses a statement that the database would refuse for its size: more than [`MAX_BINDS`] bound values
    /// or an expression deeper than [`MAX_EXPRESSION_DEPTH`]. Checked before every execution, so a request
    /// that compiles to such a statement is a client error naming the limit, not a database failure.
    pub(crate) fn check_limits(&self) -> Result<(), StoreError> {
        if self.binds.len() > MAX_BINDS {
            return Err(StoreError::LimitExceeded(format!(
                "the request needs {} bound values in one database statement, more than the limit of {MAX_BINDS}; ask for fewer values",
                self.binds.len()
            )));
        }
        let depth = self.expression_depth();
        if depth > MAX_EXPRESSION_DEPTH {
            return Err(StoreError::LimitExceeded(format!(
                "the request compiles to a database expression {depth} levels deep, more than the limit of {MAX_EXPRESSION_DEPTH}; ask for fewer parameters or values"
            )));
        }
        Ok(())
    }

    /// An upper estimate of the depth of the statement's expression tree, from its text (which this crate
    /// writes; values are binds, so no literal can hold a parenthesis or a keyword): `a AND b AND c` is a
    /// tree as deep as its operators are many, and each parenthesised group adds its own depth below
    /// them. SQLite counts subqueries into the depth of the expression holding them, so the whole statement
    /// is one tree.
    fn expression_depth(&self) -> usize {
        // One frame per open parenthesis: (operators at this level, deepest group inside).
        let mut frames: Vec<(usize, usize)> = vec![(0, 0)];
        let text = self.text.as_bytes();
        for (index, byte) in text.iter().enumerate() {
            match byte {
                b'(' => frames.push((0, 0)),
                b')' if frames.len() > 1 => {
                    if let Some((operators, inner)) = frames.pop()
                        && let Some(parent) = frames.last_mut()
                    {
                        parent.1 = parent.1.max(operators + inner + 1);
                    }
                }
                b' ' => {
                    let rest = &text[index..];
                    if (rest.starts_with(b" AND ") || rest.starts_with(b" OR "))
                        && let Some(frame) = frames.last_mut()
                    {
                        frame.0 += 1;
                    }
                }
                _ => {}
            }
        }
        frames.iter().map(|(operators, inner)| operators + inner + 1).max().unwrap_or(1)
    }
}

/// Builds a runnable query from [`Sql`] for the backend of `$db`. Returns early from the enclosing function
/// with [`StoreError::LimitExceeded`] when the statement is past a size limit ([`Sql::check_limits`]).
macro_rules! query_of {
    ($sql:expr) => {{
        let sql: &$crate::sql::Sql = $sql;
        sql.check_limits()?;
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql.text.clone()));
        for bind in &sql.binds {
            query = match bind {
                $crate::sql::Bind::Int(value) => query.bind(*value),
                $crate::sql::Bind::Float(value) => query.bind(*value),
                $crate::sql::Bind::Text(value) => query.bind(value.clone()),
                $crate::sql::Bind::OptText(value) => query.bind(value.clone()),
            };
        }
        query
    }};
}
pub(crate) use query_of;

/// Most binds [`pack`] puts in one statement (PostgreSQL allows 65,535).
const MAX_PACKED_BINDS: usize = 30_000;

/// Packs independent data-modifying statements into as few PostgreSQL statements as possible, as data-modifying
/// `WITH` parts (`WITH p1 AS (DELETE …), p2 AS (INSERT …) INSERT …`): one round trip instead of one per table.
/// The parts run on one snapshot, so a `DELETE` never sees the rows an `INSERT` of the same statement adds.
pub(crate) fn pack(statements: Vec<Sql>) -> Vec<Sql> {
    let mut groups: Vec<Vec<Sql>> = Vec::new();
    let mut group_binds = 0;
    for statement in statements {
        let fits =
            groups.last().is_some() && group_binds + statement.binds.len() <= MAX_PACKED_BINDS;
        if !fits {
            groups.push(Vec::new());
            group_binds = 0;
        }
        group_binds += statement.binds.len();
        if let Some(group) = groups.last_mut() {
            group.push(statement);
        }
    }
    groups
        .into_iter()
        .filter_map(|mut group| {
            let last = group.pop()?;
            if group.is_empty() {
                return Some(last);
            }
            let mut packed = Sql::new("WITH ");
            for (index, part) in group.iter().enumerate() {
                if index > 0 {
                    packed.push(", ");
                }
                packed.push(&format!("p{index} AS (")).append(part).push(")");
            }
            packed.push(" ").append(&last);
            Some(packed)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_renumbers_placeholders() {
        let mut first = Sql::new("DELETE FROM a WHERE x = ");
        first.bind_text("1").push(" AND y = ").bind_text("2");
        let mut second = Sql::new("INSERT INTO b VALUES (");
        second.bind_int(3).push(", ").bind_int(4).push(")");
        let packed = pack(vec![first, second]);
        assert_eq!(packed.len(), 1);
        assert_eq!(
            packed[0].text,
            "WITH p0 AS (DELETE FROM a WHERE x = $1 AND y = $2) INSERT INTO b VALUES ($3, $4)"
        );
        assert_eq!(packed[0].binds.len(), 4);
        assert!(pack(Vec::new()).is_empty());
    }
}
