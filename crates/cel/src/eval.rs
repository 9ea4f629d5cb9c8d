//! Evaluation over JSON variables with CEL's runtime semantics: heterogeneous equality (values
//! of different types are unequal, never an error), numbers compared across int and double on
//! one number line, and `&&`/`||` that ignore an error when the other operand decides.

use std::cmp::Ordering;

use serde_json::{Map, Value as Json};

use crate::ast::{Expr, Literal, Relation, StringTest};
use crate::EvalError;

/// A runtime value. Strings, maps and JSON lists borrow from the expression or the variables,
/// so evaluating copies nothing out of the event.
#[derive(Debug, Clone)]
enum Value<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(&'a str),
    List(List<'a>),
    Map(&'a Map<String, Json>),
}

#[derive(Debug, Clone)]
enum List<'a> {
    Json(&'a [Json]),
    Literal(Vec<Value<'a>>),
}

impl<'a> List<'a> {
    fn len(&self) -> usize {
        match self {
            List::Json(items) => items.len(),
            List::Literal(items) => items.len(),
        }
    }

    fn get(&self, index: usize) -> Option<Value<'a>> {
        match self {
            List::Json(items) => items.get(index).map(Value::from_json),
            List::Literal(items) => items.get(index).cloned(),
        }
    }

    fn iter(&self) -> impl Iterator<Item = Value<'a>> + '_ {
        (0..self.len()).filter_map(|index| self.get(index))
    }
}

impl<'a> Value<'a> {
    fn from_json(json: &'a Json) -> Self {
        match json {
            Json::Null => Value::Null,
            Json::Bool(value) => Value::Bool(*value),
            Json::Number(number) => match number.as_i64() {
                Some(value) => Value::Int(value),
                // Only an arbitrary-precision number beyond f64 has no f64; NaN compares as nothing.
                None => Value::Double(number.as_f64().unwrap_or(f64::NAN)),
            },
            Json::String(value) => Value::String(value),
            Json::Array(items) => Value::List(List::Json(items)),
            Json::Object(map) => Value::Map(map),
        }
    }

    /// CEL's name for the type, as its error messages use it.
    fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Map(_) => "map",
        }
    }
}

/// Evaluates `expr` and requires a bool, as daprd does of a routing rule.
pub(crate) fn evaluate(expr: &Expr, variables: &Map<String, Json>) -> Result<bool, EvalError> {
    match eval(expr, variables)? {
        Value::Bool(result) => Ok(result),
        other => Err(EvalError::NotBool(other.type_name())),
    }
}

fn eval<'a>(expr: &'a Expr, variables: &'a Map<String, Json>) -> Result<Value<'a>, EvalError> {
    let value = match expr {
        Expr::Literal(literal) => match literal {
            Literal::Null => Value::Null,
            Literal::Bool(value) => Value::Bool(*value),
            Literal::Int(value) => Value::Int(*value),
            Literal::Double(value) => Value::Double(*value),
            Literal::String(value) => Value::String(value),
        },
        Expr::Variable(name) => {
            variables.get(name).map(Value::from_json).ok_or_else(|| EvalError::UndeclaredReference(name.clone()))?
        }
        Expr::Select { operand, field } => match eval(operand, variables)? {
            Value::Map(map) => {
                map.get(field).map(Value::from_json).ok_or_else(|| EvalError::NoSuchKey(field.clone()))?
            }
            other => return Err(no_overload(".", &[&other])),
        },
        Expr::Has { operand, field } => match eval(operand, variables)? {
            Value::Map(map) => Value::Bool(map.contains_key(field)),
            other => return Err(no_overload("has", &[&other])),
        },
        Expr::Index { operand, index } => element(eval(operand, variables)?, eval(index, variables)?)?,
        Expr::List(items) => {
            Value::List(List::Literal(items.iter().map(|item| eval(item, variables)).collect::<Result<_, _>>()?))
        }
        Expr::Not(operand) => match eval(operand, variables)? {
            Value::Bool(value) => Value::Bool(!value),
            other => return Err(no_overload("!", &[&other])),
        },
        Expr::Negate(operand) => match eval(operand, variables)? {
            Value::Int(value) => Value::Int(value.checked_neg().ok_or(EvalError::Overflow)?),
            Value::Double(value) => Value::Double(-value),
            other => return Err(no_overload("-", &[&other])),
        },
        Expr::Relation { operator, left, right } => {
            let left = eval(left, variables)?;
            let right = eval(right, variables)?;
            Value::Bool(relation(*operator, &left, &right)?)
        }
        Expr::And(terms) => logical(terms, variables, "&&", false)?,
        Expr::Or(terms) => logical(terms, variables, "||", true)?,
        Expr::Conditional { condition, then, otherwise } => match eval(condition, variables)? {
            Value::Bool(true) => eval(then, variables)?,
            Value::Bool(false) => eval(otherwise, variables)?,
            other => return Err(no_overload("?:", &[&other])),
        },
        Expr::Size(operand) => match eval(operand, variables)? {
            // CEL counts a string's code points, not its bytes.
            Value::String(text) => count(text.chars().count()),
            Value::List(list) => count(list.len()),
            Value::Map(map) => count(map.len()),
            other => return Err(no_overload("size", &[&other])),
        },
        Expr::StringTest { test, target, argument } => match (eval(target, variables)?, eval(argument, variables)?) {
            (Value::String(text), Value::String(part)) => Value::Bool(match test {
                StringTest::StartsWith => text.starts_with(part),
                StringTest::EndsWith => text.ends_with(part),
                StringTest::Contains => text.contains(part),
            }),
            (text, part) => return Err(no_overload(test.name(), &[&text, &part])),
        },
    };
    Ok(value)
}

