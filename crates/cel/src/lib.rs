//! The subset of the [Common Expression Language](https://github.com/google/cel-spec) that Dapr
//! subscriptions use in `routes.rules[].match`. daprd evaluates each rule against the incoming
//! CloudEvent, bound to the variable `event`: `event.type == "widget"`,
//! `event.data.price > 100 && has(event.data.express)`.
//!
//! Supported, with CEL's syntax, precedence and runtime semantics:
//!
//! - literals: strings in single, double or triple quotes, raw (`r"..."`) or with CEL's escapes;
//!   integers (decimal, `0x` hex); doubles; `true`, `false`, `null`; lists `[1, "a"]`;
//! - variables, field selection `a.b`, indexing `a["key"]`, `a[0]`, and `has(a.b)`;
//! - `!`, unary `-`, `==`, `!=`, `<`, `<=`, `>`, `>=`, `in` (lists and maps), `&&`, `||`, `?:`;
//! - `size(x)` / `x.size()` and the string methods `startsWith`, `endsWith`, `contains`.
//!
//! Not supported, and refused when parsing: arithmetic, map literals, bytes and unsigned
//! literals, macros other than `has` (`exists`, `all`, ...), and other functions (`matches`,
//! `timestamp`, ...). Every expression that parses here compiles in daprd, except ones that
//! misuse a literal's type, such as `1 == "1"` or `size(1)`, which daprd's type checker refuses.
//!
//! There is no type checker: evaluation is dynamic, as it is in daprd for expressions over
//! `event`, which daprd declares `dyn`. Values of different types are unequal rather than an
//! error; ordering a string against a number is an evaluation error. JSON numbers that fit an
//! `i64` are ints, the rest doubles (daprd makes every JSON number a double); CEL compares the
//! two exactly, so `event.data.count == 2` holds for `2` and `2.0` alike.

mod ast;
mod eval;
mod lexer;
mod parser;

use serde_json::{Map, Value};

/// A parsed match expression, ready to be evaluated any number of times.
#[derive(Debug, Clone)]
pub struct Program {
    root: ast::Expr,
}

impl Program {
    /// Parses `source`, resolving every function call, so that an expression which parses can
    /// only fail at evaluation because of the data it meets.
    pub fn parse(source: &str) -> Result<Program, ParseError> {
        parser::parse(source).map(|root| Program { root })
    }

    /// Evaluates the expression against `variables` (for a routing rule, `{"event": <the
    /// CloudEvent>}`). A result other than a bool is an error, as in daprd.
    pub fn evaluate(&self, variables: &Map<String, Value>) -> Result<bool, EvalError> {
        eval::evaluate(&self.root, variables)
    }
}

/// Checks that `source` is a valid expression, for validating a subscription before it is stored.
pub fn check(source: &str) -> Result<(), ParseError> {
    Program::parse(source).map(drop)
}

/// Why an expression does not parse, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position(*.line, *.column))]
pub struct ParseError {
    /// 1-based line; expressions written as YAML block scalars can span lines.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What was expected and what was found instead, or what is not supported.
    pub message: String,
}

fn position(line: usize, column: usize) -> String {
    if line == 1 {
        format!("column {column}: ")
    } else {
        format!("line {line}, column {column}: ")
    }
}

