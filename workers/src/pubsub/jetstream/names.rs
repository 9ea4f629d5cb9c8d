//! How the JetStream broker names things on the server: subjects for topics, durable consumers for groups, and
//! which stream and consumer an ack subject belongs to.

use sha2::{Digest, Sha256};

/// `text` as one subject token: ASCII letters, digits and `-` stand for themselves, every other byte is `_`
/// and two hex digits, so no two texts share a token; the empty text is `_`, which no other text gives.
pub(super) fn subject_token(text: &str) -> String {
    if text.is_empty() {
        return "_".to_owned();
    }
    let mut token = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' {
            token.push(char::from(byte));
        } else {
            token.push_str(&format!("_{byte:02X}"));
        }
    }
    token
}

/// The durable consumer of `group` on `topic`: a hash, since names must be short and avoid many characters.
pub(super) fn consumer_name(topic: &str, group: &str) -> String {
    let mut hash = Sha256::new();
    // The topic's length first, so that no other (topic, group) pair hashes the same bytes.
    hash.update((topic.len() as u64).to_be_bytes());
    hash.update(topic.as_bytes());
    hash.update(group.as_bytes());
    hash.finalize().iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `name` may name a stream: JetStream names are file names on the server too.
pub(super) fn is_valid_stream_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

/// Whether `prefix` is a subject without wildcards.
pub(super) fn is_valid_subject_prefix(prefix: &str) -> bool {
    prefix
        .split('.')
        .all(|token| !token.is_empty() && !token.chars().any(|c| c.is_whitespace() || c == '*' || c == '>'))
}

/// The stream and consumer an ack subject (`$JS.ACK.<stream>.<consumer>.<5 numbers>`, or with a domain and
/// an account hash before the stream and possibly more tokens after the numbers) belongs to.
pub(super) fn ack_subject_owner(id: &str) -> Option<(&str, &str)> {
    if id.chars().any(|c| c.is_whitespace() || c == '*' || c == '>') {
        return None;
    }
    let tokens: Vec<&str> = id.split('.').collect();
    let (stream, consumer, numbers) = match tokens.as_slice() {
        ["$JS", "ACK", stream, consumer, numbers @ ..] if numbers.len() == 5 => (*stream, *consumer, numbers),
        ["$JS", "ACK", _domain, _account, stream, consumer, rest @ ..] if rest.len() >= 5 => {
            (*stream, *consumer, &rest[..5])
        }
        _ => return None,
    };
    let all_numbers = numbers.iter().all(|number| !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()));
    all_numbers.then_some((stream, consumer))
}
