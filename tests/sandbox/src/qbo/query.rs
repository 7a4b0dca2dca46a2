//! The QBO query language subset:
//! `SELECT * | COUNT(*) | fields FROM Entity [WHERE c AND c …] [ORDER BY f [ASC|DESC], …]
//!  [STARTPOSITION n] [MAXRESULTS m]` with `=, <, >, <=, >=, IN, LIKE`.

use super::entity::EntityKind;
use super::fault::Fault;
use super::format::{decimal, parse_datetime};
use super::store::Realm;
use serde_json::{json, Map, Value};
use std::cmp::Ordering;
use time::UtcOffset;

pub const MAX_RESULTS_LIMIT: usize = 1000;
pub const DEFAULT_MAX_RESULTS: usize = 100;

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Text(String),
    Number(String),
    Bool(bool),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
    Like,
    In,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub field: String,
    pub op: Op,
    pub values: Vec<Literal>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub count: bool,
    pub entity: String,
    pub conditions: Vec<Condition>,
    pub order_by: Vec<(String, bool)>,
    pub start_position: Option<usize>,
    pub max_results: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Text(String),
    Number(String),
    Symbol(&'static str),
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Token::Word(w) => w.clone(),
            Token::Text(t) => format!("'{t}'"),
            Token::Number(n) => n.clone(),
            Token::Symbol(s) => (*s).to_string(),
        }
    }
}

