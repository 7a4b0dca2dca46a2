//! QBO query statements, built from parts so that no value is ever pasted in unescaped.
//!
//! `SELECT * FROM <Entity> [WHERE a AND b …] [ORDERBY f ASC|DESC] [STARTPOSITION n]
//! [MAXRESULTS m]`: only AND, operators `= < > <= >= IN LIKE`, values single-quoted with `\'`
//! for an apostrophe (and, UNCONFIRMED for QuickBooks, `\\` for a backslash).

use std::fmt::Write;

/// QBO's largest page.
pub const MAX_RESULTS: u32 = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    entity: &'static str,
    projection: &'static str,
    conditions: Vec<String>,
    order: Option<(&'static str, Order)>,
    start: u32,
    max: u32,
}

/// A value as QBO reads it: single-quoted, with `'` and `\` escaped.
pub fn quote(value: &str) -> String {
    let mut quoted = String::with_capacity(value.len() + 2);
    quoted.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            quoted.push('\\');
        }
        quoted.push(c);
    }
    quoted.push('\'');
    quoted
}

impl Query {
    /// `SELECT * FROM entity`. Field names are the code's own constants, never outside text.
    pub fn select(entity: &'static str) -> Self {
        Self {
            entity,
            projection: "*",
            conditions: Vec::new(),
            order: None,
            start: 1,
            max: MAX_RESULTS,
        }
    }

    /// `SELECT *, Sku FROM Item`: QuickBooks leaves `Sku` out unless it is asked for.
    pub fn with_projection(mut self, projection: &'static str) -> Self {
        self.projection = projection;
        self
    }

    pub fn entity(&self) -> &'static str {
        self.entity
    }

    fn condition(mut self, field: &'static str, operator: &str, value: &str) -> Self {
        self.conditions
            .push(format!("{field} {operator} {}", quote(value)));
        self
    }

    pub fn eq(self, field: &'static str, value: &str) -> Self {
        self.condition(field, "=", value)
    }

    pub fn gt(self, field: &'static str, value: &str) -> Self {
        self.condition(field, ">", value)
    }

    pub fn ge(self, field: &'static str, value: &str) -> Self {
        self.condition(field, ">=", value)
    }

    pub fn le(self, field: &'static str, value: &str) -> Self {
        self.condition(field, "<=", value)
    }

    pub fn lt(self, field: &'static str, value: &str) -> Self {
        self.condition(field, "<", value)
    }

    /// `field LIKE 'prefix%'`: values starting with `prefix` (a `%` typed in it is dropped,
    /// as QBO has no way to escape it).
    pub fn starts_with(self, field: &'static str, prefix: &str) -> Self {
        let prefix: String = prefix.chars().filter(|c| *c != '%').collect();
        self.condition(field, "LIKE", &format!("{prefix}%"))
    }

    /// `field IN ('a', 'b')`; an empty list matches nothing, so the caller should not ask.
    pub fn any_of<'a>(
        mut self,
        field: &'static str,
        values: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        let list: Vec<String> = values.into_iter().map(quote).collect();
        self.conditions
            .push(format!("{field} IN ({})", list.join(", ")));
        self
    }

    /// Name lists answer active records only unless a query names `Active`.
    pub fn active_or_not(mut self) -> Self {
        self.conditions.push("Active IN (true, false)".to_owned());
        self
    }

    pub fn order_by(mut self, field: &'static str, order: Order) -> Self {
        self.order = Some((field, order));
        self
    }

    /// The page starting at the 1-based `start`, of at most `max` (≤ 1000) rows.
    pub fn page(mut self, start: u32, max: u32) -> Self {
        self.start = start.max(1);
        self.max = max.clamp(1, MAX_RESULTS);
        self
    }

    pub fn start(&self) -> u32 {
        self.start
    }

    pub fn max(&self) -> u32 {
        self.max
    }

    /// The next page of the same query.
    pub fn next_page(&self) -> Self {
        let mut next = self.clone();
        next.start = self.start + self.max;
        next
    }

    pub fn statement(&self) -> String {
        let mut text = format!("SELECT {} FROM {}", self.projection, self.entity);
        if !self.conditions.is_empty() {
            let _ = write!(text, " WHERE {}", self.conditions.join(" AND "));
        }
        if let Some((field, order)) = self.order {
            let word = match order {
                Order::Asc => "ASC",
                Order::Desc => "DESC",
            };
            let _ = write!(text, " ORDERBY {field} {word}");
        }
        let _ = write!(
            text,
            " STARTPOSITION {} MAXRESULTS {}",
            self.start, self.max
        );
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let cases = [
            ("O'Brien", r"'O\'Brien'"),
            ("Amy's Bird Sanctuary", r"'Amy\'s Bird Sanctuary'"),
            (r"back\slash", r"'back\\slash'"),
            (r"end\", r"'end\\'"),
            (r"' OR Id > '0", r"'\' OR Id > \'0'"),
            ("", "''"),
            ("Zoë & Co", "'Zoë & Co'"),
        ];
        for (value, quoted) in cases {
            assert_eq!(quote(value), quoted, "{value:?}");
        }
    }

    #[test]
    fn statements_have_the_documented_shape() {
        let query = Query::select("Customer")
            .eq("PrimaryEmailAddr", "o'brien@example.com")
            .active_or_not()
            .order_by("MetaData.LastUpdatedTime", Order::Asc)
            .page(1, 1000);
        assert_eq!(
            query.statement(),
            r"SELECT * FROM Customer WHERE PrimaryEmailAddr = 'o\'brien@example.com' AND Active IN (true, false) ORDERBY MetaData.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 1000"
        );
        let items = Query::select("Item")
            .with_projection("*, Sku")
            .any_of("Sku", ["A-1", "B'2"])
            .page(0, 5000);
        assert_eq!(
            items.statement(),
            r"SELECT *, Sku FROM Item WHERE Sku IN ('A-1', 'B\'2') STARTPOSITION 1 MAXRESULTS 1000"
        );
        assert_eq!(items.next_page().start(), 1001);
        let window = Query::select("Customer")
            .gt("MetaData.LastUpdatedTime", "2026-11-01T00:00:00-07:00")
            .le("MetaData.LastUpdatedTime", "2026-11-02T00:00:00-07:00");
        assert!(window.statement().contains(
            "MetaData.LastUpdatedTime > '2026-11-01T00:00:00-07:00' AND MetaData.LastUpdatedTime <= '2026-11-02T00:00:00-07:00'"
        ));
        let typed = Query::select("Customer").starts_with("DisplayName", "Amy's 100%");
        assert!(typed
            .statement()
            .ends_with(r"WHERE DisplayName LIKE 'Amy\'s 100%' STARTPOSITION 1 MAXRESULTS 1000"));
    }
}