fn count(size: usize) -> Value<'static> {
    Value::Int(i64::try_from(size).unwrap_or(i64::MAX))
}

fn no_overload(operator: &'static str, operands: &[&Value<'_>]) -> EvalError {
    let operands = operands.iter().map(|value| value.type_name()).collect::<Vec<_>>().join(", ");
    EvalError::NoSuchOverload { operator, operands }
}

/// `&&` (decided by a false operand) and `||` (decided by a true one). An operand that decides
/// wins over errors anywhere else in the chain, as CEL's commutative operators require;
/// otherwise the first error (a non-bool operand counts as one) is the result.
fn logical<'a>(
    terms: &'a [Expr],
    variables: &'a Map<String, Json>,
    operator: &'static str,
    decisive: bool,
) -> Result<Value<'a>, EvalError> {
    let mut first_error = None;
    for term in terms {
        match eval(term, variables) {
            Ok(Value::Bool(value)) if value == decisive => return Ok(Value::Bool(decisive)),
            Ok(Value::Bool(_)) => {}
            Ok(other) => {
                first_error.get_or_insert_with(|| no_overload(operator, &[&other]));
            }
            Err(error) => {
                first_error.get_or_insert(error);
            }
        }
    }
    first_error.map_or(Ok(Value::Bool(!decisive)), Err)
}

fn element<'a>(operand: Value<'a>, index: Value<'a>) -> Result<Value<'a>, EvalError> {
    match (&operand, &index) {
        (Value::List(list), Value::Int(position)) => list_element(list, *position),
        // A whole double indexes too, as in cel-go, where every JSON number is a double.
        (Value::List(list), Value::Double(position)) if position.fract() == 0.0 && position.abs() < TWO_POW_63 => {
            list_element(list, *position as i64)
        }
        (Value::Map(map), Value::String(key)) => {
            map.get(*key).map(Value::from_json).ok_or_else(|| EvalError::NoSuchKey((*key).to_owned()))
        }
        _ => Err(no_overload("[]", &[&operand, &index])),
    }
}

fn list_element<'a>(list: &List<'a>, position: i64) -> Result<Value<'a>, EvalError> {
    usize::try_from(position)
        .ok()
        .and_then(|position| list.get(position))
        .ok_or(EvalError::IndexOutOfRange { index: position, size: list.len() })
}

fn relation(operator: Relation, left: &Value<'_>, right: &Value<'_>) -> Result<bool, EvalError> {
    let ordered = |accept: fn(Ordering) -> bool| {
        order(left, right).map(accept).ok_or_else(|| no_overload(operator.symbol(), &[left, right]))
    };
    match operator {
        Relation::Eq => Ok(equal(left, right)),
        Relation::Ne => Ok(!equal(left, right)),
        Relation::Lt => ordered(Ordering::is_lt),
        Relation::Le => ordered(Ordering::is_le),
        Relation::Gt => ordered(Ordering::is_gt),
        Relation::Ge => ordered(Ordering::is_ge),
        Relation::In => match right {
            Value::List(list) => Ok(list.iter().any(|item| equal(left, &item))),
            // JSON maps have only string keys, so any other key is simply absent.
            Value::Map(map) => Ok(matches!(left, Value::String(key) if map.contains_key(*key))),
            _ => Err(no_overload("in", &[left, right])),
        },
    }
}