fn tokenize(input: &str) -> Result<Vec<(Token, usize)>, Fault> {
    let chars: Vec<char> = input.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '\'' {
            // A backslash escapes the next character (`O\'Brien`).
            let mut text = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(Fault::query_parse(format!(
                            "Lexical error at line 1, column {}. Encountered: <EOF> in a string literal",
                            i + 1
                        )))
                    }
                    Some('\\') => {
                        if let Some(next) = chars.get(i + 1) {
                            text.push(*next);
                        }
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(other) => {
                        text.push(*other);
                        i += 1;
                    }
                }
            }
            tokens.push((Token::Text(text), start));
            continue;
        }
        if c.is_ascii_digit() || (c == '-' && chars.get(i + 1).is_some_and(|n| n.is_ascii_digit()))
        {
            let mut text = String::from(c);
            i += 1;
            while let Some(n) = chars.get(i).filter(|n| n.is_ascii_digit() || **n == '.') {
                text.push(*n);
                i += 1;
            }
            tokens.push((Token::Number(text), start));
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut word = String::new();
            while let Some(n) = chars
                .get(i)
                .filter(|n| n.is_alphanumeric() || **n == '_' || **n == '.')
            {
                word.push(*n);
                i += 1;
            }
            tokens.push((Token::Word(word), start));
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let symbol = match two.as_str() {
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => None,
        };
        if let Some(s) = symbol {
            tokens.push((Token::Symbol(s), start));
            i += 2;
            continue;
        }
        let symbol = match c {
            '=' => "=",
            '<' => "<",
            '>' => ">",
            '(' => "(",
            ')' => ")",
            ',' => ",",
            '*' => "*",
            _ => {
                return Err(Fault::query_parse(format!(
                    "Lexical error at line 1, column {}. Encountered: \"{c}\"",
                    i + 1
                )))
            }
        };
        tokens.push((Token::Symbol(symbol), start));
        i += 1;
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<(Token, usize)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn error(&self, expected: &str) -> Fault {
        match self.tokens.get(self.pos) {
            Some((token, col)) => Fault::query_parse(format!(
                "Encountered \" {} \" at line 1, column {}. Was expecting {expected}",
                token.describe(),
                col + 1
            )),
            None => Fault::query_parse(format!(
                "Encountered \"<EOF>\" at end of query. Was expecting {expected}"
            )),
        }
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).map(|(t, _)| t.clone());
        self.pos += 1;
        t
    }

    fn keyword(&mut self, word: &str) -> bool {
        if matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(word)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_keyword(&mut self, word: &str) -> Result<(), Fault> {
        if self.keyword(word) {
            Ok(())
        } else {
            Err(self.error(word))
        }
    }

    fn symbol(&mut self, s: &str) -> bool {
        if matches!(self.peek(), Some(Token::Symbol(x)) if *x == s) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_symbol(&mut self, s: &str) -> Result<(), Fault> {
        if self.symbol(s) {
            Ok(())
        } else {
            Err(self.error(&format!("\"{s}\"")))
        }
    }

    fn identifier(&mut self) -> Result<String, Fault> {
        match self.peek() {
            Some(Token::Word(w)) if !is_reserved(w) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => Err(self.error("<IDENTIFIER>")),
        }
    }

    fn literal(&mut self) -> Result<Literal, Fault> {
        match self.peek().cloned() {
            Some(Token::Text(t)) => {
                self.pos += 1;
                Ok(Literal::Text(t))
            }
            Some(Token::Number(n)) => {
                self.pos += 1;
                Ok(Literal::Number(n))
            }
            Some(Token::Word(w))
                if w.eq_ignore_ascii_case("true") || w.eq_ignore_ascii_case("false") =>
            {
                self.pos += 1;
                Ok(Literal::Bool(w.eq_ignore_ascii_case("true")))
            }
            _ => Err(self.error("a value")),
        }
    }

    fn count(&mut self) -> Result<usize, Fault> {
        match self.next() {
            Some(Token::Number(n)) => n
                .parse()
                .map_err(|_| Fault::query_parse(format!("Invalid number {n}"))),
            Some(Token::Text(n)) => n
                .parse()
                .map_err(|_| Fault::query_parse(format!("Invalid number {n}"))),
            _ => {
                self.pos -= 1;
                Err(self.error("<INTEGER>"))
            }
        }
    }
}

fn is_reserved(word: &str) -> bool {
    [
        "select",
        "from",
        "where",
        "and",
        "or",
        "order",
        "orderby",
        "by",
        "startposition",
        "maxresults",
        "in",
        "like",
    ]
    .iter()
    .any(|r| r.eq_ignore_ascii_case(word))
}

pub fn parse(input: &str) -> Result<Statement, Fault> {
    let trimmed = input.trim().trim_end_matches(';');
    let mut p = Parser {
        tokens: tokenize(trimmed)?,
        pos: 0,
    };
    p.expect_keyword("select")?;
    let mut count = false;
    if matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("count")) {
        p.pos += 1;
        p.expect_symbol("(")?;
        p.expect_symbol("*")?;
        p.expect_symbol(")")?;
        count = true;
    } else {
        // `*`, a field list, or `*, Sku` — projections are accepted and whole objects returned.
        loop {
            if !p.symbol("*") {
                p.identifier()?;
            }
            if !p.symbol(",") {
                break;
            }
        }
    }
    p.expect_keyword("from")?;
    let entity = p.identifier()?;
    let mut conditions = Vec::new();
    if p.keyword("where") {
        loop {
            conditions.push(parse_condition(&mut p)?);
            if p.keyword("and") {
                continue;
            }
            if matches!(p.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case("or")) {
                return Err(p.error("AND (OR is not supported)"));
            }
            break;
        }
    }
    let mut order_by = Vec::new();
    let mut start_position = None;
    let mut max_results = None;
    loop {
        if p.keyword("orderby") || (p.keyword("order") && p.expect_keyword("by").is_ok()) {
            loop {
                let field = p.identifier()?;
                let descending = if p.keyword("desc") {
                    true
                } else {
                    p.keyword("asc");
                    false
                };
                order_by.push((field, descending));
                if !p.symbol(",") {
                    break;
                }
            }
        } else if p.keyword("startposition") {
            start_position = Some(p.count()?);
        } else if p.keyword("maxresults") {
            max_results = Some(p.count()?);
        } else if p.peek().is_none() {
            break;
        } else {
            return Err(p.error("ORDERBY, STARTPOSITION, MAXRESULTS or <EOF>"));
        }
    }
    Ok(Statement {
        count,
        entity,
        conditions,
        order_by,
        start_position,
        max_results,
    })
}

fn parse_condition(p: &mut Parser) -> Result<Condition, Fault> {
    let field = p.identifier()?;
    let op = if p.symbol("=") {
        Op::Eq
    } else if p.symbol("<=") {
        Op::Le
    } else if p.symbol(">=") {
        Op::Ge
    } else if p.symbol("<") {
        Op::Lt
    } else if p.symbol(">") {
        Op::Gt
    } else if p.keyword("like") {
        Op::Like
    } else if p.keyword("in") {
        Op::In
    } else {
        return Err(p.error("one of =, <, >, <=, >=, IN, LIKE"));
    };
    let values = if op == Op::In {
        p.expect_symbol("(")?;
        let mut values = vec![p.literal()?];
        while p.symbol(",") {
            values.push(p.literal()?);
        }
        p.expect_symbol(")")?;
        values
    } else {
        vec![p.literal()?]
    };
    Ok(Condition { field, op, values })
}

