//! The two ways a document can be refused: it cannot be read as a document at all
//! ([`ParseError`]), or it is a document that breaks a rule ([`Invalid`]).

/// A document breaks a rule. `field` points at the offending part (for example
/// `spec.metadata[2].name`) when the problem has one place; `reason` says what is wrong
/// and, where it can, what to do about it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_invalid(.field.as_deref(), .reason))]
pub struct Invalid {
    /// Dotted path of the offending field, if the problem has one place.
    pub field: Option<String>,
    /// What is wrong and what to do about it.
    pub reason: String,
}

fn describe_invalid(field: Option<&str>, reason: &str) -> String {
    match field {
        Some(field) => format!("{field}: {reason}"),
        None => reason.to_owned(),
    }
}

impl Invalid {
    /// A problem that belongs to no single field.
    pub fn new(reason: impl Into<String>) -> Self {
        Invalid { field: None, reason: reason.into() }
    }

    /// A problem with the field at `field`.
    pub fn at(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Invalid { field: Some(field.into()), reason: reason.into() }
    }

    /// The same problem, placed at `field`: the name and duration checks know the text
    /// they were given but not where it came from.
    pub fn for_field(self, field: impl Into<String>) -> Self {
        Invalid { field: Some(field.into()), reason: self.reason }
    }
}

/// Input that cannot be read as a resource document.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}", describe_parse(*.index, .reason))]
pub struct ParseError {
    /// For multi-document input, the 0-based position of the failing document
    /// (empty documents count, so the number matches the input).
    pub index: Option<usize>,
    /// What is wrong with the document.
    pub reason: String,
}

fn describe_parse(index: Option<usize>, reason: &str) -> String {
    match index {
        Some(index) => format!("document at index {index}: {reason}"),
        None => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_display_prefixes_the_field_when_there_is_one() {
        assert_eq!(Invalid::at("spec.topic", "required").to_string(), "spec.topic: required");
        assert_eq!(Invalid::new("no field").to_string(), "no field");
        assert_eq!(Invalid::new("bad").for_field("metadata.name").to_string(), "metadata.name: bad");
    }

    #[test]
    fn parse_error_display_names_the_document_index() {
        let indexed = ParseError { index: Some(2), reason: "missing kind".into() };
        assert_eq!(indexed.to_string(), "document at index 2: missing kind");
        let single = ParseError { index: None, reason: "missing kind".into() };
        assert_eq!(single.to_string(), "missing kind");
    }
}
