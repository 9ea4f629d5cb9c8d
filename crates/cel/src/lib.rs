//! The [Common Expression Language](https://github.com/google/cel-spec) as Dapr uses it: subscription routing
//! rules (`routes.rules[].match`, evaluated against the incoming CloudEvent bound to `event`) and resiliency
//! circuit-breaker trips (`trip`, evaluated against the breaker's counts). The `cel` crate parses and runs
//! them, so the control API checks an expression with the same engine that later evaluates it: full CEL,
//! macros (`has`, `exists`, `all`, `map`, `filter`), arithmetic, string functions and `matches` included.
//!
//! Two of daprd's habits are kept here, because expressions written for daprd depend on them:
//!
//! - every JSON number is a double, as Go's `encoding/json` decodes CloudEvent data: `event.data.price * 2.0`
//!   works and `event.data.price * 2` is a type error, in daprd and here alike; comparisons and equality mix
//!   ints and doubles freely (`event.data.count == 2`);
//! - a result other than a bool is an error, not a "no".

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use serde_json::Value as Json;

/// CEL's standard environment (functions, overloads, macros), built once: building it registers every
/// overload, which cost more than evaluating a rule, and a fresh one per event slowed delivery down.
static STANDARD: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// A compiled expression, ready to be evaluated any number of times.
#[derive(Clone, Debug)]
pub struct Program {
    compiled: Arc<cel::Program>,
}

impl Program {
    /// Compiles `source`.
    pub fn parse(source: &str) -> Result<Program, ParseError> {
        let compiled = STANDARD.compile(source).map_err(ParseError::from_errors)?;
        Ok(Program { compiled: Arc::new(compiled) })
    }

    /// Evaluates the expression against `variables`.
    pub fn evaluate(&self, variables: &Variables) -> Result<bool, EvalError> {
        match self.compiled.execute(&variables.context)? {
            cel::Value::Bool(result) => Ok(result),
            other => Err(EvalError::NotBool(format!("{:?}", other.type_of()))),
        }
    }
}

/// Checks that `source` compiles, for validating a document before it is stored.
pub fn check(source: &str) -> Result<(), ParseError> {
    Program::parse(source).map(drop)
}

/// The values an expression's variables stand for.
pub struct Variables {
    context: cel::Context<'static, 'static>,
}

impl Default for Variables {
    fn default() -> Variables {
        Variables { context: cel::Context::with_env(Arc::clone(&STANDARD)) }
    }
}

impl Variables {
    /// Binds `name` to a JSON value (a CloudEvent, for routing rules), numbers as doubles.
    pub fn with_json(mut self, name: &str, value: &Json) -> Variables {
        self.context.add_variable_from_value(name, from_json(value));
        self
    }

    /// Binds `name` to an integer (a circuit breaker's counts).
    pub fn with_int(mut self, name: &str, value: i64) -> Variables {
        self.context.add_variable_from_value(name, value);
        self
    }
}

fn from_json(value: &Json) -> cel::Value {
    match value {
        Json::Null => cel::Value::Null,
        Json::Bool(flag) => cel::Value::Bool(*flag),
        Json::Number(number) => cel::Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        Json::String(text) => cel::Value::from(text.as_str()),
        Json::Array(items) => cel::Value::List(Arc::new(items.iter().map(from_json).collect())),
        Json::Object(fields) => {
            let fields: HashMap<String, cel::Value> =
                fields.iter().map(|(key, value)| (key.clone(), from_json(value))).collect();
            cel::Value::from(fields)
        }
    }
}

/// Why an expression does not compile, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", position(*.line, *.column))]
pub struct ParseError {
    /// 1-based line; expressions written as YAML block scalars can span lines.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// What is wrong there.
    pub message: String,
}

impl ParseError {
    /// The first of the parser's errors: the one to fix first.
    fn from_errors(errors: cel::ParseErrors) -> ParseError {
        let first = errors.errors.into_iter().next();
        let (line, column) = first.as_ref().map_or((1, 1), |error| error.pos);
        let message = first.map_or_else(|| "the expression does not parse".to_owned(), |error| error.msg);
        let position = |n: isize| usize::try_from(n).unwrap_or(0).max(1);
        ParseError { line: position(line), column: position(column), message }
    }
}

fn position(line: usize, column: usize) -> String {
    if line == 1 {
        format!("column {column}: ")
    } else {
        format!("line {line}, column {column}: ")
    }
}