/// Looks a dotted path up case-insensitively; references compare by `value`, emails by `Address`.
pub fn field_value<'a>(entity: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = entity;
    for segment in path.split('.') {
        let map = current.as_object()?;
        current = map.get(segment).or_else(|| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                .map(|(_, v)| v)
        })?;
    }
    if let Some(map) = current.as_object() {
        for key in ["value", "Address", "FreeFormNumber", "URI"] {
            if let Some(v) = map.get(key) {
                return Some(v);
            }
        }
    }
    Some(current)
}

fn literal_text(lit: &Literal) -> String {
    match lit {
        Literal::Text(t) | Literal::Number(t) => t.clone(),
        Literal::Bool(b) => b.to_string(),
    }
}

/// Orders a stored value against a literal: booleans, then numbers, then date-times, then text
/// (case-insensitive).
fn compare(value: &Value, lit: &Literal, offset: UtcOffset) -> Option<Ordering> {
    if let Literal::Bool(b) = lit {
        return value.as_bool().map(|v| v.cmp(b));
    }
    let text = literal_text(lit);
    let stored = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    if let (Some(a), Some(b)) = (
        decimal(&Value::String(stored.clone())),
        decimal(&Value::String(text.clone())),
    ) {
        return Some(a.cmp(&b));
    }
    if stored.contains('-') && text.contains('-') {
        if let (Some(a), Some(b)) = (
            parse_datetime(&stored, offset),
            parse_datetime(&text, offset),
        ) {
            return Some(a.cmp(&b));
        }
    }
    Some(stored.to_lowercase().cmp(&text.to_lowercase()))
}

/// `%` matches any run of characters; matching is case-insensitive.
fn like(value: &str, pattern: &str) -> bool {
    let value = value.to_lowercase();
    let pattern = pattern.to_lowercase();
    crate::common::faults::glob_match(
        &pattern.replace('*', "\u{0}").replace('%', "*"),
        &value.replace('*', "\u{0}"),
    )
}

fn matches(entity: &Value, condition: &Condition, offset: UtcOffset) -> bool {
    let Some(value) = field_value(entity, &condition.field) else {
        return false;
    };
    let first = &condition.values[0];
    match condition.op {
        Op::Eq => compare(value, first, offset) == Some(Ordering::Equal),
        Op::Lt => compare(value, first, offset) == Some(Ordering::Less),
        Op::Gt => compare(value, first, offset) == Some(Ordering::Greater),
        Op::Le => matches!(
            compare(value, first, offset),
            Some(Ordering::Less | Ordering::Equal)
        ),
        Op::Ge => matches!(
            compare(value, first, offset),
            Some(Ordering::Greater | Ordering::Equal)
        ),
        Op::In => condition
            .values
            .iter()
            .any(|lit| compare(value, lit, offset) == Some(Ordering::Equal)),
        Op::Like => value
            .as_str()
            .is_some_and(|s| like(s, &literal_text(first))),
    }
}

fn order_values(a: Option<&Value>, b: Option<&Value>, offset: UtcOffset) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => {
            let as_lit = match b {
                Value::Bool(v) => Literal::Bool(*v),
                Value::Number(n) => Literal::Number(n.to_string()),
                Value::String(s) => Literal::Text(s.clone()),
                other => Literal::Text(other.to_string()),
            };
            compare(a, &as_lit, offset).unwrap_or(Ordering::Equal)
        }
    }
}