/// Why evaluating an expression failed. daprd fails the rule the same way; every variant means
/// the event did not have the shape the expression assumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// A selected or indexed map has no such key, such as `event.data.express` on an event
    /// whose data lacks `express`.
    #[error("no such key: {0}")]
    NoSuchKey(String),
    /// The expression names a variable that was not given, such as `evnt.type`.
    #[error("undeclared reference to '{0}'")]
    UndeclaredReference(String),
    /// An operator or function met operands of types it does not take, such as
    /// `event.data.price < "100"` when the price is a number.
    #[error("no such overload: {operator} applied to ({operands})")]
    NoSuchOverload {
        /// The operator or function, such as `<` or `startsWith`.
        operator: &'static str,
        /// CEL's names of the operands' types, comma-separated.
        operands: String,
    },
    /// A list index outside the list.
    #[error("index {index} out of range in a list of size {size}")]
    IndexOutOfRange {
        /// The index asked for.
        index: i64,
        /// The list's length.
        size: usize,
    },
    /// Negating the most negative integer.
    #[error("integer overflow")]
    Overflow,
    /// The expression produced a value of this CEL type instead of a bool.
    #[error("the expression returned a {0}, not a bool")]
    NotBool(&'static str),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An order event as daprd builds it, for expressions over `event`.
    fn order_event() -> Map<String, Value> {
        let event = json!({
            "id": "5929aaac-a5e2-4ca1-859c-edfe73f11565",
            "source": "checkout",
            "type": "order.created",
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "topic": "orders",
            "pubsubname": "orderpubsub",
            "traceid": "",
            "tracestate": "",
            "subject": "ünïcødé ✓",
            "data": {
                "price": 150,
                "discount": 0.5,
                "express": true,
                "note": null,
                "customer": {"name": "Zoë", "tier": "gold"},
                "items": ["apple", "pear"],
                "counts": [1, 2.0, 3],
                "odd key": "x"
            }
        });
        json!({ "event": event }).as_object().unwrap().clone()
    }

    fn evaluate(source: &str) -> Result<bool, EvalError> {
        let program = Program::parse(source).unwrap_or_else(|error| panic!("{source}: {error}"));
        program.evaluate(&order_event())
    }

    #[test]
    fn dapr_documentation_examples() {
        let widget = |kind: &str| json!({"event": {"type": kind, "data": {}}}).as_object().unwrap().clone();
        let cases = [
            ("event.type == \"widget\"", "widget", true),
            ("event.type == \"widget\"", "gadget", false),
            ("event.type == \"gadget\"", "gadget", true),
            ("event.type == \"gadget\"", "thing", false),
        ];
        for (source, kind, expected) in cases {
            let program = Program::parse(source).unwrap();
            assert_eq!(program.evaluate(&widget(kind)), Ok(expected), "{source} on {kind}");
        }
        assert_eq!(evaluate("event.data.price > 100 && has(event.data.express)"), Ok(true));
        assert_eq!(evaluate("event.data.price > 200 && has(event.data.express)"), Ok(false));
        assert_eq!(evaluate("event.type.startsWith(\"order.\")"), Ok(true));
    }

    #[test]
    fn expressions_over_an_event() {
        let cases = [
            // Literals and equality, including heterogeneous equality.
            ("true", true),
            ("!false", true),
            ("null == null", true),
            ("event.data.note == null", true),
            ("event.type != null", true),
            ("1 == 1.0", true),
            ("1 == '1'", false),
            ("1 != '1'", true),
            ("[1, 'a'] == [1.0, \"a\"]", true),
            ("[1] == [1, 2]", false),
            ("event.data.customer == event.data.customer", true),
            ("event.data.customer == event.data", false),
            ("0x10 == 16 && 1e2 == 100 && .5 == 0.5 && -0.0 == 0", true),
            ("-9223372036854775808 < 0", true),
            ("1e400 > 9223372036854775807 && -1e400 < -9223372036854775808", true),
            // Ordering: numbers across types, strings by code point, bools.
            ("event.data.price >= 150 && event.data.price <= 150.0", true),
            ("event.data.discount < 1 && event.data.discount > 0", true),
            ("'apple' < 'banana' && 'b' > 'a' && 'a' <= 'a' && 'é' > 'z'", true),
            ("false < true", true),
            ("--5 == 5 && -(-5) == 5 && !!true", true),
            // Selection and indexing.
            ("event.data.customer.name == 'Zoë'", true),
            ("event.data['customer']['tier'] == \"gold\"", true),
            ("event['data'].items[1] == 'pear'", true),
            ("event.data[\"odd key\"] == 'x'", true),
            ("event.data.counts[1] == 2", true),
            ("[10, 20][1] == 20", true),
            ("[10, 20][1.0] == 20", true),
            // has(): key presence, null counts as present.
            ("has(event.data.express)", true),
            ("has(event.data.note)", true),
            ("has(event.data.missing)", false),
            ("has(event.subject) && !has(event.expiration)", true),
            ("has(event.data.customer.name)", true),
            // in: list membership by equality, map keys.
            ("'pear' in event.data.items", true),
            ("'plum' in event.data.items", false),
            ("2 in event.data.counts && 3.0 in event.data.counts", true),
            ("event.type in ['order.created', 'order.updated']", true),
            ("'price' in event.data && !('cost' in event.data)", true),
            ("1 in event.data", false),
            ("'a' in []", false),
            // Strings: size counts characters; methods work on any string, unicode included.
            ("size(event.subject) == 9 && event.subject.size() == 9", true),
            ("event.subject.startsWith('ünï') && event.subject.endsWith('✓')", true),
            ("event.subject.contains('cødé')", true),
            ("event.subject.contains('code')", false),
            ("''.startsWith('') && 'abc'.contains('')", true),
            ("size(event.data.items) == 2 && size(event.data) == 8 && [].size() == 0", true),
            // Conditional.
            ("event.data.express ? event.data.price > 100 : false", true),
            ("event.data.note != null ? event.data.note.missing : true", true),
            // Whitespace and comments in multi-line expressions.
            ("event.type == 'order.created' // route orders\n  && event.data.price > 1", true),
        ];
        for (source, expected) in cases {
            assert_eq!(evaluate(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn precedence_decides_results() {
        let cases = [
            // && binds tighter than ||: true || (false && false).
            ("true || false && false", true),
            ("(true || false) && false", false),
            // Relations bind tighter than &&.
            ("1 < 2 && 2 < 3", true),
            // ! binds tighter than ==: (!true) == false.
            ("!true == false", true),
            // Relations are left-associative: (1 < 2) == true.
            ("1 < 2 == true", true),
            // in binds like ==: ('a' in ['a']) == true.
            ("'a' in ['a'] == true", true),
            // ?: binds loosest and nests to the right.
            ("false ? false : true ? true : false", true),
            ("true || false ? false : true", false),
            // Member access binds tighter than unary minus: -(x.y).
            ("-event.data.price == -150", true),
        ];
        for (source, expected) in cases {
            assert_eq!(evaluate(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn logical_operators_absorb_errors_the_other_side_decides() {
        let cases = [
            ("false && event.missing", Ok(false)),
            ("event.missing && false", Ok(false)),
            ("true || event.missing", Ok(true)),
            ("event.missing || true", Ok(true)),
            ("event.data.price && false", Ok(false)),
            ("1 || true", Ok(true)),
            ("event.a && event.b && false", Ok(false)),
            ("true && event.missing", Err(EvalError::NoSuchKey("missing".into()))),
            ("event.missing || false", Err(EvalError::NoSuchKey("missing".into()))),
            ("event.first && event.second", Err(EvalError::NoSuchKey("first".into()))),
            ("true && 'yes'", Err(EvalError::NoSuchOverload { operator: "&&", operands: "string".into() })),
            ("false || 1", Err(EvalError::NoSuchOverload { operator: "||", operands: "int".into() })),
            // The untaken branch of ?: is not evaluated.
            ("true ? true : event.missing", Ok(true)),
            ("false ? event.missing : false", Ok(false)),
        ];
        for (source, expected) in cases {
            assert_eq!(evaluate(source), expected, "{source}");
        }
    }

    #[test]
    fn evaluation_errors() {
        let overload = |operator: &'static str, operands: &str| {
            Err(EvalError::NoSuchOverload { operator, operands: operands.to_owned() })
        };
        let cases = [
            ("event.data.express.fast", overload(".", "bool")),
            ("event.data.missing == 1", Err(EvalError::NoSuchKey("missing".into()))),
            ("event.data['missing'] == 1", Err(EvalError::NoSuchKey("missing".into()))),
            ("has(event.data.missing.deeper)", Err(EvalError::NoSuchKey("missing".into()))),
            ("has(event.type.length)", overload("has", "string")),
            ("evnt.type == 'x'", Err(EvalError::UndeclaredReference("evnt".into()))),
            ("event.data.price < '100'", overload("<", "int, string")),
            ("event.data.items > 1", overload(">", "list, int")),
            ("null <= null", overload("<=", "null_type, null_type")),
            ("event.data.price >= true", overload(">=", "int, bool")),
            ("event.data.items[2] == 'x'", Err(EvalError::IndexOutOfRange { index: 2, size: 2 })),
            ("event.data.items[-1] == 'x'", Err(EvalError::IndexOutOfRange { index: -1, size: 2 })),
            ("event.data.items['0'] == 'x'", overload("[]", "list, string")),
            ("event.data.items[0.5] == 'x'", overload("[]", "list, double")),
            ("event.data.items[1e19] == 'x'", overload("[]", "list, double")),
            ("event.data.items[-1.0] == 'x'", Err(EvalError::IndexOutOfRange { index: -1, size: 2 })),
            ("event.data[0] == 'x'", overload("[]", "map, int")),
            ("event.type[0] == 'o'", overload("[]", "string, int")),
            ("'a' in 'abc'", overload("in", "string, string")),
            ("!event.type", overload("!", "string")),
            ("-event.type == 1", overload("-", "string")),
            ("-(-9223372036854775808) > 0", Err(EvalError::Overflow)),
            ("event.data.price ? true : false", overload("?:", "int")),
            ("size(event.data.price) == 3", overload("size", "int")),
            ("event.data.price.startsWith('1')", overload("startsWith", "int, string")),
            ("event.type.endsWith(1)", overload("endsWith", "string, int")),
            ("event.type", Err(EvalError::NotBool("string"))),
            ("event.data.note", Err(EvalError::NotBool("null_type"))),
            ("[true]", Err(EvalError::NotBool("list"))),
            ("1.5", Err(EvalError::NotBool("double"))),
        ];
        for (source, expected) in cases {
            assert_eq!(evaluate(source), expected, "{source}");
        }
    }

    #[test]
    fn check_and_error_display() {
        assert_eq!(check("event.type == 'widget'"), Ok(()));
        let error = check("event.type = 'widget'").unwrap_err();
        assert_eq!(error.to_string(), "column 12: expected '==' ('=' alone is not an operator)");
        let error = check("event.type == 'widget'\n  && event.data.price >").unwrap_err();
        assert_eq!(error.to_string(), "line 2, column 24: expected an expression, found the end of the expression");
        let error = Program::parse("event.data.x").unwrap().evaluate(&order_event()).unwrap_err();
        assert_eq!(error.to_string(), "no such key: x");
    }

    #[test]
    fn a_program_is_reusable_across_events() {
        let program = Program::parse("event.data.qty >= 10").unwrap();
        let event = |qty: Value| json!({"event": {"data": {"qty": qty}}}).as_object().unwrap().clone();
        assert_eq!(program.evaluate(&event(json!(12))), Ok(true));
        assert_eq!(program.evaluate(&event(json!(9.5))), Ok(false));
        assert_eq!(program.evaluate(&event(json!(u64::MAX))), Ok(true));
        assert_eq!(program.evaluate(&Map::new()), Err(EvalError::UndeclaredReference("event".into())));
    }
}
