//! The part of CEL that functions use in triggers, `waitForEvent` ifs, cancellations and
//! concurrency keys: field paths on `event` and `async`, string/number/bool/null literals,
//! `== != < <= > >=`, `&& || !` and parentheses. Anything else is rejected when the function is
//! registered, so a run never fails on an expression it cannot read.

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExprError {
    #[error("unexpected character `{ch}` at {pos}")]
    UnexpectedChar { ch: char, pos: usize },
    #[error("unterminated string starting at {0}")]
    UnterminatedString(usize),
    #[error("unexpected {found} at {pos}, expected {expected}")]
    Unexpected {
        found: String,
        expected: &'static str,
        pos: usize,
    },
    #[error("unknown variable `{0}`; only {1} may be used here")]
    UnknownRoot(String, &'static str),
    #[error("functions and macros are not supported (`{0}(`)")]
    Call(String),
    #[error("expression is empty")]
    Empty,
}

/// Which variables an expression may mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Trigger expressions and keys: only the event itself.
    Event,
    /// `waitForEvent` and `cancel` conditions: the run's trigger `event` and the incoming `async`.
    EventAndAsync,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Event,
    Async,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Key(String),
    Index(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Lit(Value),
    Path(Root, Vec<Segment>),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cmp(CmpOp, Box<Node>, Box<Node>),
}

/// A parsed expression, kept with its source text.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    source: String,
    root: Node,
}

