//! A small SQL text builder shared by both backends: fragments are static text written in this crate, values
//! are always `$n` bind parameters (both PostgreSQL and SQLite accept that placeholder form).

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

/// Builds a runnable query from [`Sql`] for the backend of `$db`.
macro_rules! query_of {
    ($sql:expr) => {{
        let sql: &$crate::sql::Sql = $sql;
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
