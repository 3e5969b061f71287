//! Fixed-shape batch statements: a batch's rows travel as ONE JSON array parameter and the
//! statement reads them back as a table (`jsonb_each` on SQLite, `jsonb_array_elements` on
//! PostgreSQL).
//!
//! Why: a multi-row `VALUES (…), (…)` statement has another SQL text for every row count, so
//! each batch size is parsed and planned again and fills the connections' statement caches
//! with one-off texts (the memory growth BENCHMARKS.md records). One text per statement is prepared once
//! per connection and reused for every batch, and one bound string replaces a bound value
//! per column and row.

use sea_orm::{DatabaseBackend, DbErr, Statement, Value};
use serde::Serialize;

/// The SQL type a column of the rows is read as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Col {
    Text,
    BigInt,
    SmallInt,
}

impl Col {
    fn postgres(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::BigInt => "bigint",
            Self::SmallInt => "smallint",
        }
    }
}

/// `SELECT … AS c0, … AS c1, … FROM <the array parameter> WHERE true`: a table with one row
/// per element of the bound array, column `ci` being element `i` of the row's inner array.
/// (`WHERE true` lets SQLite parse an `INSERT … SELECT` followed by `ON CONFLICT`.)
pub(crate) fn select(backend: DatabaseBackend, cols: &[Col]) -> String {
    let mut sql = String::from("SELECT ");
    for (i, col) in cols.iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        match backend {
            DatabaseBackend::Postgres => {
                sql.push_str(&format!("(r->>{i})::{} AS c{i}", col.postgres()));
            }
            _ => sql.push_str(&format!("r.value->>{i} AS c{i}")),
        }
    }
    match backend {
        DatabaseBackend::Postgres => sql.push_str(" FROM jsonb_array_elements($1::jsonb) AS r"),
        // `jsonb_each` hands each row over as a JSONB blob, which `->>` reads as it is;
        // `json_each` would hand it over as JSON text for `->>` to parse.
        _ => sql.push_str(" FROM jsonb_each(?) AS r"),
    }
    sql.push_str(" WHERE true");
    sql
}

/// The statement `sql` (built on [`select`]) with `rows` bound as its one parameter. Each
/// row serializes as a JSON array (a tuple), in column order.
pub(crate) fn statement<R: Serialize>(
    backend: DatabaseBackend,
    sql: &str,
    rows: &[R],
) -> Result<Statement, DbErr> {
    let json = serde_json::to_string(rows).map_err(|e| DbErr::Custom(e.to_string()))?;
    Ok(Statement::from_sql_and_values(
        backend,
        sql,
        [Value::from(json)],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_text_whatever_the_row_count() {
        let cols = [Col::Text, Col::BigInt, Col::SmallInt];
        assert_eq!(
            select(DatabaseBackend::Sqlite, &cols),
            "SELECT r.value->>0 AS c0, r.value->>1 AS c1, r.value->>2 AS c2 \
             FROM jsonb_each(?) AS r WHERE true"
        );
        assert_eq!(
            select(DatabaseBackend::Postgres, &cols),
            "SELECT (r->>0)::text AS c0, (r->>1)::bigint AS c1, (r->>2)::smallint AS c2 \
             FROM jsonb_array_elements($1::jsonb) AS r WHERE true"
        );
    }
}