/// Why evaluating an expression failed; daprd fails the rule the same way: the data did not have the shape
/// the expression assumed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// A missing key, a variable not given, operands of the wrong types, ...
    #[error(transparent)]
    Execution(#[from] cel::ExecutionError),
    /// The expression produced a value of this type instead of a bool.
    #[error("the expression returned a {0}, not a bool")]
    NotBool(String),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An order event as daprd builds it, for expressions over `event`.
    fn order_event() -> Variables {
        let event = json!({
            "id": "5929aaac-a5e2-4ca1-859c-edfe73f11565",
            "source": "checkout",
            "type": "order.created",
            "specversion": "1.0",
            "topic": "orders",
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
        Variables::default().with_json("event", &event)
    }

    fn evaluate(source: &str) -> Result<bool, EvalError> {
        let program = Program::parse(source).unwrap_or_else(|error| panic!("{source}: {error}"));
        program.evaluate(&order_event())
    }

    #[test]
    fn dapr_documentation_examples() {
        for (kind, widget, gadget) in [("widget", true, false), ("gadget", false, true), ("thing", false, false)] {
            let variables = Variables::default().with_json("event", &json!({"type": kind, "data": {}}));
            assert_eq!(Program::parse("event.type == \"widget\"").unwrap().evaluate(&variables), Ok(widget));
            assert_eq!(Program::parse("event.type == \"gadget\"").unwrap().evaluate(&variables), Ok(gadget));
        }
        assert_eq!(evaluate("event.data.price > 100 && has(event.data.express)"), Ok(true));
        assert_eq!(evaluate("event.data.price > 200 && has(event.data.express)"), Ok(false));
        assert_eq!(evaluate("event.type.startsWith(\"order.\")"), Ok(true));
    }

    #[test]
    fn expressions_over_an_event() {
        let cases = [
            ("event.data.note == null && event.type != null", true),
            ("1 == 1.0 && 1 != '1'", true),
            ("event.data.price >= 150 && event.data.price <= 150.0", true),
            ("event.data.customer.name == 'Zoë'", true),
            ("event.data['customer']['tier'] == \"gold\"", true),
            ("event['data'].items[1] == 'pear' && event.data.counts[1] == 2", true),
            ("event.data[\"odd key\"] == 'x'", true),
            ("has(event.data.note) && !has(event.data.missing)", true),
            ("'pear' in event.data.items && 'price' in event.data", true),
            ("size(event.subject) == 9 && event.subject.contains('cødé')", true),
            ("event.data.express ? event.data.price > 100 : false", true),
            ("event.type == 'order.created' // route orders\n  && event.data.price > 1", true),
            // What the hand-written subset refused: macros, arithmetic, regular expressions.
            ("event.data.items.exists(item, item == 'pear')", true),
            ("event.data.items.all(item, size(item) > 3)", true),
            ("event.data.counts.filter(n, n > 1.0).size() == 2", true),
            ("event.data.price * event.data.discount == 75.0", true),
            ("event.data.price - 50.0 > 99.0", true),
            ("event.type.matches('^order\\\\.')", true),
        ];
        for (source, expected) in cases {
            assert_eq!(evaluate(source), Ok(expected), "{source}");
        }
    }

    #[test]
    fn json_numbers_are_doubles_as_in_daprd() {
        // A double times an int has no overload in CEL; daprd refuses it the same way.
        assert!(matches!(evaluate("event.data.price * 2 > 200"), Err(EvalError::Execution(_))));
        assert_eq!(evaluate("event.data.price * 2.0 > 200.0"), Ok(true));
    }

    #[test]
    fn logical_operators_absorb_errors_the_other_side_decides() {
        assert_eq!(evaluate("false && event.missing"), Ok(false));
        assert_eq!(evaluate("event.missing || true"), Ok(true));
        assert_eq!(evaluate("true ? true : event.missing"), Ok(true));
        assert!(evaluate("true && event.missing").is_err());
    }

    #[test]
    fn evaluation_errors_say_what_the_data_lacked() {
        let message = |source: &str| evaluate(source).unwrap_err().to_string();
        assert!(message("event.data.missing == 1").contains("missing"), "{}", message("event.data.missing == 1"));
        assert!(message("evnt.type == 'x'").contains("evnt"));
        assert!(evaluate("event.data.price < '100'").is_err());
        assert_eq!(evaluate("event.type"), Err(EvalError::NotBool("String".to_owned())));
    }

    #[test]
    fn parse_errors_say_where() {
        assert_eq!(check("event.type == 'widget'"), Ok(()));
        let error = check("event.type = 'widget'").unwrap_err();
        assert_eq!((error.line, error.column), (1, 12), "{error}");
        assert!(error.to_string().starts_with("column 12: "), "{error}");
        let error = check("event.type == 'widget'\n  && event.data.price >").unwrap_err();
        assert!(error.to_string().starts_with("line 2, column 24: "), "{error}");
    }

    #[test]
    fn a_program_is_reusable_and_takes_integer_counts() {
        let program = Program::parse("consecutiveFailures > 5 || totalFailures * 2 > requests").unwrap();
        let counts = |consecutive: i64, failures: i64, requests: i64| {
            Variables::default()
                .with_int("consecutiveFailures", consecutive)
                .with_int("totalFailures", failures)
                .with_int("requests", requests)
        };
        assert_eq!(program.evaluate(&counts(6, 6, 100)), Ok(true));
        assert_eq!(program.evaluate(&counts(1, 6, 10)), Ok(true));
        assert_eq!(program.evaluate(&counts(1, 1, 10)), Ok(false));
        assert!(program.evaluate(&Variables::default()).is_err());
    }
}
