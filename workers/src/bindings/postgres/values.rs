//! JSON in and out of PostgreSQL for the binding: `params` are encoded for the types the server says the
//! statement's parameters have (so `"42"` reaches an `integer` and `42` a `text`, as daprd's driver allows), and
//! result rows become JSON arrays with each value written as daprd's driver writes it (timestamps in RFC 3339,
//! `bytea` in base64, `numeric` as a number).

use base64::Engine as _;
use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgRow, PgTypeInfo};
use sqlx::types::Json;
use sqlx::{Arguments, Column, Row, TypeInfo, ValueRef};

/// Types whose values are text.
const TEXT_TYPES: [&str; 5] = ["TEXT", "VARCHAR", "BPCHAR", "NAME", "UNKNOWN"];

/// The statement's arguments: `params[i]` encoded for the type of `$i+1`.
pub(super) fn arguments(types: &[PgTypeInfo], params: &[Value]) -> Result<PgArguments, String> {
    if types.len() != params.len() {
        return Err(format!(
            "the statement takes {} parameters but metadata 'params' holds {}",
            types.len(),
            params.len()
        ));
    }
    let mut arguments = PgArguments::default();
    for (index, (parameter_type, value)) in types.iter().zip(params).enumerate() {
        add(&mut arguments, parameter_type.name(), value).map_err(|reason| {
            format!("params[{index}] cannot be ${} ({}): {reason}", index + 1, parameter_type.name())
        })?;
    }
    Ok(arguments)
}

/// `value` converted by `convert`, or `None` for JSON `null` (bound as SQL `NULL` of the parameter's type).
fn nullable<T>(value: &Value, convert: impl FnOnce(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    if value.is_null() {
        Ok(None)
    } else {
        convert(value).map(Some)
    }
}

fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(number) => number.as_i64().ok_or_else(|| format!("{number} is not a whole number")),
        Value::String(text) => text.trim().parse().map_err(|_| format!("'{text}' is not a whole number")),
        other => Err(format!("{other} is not a whole number")),
    }
}

fn float(value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => number.as_f64().ok_or_else(|| format!("{number} is not a number")),
        Value::String(text) => text.trim().parse().map_err(|_| format!("'{text}' is not a number")),
        other => Err(format!("{other} is not a number")),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| format!("{value} is not a string"))
}

fn add(arguments: &mut PgArguments, type_name: &str, value: &Value) -> Result<(), String> {
    let added = match type_name {
        "BOOL" => arguments.add(nullable(value, |value| match value {
            Value::Bool(flag) => Ok(*flag),
            Value::String(text) => text.trim().parse().map_err(|_| format!("'{text}' is not true or false")),
            other => Err(format!("{other} is not true or false")),
        })?),
        "INT2" => arguments.add(nullable(value, |value| {
            i16::try_from(integer(value)?).map_err(|_| format!("{value} is out of range"))
        })?),
        "INT4" => arguments.add(nullable(value, |value| {
            i32::try_from(integer(value)?).map_err(|_| format!("{value} is out of range"))
        })?),
        "INT8" => arguments.add(nullable(value, integer)?),
        "FLOAT4" | "FLOAT8" => arguments.add(nullable(value, float)?),
        "JSON" | "JSONB" => arguments.add(nullable(value, |value| Ok(Json(value.clone())))?),
        "TIMESTAMPTZ" => arguments.add(nullable(value, |value| {
            let text = string(value)?;
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| format!("'{text}' is not an RFC 3339 time"))
        })?),
        "TIMESTAMP" => arguments.add(nullable(value, |value| {
            let text = string(value)?;
            DateTime::parse_from_rfc3339(text)
                .map(|time| time.naive_utc())
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f"))
                .map_err(|_| format!("'{text}' is not a date and time"))
        })?),
        "DATE" => arguments.add(nullable(value, |value| {
            let text = string(value)?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| format!("'{text}' is not a YYYY-MM-DD date"))
        })?),
        "TIME" => arguments.add(nullable(value, |value| {
            let text = string(value)?;
            NaiveTime::parse_from_str(text, "%H:%M:%S%.f").map_err(|_| format!("'{text}' is not an HH:MM:SS time"))
        })?),
        "UUID" => arguments.add(nullable(value, |value| {
            let text = string(value)?;
            uuid::Uuid::parse_str(text).map_err(|_| format!("'{text}' is not a UUID"))
        })?),
        "BYTEA" => arguments.add(nullable(value, |value| Ok(text(value).into_bytes()))?),
        name if TEXT_TYPES.contains(&name) => arguments.add(nullable(value, |value| Ok(text(value)))?),
        other => {
            return Err(format!(
                "parameters of type {other} are not taken as JSON; cast it in the statement from text, e.g. \
                 $n::text::{}",
                other.to_ascii_lowercase()
            ))
        }
    };
    added.map_err(|err| err.to_string())
}

/// One result row as a JSON array of its values.
pub(super) fn row_values(row: &PgRow) -> Result<Value, String> {
    (0..row.columns().len()).map(|index| column_value(row, index)).collect::<Result<Vec<_>, _>>().map(Value::Array)
}

