//! What the tests of the built binary share: a PostgreSQL schema of a test's own.

use sqlx::Connection;

/// A PostgreSQL schema of the test's own (the way the end-to-end tests make theirs), dropped with it.
pub(crate) struct Schema {
    admin_url: String,
    name: String,
}

impl Schema {
    /// A new schema named `{prefix}_{process}_{nanoseconds}`.
    pub(crate) fn create(prefix: &str) -> Schema {
        // `TEST_DATABASE_URL`, the default address, or a throwaway cluster (see cdr-test-postgres).
        let admin_url = cdr_test_postgres::admin_url().to_owned();
        let name = format!(
            "{prefix}_{}_{}",
            std::process::id(),
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
        );
        run_admin(&admin_url, &format!("CREATE SCHEMA {name}"));
        Schema { admin_url, name }
    }

    /// The URL of the schema, whose connections carry its name as their `application_name`.
    pub(crate) fn url(&self) -> String {
        let separator = if self.admin_url.contains('?') { '&' } else { '?' };
        format!(
            "{}{separator}options=-c%20search_path%3D{}&application_name={}",
            self.admin_url, self.name, self.name
        )
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        run_admin(&self.admin_url, &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

fn run_admin(admin_url: &str, sql: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut admin = sqlx::PgConnection::connect(admin_url).await.unwrap_or_else(|error| {
            panic!(
                "PostgreSQL tests cannot connect to {admin_url} (TEST_DATABASE_URL when set, else the \
                 default address or the tests' throwaway cluster): {error}"
            )
        });
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(&mut admin).await.unwrap();
    });
}