/// Runs a statement against a realm, returning the value of `QueryResponse`.
pub fn execute(realm: &Realm, statement: &str, offset: UtcOffset) -> Result<Value, Fault> {
    let stmt = parse(statement)?;
    let kind = EntityKind::from_name(&stmt.entity).ok_or_else(|| {
        Fault::query_validation(format!("invalid context declaration: {}", stmt.entity))
    })?;
    let named = stmt
        .conditions
        .iter()
        .map(|c| c.field.as_str())
        .chain(stmt.order_by.iter().map(|(field, _)| field.as_str()));
    for field in named {
        if !kind.queryable(field) {
            return Err(Fault::query_validation(format!(
                "property '{field}' is not queryable for entity '{}'",
                kind.name()
            )));
        }
    }
    let filters_active = stmt
        .conditions
        .iter()
        .any(|c| c.field.eq_ignore_ascii_case("Active"));
    let mut rows: Vec<&Value> = realm
        .values(kind)
        .filter(|v| !kind.is_name_list() || filters_active || super::rules::is_active(v))
        .filter(|v| stmt.conditions.iter().all(|c| matches(v, c, offset)))
        .collect();
    if stmt.count {
        return Ok(json!({"totalCount": rows.len()}));
    }
    if !stmt.order_by.is_empty() {
        rows.sort_by(|a, b| {
            for (field, descending) in &stmt.order_by {
                let o = order_values(field_value(a, field), field_value(b, field), offset);
                let o = if *descending { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            Ordering::Equal
        });
    }
    let start = stmt.start_position.unwrap_or(1).max(1);
    let max = stmt
        .max_results
        .unwrap_or(DEFAULT_MAX_RESULTS)
        .min(MAX_RESULTS_LIMIT);
    let page: Vec<Value> = rows
        .into_iter()
        .skip(start - 1)
        .take(max)
        .cloned()
        .collect();
    if page.is_empty() {
        return Ok(json!({}));
    }
    let mut response = Map::new();
    response.insert("startPosition".into(), Value::from(start));
    response.insert("maxResults".into(), Value::from(page.len()));
    response.insert(kind.name().into(), Value::Array(page));
    Ok(Value::Object(response))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdt() -> UtcOffset {
        UtcOffset::from_hms(-7, 0, 0).unwrap_or(UtcOffset::UTC)
    }

    #[test]
    fn parses_the_full_grammar() {
        let s = parse("select * from Customer where DisplayName LIKE '%Bob%' AND Balance > '10.5' AND Id IN ('1', '2') Order By DisplayName DESC, Id STARTPOSITION 11 MAXRESULTS 10");
        let s = s.unwrap_or_else(|f| panic!("{f:?}"));
        assert!(!s.count);
        assert_eq!(s.entity, "Customer");
        assert_eq!(s.conditions.len(), 3);
        assert_eq!(s.conditions[2].op, Op::In);
        assert_eq!(
            s.order_by,
            vec![("DisplayName".into(), true), ("Id".into(), false)]
        );
        assert_eq!(s.start_position, Some(11));
        assert_eq!(s.max_results, Some(10));
    }

    #[test]
    fn escaped_quotes_stay_in_the_literal() {
        let s = parse(r"SELECT * FROM Customer WHERE DisplayName = 'O\'Brien\'s'")
            .unwrap_or_else(|f| panic!("{f:?}"));
        assert_eq!(
            s.conditions[0].values,
            vec![Literal::Text("O'Brien's".into())]
        );
    }

    #[test]
    fn count_and_projection_forms() {
        assert!(parse("SELECT COUNT(*) FROM Invoice")
            .map(|s| s.count)
            .unwrap_or(false));
        assert!(parse("SELECT *, Sku FROM Item").is_ok());
        assert!(parse("Select Id, GivenName From Customer").is_ok());
        assert!(parse("SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime").is_ok());
    }

    #[test]
    fn syntax_errors_are_4000() {
        for bad in [
            "SELECT * FROM",
            "SELECT * Customer",
            "SELECT * FROM Customer WHERE",
            "SELECT * FROM Customer WHERE Name = 'x' OR Id = '1'",
            "SELECT * FROM Customer WHERE Name = 'unterminated",
            "SELECT * FROM Customer MAXRESULTS many",
            "DELETE FROM Customer",
        ] {
            let err = parse(bad).err().map(|f| f.code().to_string());
            assert_eq!(err.as_deref(), Some("4000"), "{bad}");
        }
    }

    #[test]
    fn comparisons_pick_the_right_type() {
        let off = pdt();
        assert_eq!(
            compare(&json!("10"), &Literal::Text("9".into()), off),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&json!(300.5), &Literal::Text("300.00".into()), off),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(
                &json!("2025-01-01T10:00:00-07:00"),
                &Literal::Text("2025-01-01T16:00:00Z".into()),
                off
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare(&json!("Bob"), &Literal::Text("bob".into()), off),
            Some(Ordering::Equal)
        );
        assert!(like("Amy's Bird Sanctuary", "%bird%"));
        assert!(like("Amy's Bird Sanctuary", "Amy%"));
        assert!(!like("Amy's Bird Sanctuary", "%Fish%"));
    }

    #[test]
    fn nested_and_reference_fields() {
        let c = json!({"PrimaryEmailAddr": {"Address": "a@b.c"}, "MetaData": {"LastUpdatedTime": "x"}, "CustomerRef": {"value": "5"}});
        assert_eq!(field_value(&c, "PrimaryEmailAddr"), Some(&json!("a@b.c")));
        assert_eq!(
            field_value(&c, "Metadata.LastUpdatedTime"),
            Some(&json!("x"))
        );
        assert_eq!(field_value(&c, "CustomerRef"), Some(&json!("5")));
    }
}