impl Expression {
    pub fn parse(source: &str, scope: Scope) -> Result<Expression, ExprError> {
        let tokens = lex(source)?;
        if tokens.is_empty() {
            return Err(ExprError::Empty);
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            scope,
        };
        let root = parser.or()?;
        if let Some((tok, pos)) = parser.tokens.get(parser.pos) {
            return Err(ExprError::Unexpected {
                found: tok.describe(),
                expected: "end of expression",
                pos: *pos,
            });
        }
        Ok(Expression {
            source: source.to_string(),
            root,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value of the expression; a missing field is `null`.
    pub fn eval(&self, event: &Value, async_event: Option<&Value>) -> Value {
        eval(&self.root, event, async_event)
    }

    /// True only if the expression evaluates to the boolean `true`.
    pub fn matches(&self, event: &Value, async_event: Option<&Value>) -> bool {
        self.eval(event, async_event) == Value::Bool(true)
    }
}

fn eval(node: &Node, event: &Value, async_event: Option<&Value>) -> Value {
    match node {
        Node::Lit(v) => v.clone(),
        Node::Path(root, segs) => {
            let base = match root {
                Root::Event => Some(event),
                Root::Async => async_event,
            };
            let mut cur = base;
            for seg in segs {
                cur = match (seg, cur) {
                    (Segment::Key(k), Some(Value::Object(m))) => m.get(k),
                    (Segment::Index(i), Some(Value::Array(a))) => a.get(*i),
                    _ => None,
                };
            }
            cur.cloned().unwrap_or(Value::Null)
        }
        Node::Not(inner) => Value::Bool(!truthy(&eval(inner, event, async_event))),
        Node::And(a, b) => Value::Bool(
            truthy(&eval(a, event, async_event)) && truthy(&eval(b, event, async_event)),
        ),
        Node::Or(a, b) => Value::Bool(
            truthy(&eval(a, event, async_event)) || truthy(&eval(b, event, async_event)),
        ),
        Node::Cmp(op, a, b) => {
            let (l, r) = (eval(a, event, async_event), eval(b, event, async_event));
            Value::Bool(compare(*op, &l, &r))
        }
    }
}

fn truthy(v: &Value) -> bool {
    *v == Value::Bool(true)
}

fn compare(op: CmpOp, l: &Value, r: &Value) -> bool {
    use std::cmp::Ordering;
    let ord = match (l, r) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        _ => None,
    };
    let equal = match ord {
        Some(o) => o == Ordering::Equal,
        None => l == r,
    };
    match op {
        CmpOp::Eq => equal,
        CmpOp::Ne => !equal,
        // Ordering only means something between two numbers or two strings.
        CmpOp::Lt => numeric_or_string(l, r) && ord == Some(Ordering::Less),
        CmpOp::Le => {
            numeric_or_string(l, r) && matches!(ord, Some(Ordering::Less | Ordering::Equal))
        }
        CmpOp::Gt => numeric_or_string(l, r) && ord == Some(Ordering::Greater),
        CmpOp::Ge => {
            numeric_or_string(l, r) && matches!(ord, Some(Ordering::Greater | Ordering::Equal))
        }
    }
}

fn numeric_or_string(l: &Value, r: &Value) -> bool {
    matches!(
        (l, r),
        (Value::Number(_), Value::Number(_)) | (Value::String(_), Value::String(_))
    )
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Dot,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Cmp(CmpOp),
    And,
    Or,
    Not,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("string '{s}'"),
            Tok::Num(n) => format!("number {n}"),
            Tok::Dot => "`.`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Cmp(_) => "comparison".into(),
            Tok::And => "`&&`".into(),
            Tok::Or => "`||`".into(),
            Tok::Not => "`!`".into(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, ExprError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let two = |t: Tok| (t, 2usize);
        let single = match c {
            _ if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '.' if !next.is_some_and(|n| n.is_ascii_digit()) => Some((Tok::Dot, 1)),
            '[' => Some((Tok::LBracket, 1)),
            ']' => Some((Tok::RBracket, 1)),
            '(' => Some((Tok::LParen, 1)),
            ')' => Some((Tok::RParen, 1)),
            '=' if next == Some('=') => Some(two(Tok::Cmp(CmpOp::Eq))),
            '!' if next == Some('=') => Some(two(Tok::Cmp(CmpOp::Ne))),
            '!' => Some((Tok::Not, 1)),
            '<' if next == Some('=') => Some(two(Tok::Cmp(CmpOp::Le))),
            '<' => Some((Tok::Cmp(CmpOp::Lt), 1)),
            '>' if next == Some('=') => Some(two(Tok::Cmp(CmpOp::Ge))),
            '>' => Some((Tok::Cmp(CmpOp::Gt), 1)),
            '&' if next == Some('&') => Some(two(Tok::And)),
            '|' if next == Some('|') => Some(two(Tok::Or)),
            _ => None,
        };
        if let Some((tok, len)) = single {
            out.push((tok, pos));
            i += len;
            continue;
        }
        if c == '\'' || c == '"' {
            let mut s = String::new();
            let mut j = i + 1;
            loop {
                let Some(&(_, d)) = chars.get(j) else {
                    return Err(ExprError::UnterminatedString(pos));
                };
                if d == c {
                    break;
                }
                if d == '\\' {
                    let Some(&(_, e)) = chars.get(j + 1) else {
                        return Err(ExprError::UnterminatedString(pos));
                    };
                    s.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        other => other,
                    });
                    j += 2;
                } else {
                    s.push(d);
                    j += 1;
                }
            }
            out.push((Tok::Str(s), pos));
            i = j + 1;
            continue;
        }
        if c.is_ascii_digit() || c == '-' || c == '.' {
            let mut j = i + 1;
            while chars
                .get(j)
                .is_some_and(|(_, d)| d.is_ascii_digit() || matches!(d, '.' | 'e' | 'E'))
            {
                j += 1;
            }
            let end = chars.get(j).map(|(p, _)| *p).unwrap_or(src.len());
            let text = &src[pos..end];
            let num = text
                .parse::<i64>()
                .ok()
                .map(serde_json::Number::from)
                .or_else(|| {
                    text.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                })
                .ok_or(ExprError::UnexpectedChar { ch: c, pos })?;
            out.push((Tok::Num(num), pos));
            i = j;
            continue;
        }
        if c.is_alphabetic() || c == '_' {
            let mut j = i + 1;
            while chars
                .get(j)
                .is_some_and(|(_, d)| d.is_alphanumeric() || *d == '_')
            {
                j += 1;
            }
            let end = chars.get(j).map(|(p, _)| *p).unwrap_or(src.len());
            out.push((Tok::Ident(src[pos..end].to_string()), pos));
            i = j;
            continue;
        }
        return Err(ExprError::UnexpectedChar { ch: c, pos });
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(Tok, usize)>,
    pos: usize,
    scope: Scope,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(t, _)| t)
    }

    fn unexpected(&self, expected: &'static str) -> ExprError {
        match self.tokens.get(self.pos) {
            Some((tok, pos)) => ExprError::Unexpected {
                found: tok.describe(),
                expected,
                pos: *pos,
            },
            None => ExprError::Unexpected {
                found: "end of expression".into(),
                expected,
                pos: self.tokens.last().map(|(_, p)| *p + 1).unwrap_or(0),
            },
        }
    }

    fn or(&mut self) -> Result<Node, ExprError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::Or) {
            self.pos += 1;
            let right = self.and()?;
            left = Node::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Node, ExprError> {
        let mut left = self.unary()?;
        while self.peek() == Some(&Tok::And) {
            self.pos += 1;
            let right = self.unary()?;
            left = Node::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        if self.peek() == Some(&Tok::Not) {
            self.pos += 1;
            return Ok(Node::Not(Box::new(self.unary()?)));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Node, ExprError> {
        let left = self.primary()?;
        if let Some(Tok::Cmp(op)) = self.peek() {
            let op = *op;
            self.pos += 1;
            let right = self.primary()?;
            return Ok(Node::Cmp(op, Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let Some((tok, _)) = self.tokens.get(self.pos).cloned() else {
            return Err(self.unexpected("a value"));
        };
        self.pos += 1;
        match tok {
            Tok::Str(s) => Ok(Node::Lit(Value::String(s))),
            Tok::Num(n) => Ok(Node::Lit(Value::Number(n))),
            Tok::LParen => {
                let inner = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("`)`"));
                }
                self.pos += 1;
                Ok(inner)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" => Ok(Node::Lit(Value::Bool(true))),
                "false" => Ok(Node::Lit(Value::Bool(false))),
                "null" => Ok(Node::Lit(Value::Null)),
                _ if self.peek() == Some(&Tok::LParen) => Err(ExprError::Call(name)),
                "event" => self.path(Root::Event),
                "async" if self.scope == Scope::EventAndAsync => self.path(Root::Async),
                _ => Err(ExprError::UnknownRoot(
                    name,
                    match self.scope {
                        Scope::Event => "`event`",
                        Scope::EventAndAsync => "`event` and `async`",
                    },
                )),
            },
            _ => {
                self.pos -= 1;
                Err(self.unexpected("a value"))
            }
        }
    }

    fn path(&mut self, root: Root) -> Result<Node, ExprError> {
        let mut segs = Vec::new();
        loop {
            match self.peek() {
                Some(Tok::Dot) => {
                    self.pos += 1;
                    match self.tokens.get(self.pos).map(|(t, _)| t.clone()) {
                        Some(Tok::Ident(k)) => {
                            self.pos += 1;
                            if self.peek() == Some(&Tok::LParen) {
                                return Err(ExprError::Call(k));
                            }
                            segs.push(Segment::Key(k));
                        }
                        _ => return Err(self.unexpected("a field name")),
                    }
                }
                Some(Tok::LBracket) => {
                    self.pos += 1;
                    let seg = match self.tokens.get(self.pos).map(|(t, _)| t.clone()) {
                        Some(Tok::Str(k)) => Segment::Key(k),
                        Some(Tok::Num(n)) => match n.as_u64() {
                            Some(i) => Segment::Index(i as usize),
                            None => return Err(self.unexpected("an index")),
                        },
                        _ => return Err(self.unexpected("a string key or an index")),
                    };
                    self.pos += 1;
                    if self.peek() != Some(&Tok::RBracket) {
                        return Err(self.unexpected("`]`"));
                    }
                    self.pos += 1;
                    segs.push(seg);
                }
                _ => return Ok(Node::Path(root, segs)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wait(src: &str) -> Expression {
        Expression::parse(src, Scope::EventAndAsync).expect("valid expression")
    }

    #[test]
    fn matches_ticket_resolution_condition() {
        let e = wait("event.data.ticket_id == async.data.ticket_id && async.data.x != 'y'");
        let trigger = json!({"name": "ticket/created", "data": {"ticket_id": "t1"}});
        assert!(e.matches(
            &trigger,
            Some(&json!({"data": {"ticket_id": "t1", "x": "z"}}))
        ));
        assert!(!e.matches(
            &trigger,
            Some(&json!({"data": {"ticket_id": "t1", "x": "y"}}))
        ));
        assert!(!e.matches(&trigger, Some(&json!({"data": {"ticket_id": "t2"}}))));
        // A missing field is null, so `!=` holds.
        assert!(e.matches(&trigger, Some(&json!({"data": {"ticket_id": "t1"}}))));
    }

    #[test]
    fn booleans_numbers_nulls_and_grouping() {
        let ev = json!({"data": {"ok": true, "n": 3, "f": 2.5, "s": "b", "list": [10, 20]}});
        let t = |src: &str| {
            Expression::parse(src, Scope::Event)
                .expect("valid expression")
                .matches(&ev, None)
        };
        assert!(t("event.data.ok == true"));
        assert!(t("event.data.ok"));
        assert!(!t("!event.data.ok"));
        assert!(t("event.data.n == 3.0"));
        assert!(t("event.data.n > 2 && event.data.n <= 3"));
        assert!(t("event.data.f < 3"));
        assert!(t("event.data.s >= 'a'"));
        assert!(t("event.data.missing == null"));
        assert!(t("event.data.list[1] == 20"));
        assert!(t("event.data[\"s\"] == \"b\""));
        assert!(t(
            "(event.data.n == 1 || event.data.n == 3) && !(event.data.s == 'c')"
        ));
        assert!(!t("event.data.s > 1"));
        assert!(t("event.data.n != '3'"));
        assert!(!t("event.data.missing"));
    }

    #[test]
    fn function_failed_expression_from_on_failure_handlers() {
        let e = Expression::parse(
            "event.data.function_id == 'my-app-configured'",
            Scope::Event,
        )
        .expect("valid expression");
        assert!(e.matches(&json!({"data": {"function_id": "my-app-configured"}}), None));
        assert!(!e.matches(&json!({"data": {"function_id": "other"}}), None));
    }

    #[test]
    fn key_expressions_evaluate_to_values() {
        let e = Expression::parse("event.data.user_id", Scope::Event).expect("valid");
        assert_eq!(
            e.eval(&json!({"data": {"user_id": "u1"}}), None),
            json!("u1")
        );
        let lit = Expression::parse("\"global\"", Scope::Event).expect("valid");
        assert_eq!(lit.eval(&json!({}), None), json!("global"));
    }

    #[test]
    fn rejects_what_it_cannot_evaluate() {
        let bad = |src: &str, scope| Expression::parse(src, scope).unwrap_err();
        assert!(matches!(
            bad("async.data.x == 1", Scope::Event),
            ExprError::UnknownRoot(..)
        ));
        assert!(matches!(
            bad("foo.x == 1", Scope::EventAndAsync),
            ExprError::UnknownRoot(..)
        ));
        assert!(matches!(
            bad("size(event.data) > 1", Scope::Event),
            ExprError::Call(_)
        ));
        assert!(matches!(
            bad("event.data.name.startsWith('a')", Scope::Event),
            ExprError::Call(_)
        ));
        assert!(matches!(
            bad("event.data.a + 1 == 2", Scope::Event),
            ExprError::UnexpectedChar { .. }
        ));
        assert!(matches!(
            bad("event.data.a in [1]", Scope::Event),
            ExprError::Unexpected { .. }
        ));
        assert!(matches!(
            bad("event.data.a == 'x", Scope::Event),
            ExprError::UnterminatedString(_)
        ));
        assert!(matches!(
            bad("event.data.a ==", Scope::Event),
            ExprError::Unexpected { .. }
        ));
        assert!(matches!(
            bad("(event.data.a == 1", Scope::Event),
            ExprError::Unexpected { .. }
        ));
        assert!(matches!(
            bad("event.data.a = 1", Scope::Event),
            ExprError::UnexpectedChar { .. }
        ));
        assert!(matches!(bad("  ", Scope::Event), ExprError::Empty));
        assert!(matches!(
            bad("event.data.a == 1 ? 2 : 3", Scope::Event),
            ExprError::UnexpectedChar { .. }
        ));
    }
}