/// CEL's heterogeneous equality: numbers compare by value whatever their type; any other mix
/// of types is unequal.
fn equal(left: &Value<'_>, right: &Value<'_>) -> bool {
    match (left, right) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::String(a), Value::String(b)) => a == b,
        (Value::List(a), Value::List(b)) => a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| equal(&x, &y)),
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| equal(&Value::from_json(x), &Value::from_json(y))))
        }
        _ => match (number(left), number(right)) {
            (Some(a), Some(b)) => compare_numbers(a, b) == Some(Ordering::Equal),
            _ => false,
        },
    }
}

/// `None` if the two cannot be ordered: different kinds, or a NaN, which cel-go refuses to order.
fn order(left: &Value<'_>, right: &Value<'_>) -> Option<Ordering> {
    match (left, right) {
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (Value::Bool(a), Value::Bool(b)) => Some(a.cmp(b)),
        _ => compare_numbers(number(left)?, number(right)?),
    }
}

#[derive(Debug, Clone, Copy)]
enum Number {
    Int(i64),
    Double(f64),
}

fn number(value: &Value<'_>) -> Option<Number> {
    match value {
        Value::Int(value) => Some(Number::Int(*value)),
        Value::Double(value) => Some(Number::Double(*value)),
        _ => None,
    }
}

fn compare_numbers(left: Number, right: Number) -> Option<Ordering> {
    match (left, right) {
        (Number::Int(a), Number::Int(b)) => Some(a.cmp(&b)),
        (Number::Double(a), Number::Double(b)) => a.partial_cmp(&b),
        (Number::Int(a), Number::Double(b)) => compare_int_double(a, b),
        (Number::Double(a), Number::Int(b)) => compare_int_double(b, a).map(Ordering::reverse),
    }
}

/// 2^63, the first double beyond `i64`.
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

/// Exact, unlike converting the int to a double, which rounds above 2^53.
fn compare_int_double(int: i64, double: f64) -> Option<Ordering> {
    if double.is_nan() {
        return None;
    }
    if double >= TWO_POW_63 {
        return Some(Ordering::Less);
    }
    if double < -TWO_POW_63 {
        return Some(Ordering::Greater);
    }
    let whole = double.trunc();
    // In range and integral, so the cast is exact.
    let ordering = int.cmp(&(whole as i64)).then(if double > whole {
        Ordering::Less
    } else if double < whole {
        Ordering::Greater
    } else {
        Ordering::Equal
    });
    Some(ordering)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_and_double_compare_exactly() {
        let cases = [
            (1, 1.0, Some(Ordering::Equal)),
            (1, 1.5, Some(Ordering::Less)),
            (2, 1.5, Some(Ordering::Greater)),
            (-1, -1.5, Some(Ordering::Greater)),
            (-2, -1.5, Some(Ordering::Less)),
            (0, -0.0, Some(Ordering::Equal)),
            // 2^53 + 1 has no double; converting it would wrongly make these equal.
            (9_007_199_254_740_993, 9_007_199_254_740_992.0, Some(Ordering::Greater)),
            (i64::MAX, 9_223_372_036_854_775_808.0, Some(Ordering::Less)),
            (i64::MIN, -9_223_372_036_854_775_808.0, Some(Ordering::Equal)),
            (i64::MIN, -1e300, Some(Ordering::Greater)),
            (0, f64::INFINITY, Some(Ordering::Less)),
            (0, f64::NEG_INFINITY, Some(Ordering::Greater)),
            (0, f64::NAN, None),
        ];
        for (int, double, expected) in cases {
            assert_eq!(compare_int_double(int, double), expected, "{int} vs {double}");
            let reversed = compare_numbers(Number::Double(double), Number::Int(int));
            assert_eq!(reversed, expected.map(Ordering::reverse), "{double} vs {int}");
        }
    }
}