fn column_value(row: &PgRow, index: usize) -> Result<Value, String> {
    let column = &row.columns()[index];
    let type_name = column.type_info().name();
    let failed = |err: sqlx::Error| format!("column '{}' ({type_name}) cannot be read: {err}", column.name());
    let json = |value: Option<Value>| value.unwrap_or(Value::Null);
    Ok(match type_name {
        "BOOL" => json(row.try_get::<Option<bool>, _>(index).map_err(failed)?.map(Value::from)),
        "INT2" => json(row.try_get::<Option<i16>, _>(index).map_err(failed)?.map(Value::from)),
        "INT4" => json(row.try_get::<Option<i32>, _>(index).map_err(failed)?.map(Value::from)),
        "INT8" => json(row.try_get::<Option<i64>, _>(index).map_err(failed)?.map(Value::from)),
        "FLOAT4" => json(row.try_get::<Option<f32>, _>(index).map_err(failed)?.map(|x| Value::from(f64::from(x)))),
        "FLOAT8" => json(row.try_get::<Option<f64>, _>(index).map_err(failed)?.map(Value::from)),
        "NUMERIC" => {
            let raw = row.try_get_raw(index).map_err(failed)?;
            if raw.is_null() {
                Value::Null
            } else {
                let bytes = raw.as_bytes().map_err(|err| format!("column '{}': {err}", column.name()))?;
                numeric_text(bytes).and_then(|text| number(&text)).unwrap_or(Value::Null)
            }
        }
        "JSON" | "JSONB" => json(row.try_get::<Option<Json<Value>>, _>(index).map_err(failed)?.map(|json| json.0)),
        "TIMESTAMPTZ" => json(
            row.try_get::<Option<DateTime<Utc>>, _>(index)
                .map_err(failed)?
                .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true).into()),
        ),
        "TIMESTAMP" => json(
            row.try_get::<Option<NaiveDateTime>, _>(index)
                .map_err(failed)?
                .map(|time| time.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true).into()),
        ),
        "DATE" => json(
            row.try_get::<Option<NaiveDate>, _>(index)
                .map_err(failed)?
                .map(|date| format!("{}T00:00:00Z", date.format("%Y-%m-%d")).into()),
        ),
        "TIME" => json(row.try_get::<Option<NaiveTime>, _>(index).map_err(failed)?.map(|time| time.to_string().into())),
        "UUID" => json(row.try_get::<Option<uuid::Uuid>, _>(index).map_err(failed)?.map(|id| id.to_string().into())),
        "BYTEA" => json(
            row.try_get::<Option<Vec<u8>>, _>(index)
                .map_err(failed)?
                .map(|bytes| base64::engine::general_purpose::STANDARD.encode(bytes).into()),
        ),
        name if TEXT_TYPES.contains(&name) => {
            json(row.try_get::<Option<String>, _>(index).map_err(failed)?.map(Value::from))
        }
        other => {
            return Err(format!(
                "column '{0}' is of type {other}, which the binding does not return; cast it in the statement, e.g. \
                 {0}::text",
                column.name()
            ))
        }
    })
}

/// A decimal text as a JSON number: whole numbers exactly, others as the nearest double.
fn number(text: &str) -> Option<Value> {
    if let Ok(whole) = text.parse::<i64>() {
        return Some(whole.into());
    }
    serde_json::Number::from_f64(text.parse().ok()?).map(Value::Number)
}

/// The decimal text of PostgreSQL's binary `numeric`: digit count, weight (of the first base-10000 digit),
/// sign, display scale, then the base-10000 digits. `None` for NaN and infinities, which JSON has no number for.
fn numeric_text(bytes: &[u8]) -> Option<String> {
    let word = |at: usize| bytes.get(2 * at..2 * at + 2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
    let (count, weight, sign, scale) = (usize::from(word(0)?), i32::from(word(1)? as i16), word(2)?, word(3)?);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        _ => return None,
    };
    let digits: Vec<u16> = (0..count).map(|at| word(4 + at)).collect::<Option<_>>()?;
    let digit = |group: i32| usize::try_from(group).ok().and_then(|at| digits.get(at)).copied().unwrap_or(0);
    let mut whole = (0..=weight).map(|group| format!("{:04}", digit(group))).collect::<String>();
    whole = whole.trim_start_matches('0').to_owned();
    if whole.is_empty() {
        whole.push('0');
    }
    let scale = usize::from(scale);
    // Fractional group k (from 1) is the digit of weight -k, at index weight + k.
    let groups = i32::try_from(scale.div_ceil(4)).ok()?;
    let mut fraction = (1..=groups).map(|k| format!("{:04}", digit(weight + k))).collect::<String>();
    fraction.truncate(scale);
    let sign = if negative { "-" } else { "" };
    Some(if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") })
}

#[cfg(test)]
mod tests {
    use super::numeric_text;

    fn encoded(weight: i16, sign: u16, scale: u16, digits: &[u16]) -> Vec<u8> {
        let header = [u16::try_from(digits.len()).unwrap(), weight as u16, sign, scale];
        header.iter().chain(digits).flat_map(|word| word.to_be_bytes()).collect()
    }

    #[test]
    fn numerics_read_as_decimal_text() {
        assert_eq!(numeric_text(&encoded(0, 0, 0, &[42])).unwrap(), "42");
        assert_eq!(numeric_text(&encoded(1, 0x4000, 2, &[1, 2345, 6700])).unwrap(), "-12345.67");
        assert_eq!(numeric_text(&encoded(-1, 0, 4, &[5])).unwrap(), "0.0005");
        assert_eq!(numeric_text(&encoded(-2, 0, 8, &[12])).unwrap(), "0.00000012");
        assert_eq!(numeric_text(&encoded(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric_text(&encoded(0, 0xC000, 0, &[])), None);
    }
}
