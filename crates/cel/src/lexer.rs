//! Splits an expression into tokens, each with the line and column it starts at, following the
//! lexis of the CEL language definition.

use crate::ParseError;

/// Where a token starts: 1-based line and column, counted in characters so that a column is
/// right for expressions written in any script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) line: usize,
    pub(crate) column: usize,
}

impl Position {
    pub(crate) fn error(self, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, column: self.column, message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    Ident(String),
    /// Unsigned because the sign is a separate token; the parser folds `-` into the literal,
    /// which is how `-9223372036854775808` can be written at all.
    Int(u64),
    Double(f64),
    Str(String),
    True,
    False,
    Null,
    In,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Dot,
    Comma,
    Question,
    Colon,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
    End,
}

impl Kind {
    /// How an error message names this token after "found".
    pub(crate) fn describe(&self) -> String {
        let symbol = match self {
            Kind::Ident(name) => return format!("'{name}'"),
            Kind::Int(_) | Kind::Double(_) => return "a number".to_owned(),
            Kind::Str(_) => return "a string".to_owned(),
            Kind::End => return "the end of the expression".to_owned(),
            Kind::True => "true",
            Kind::False => "false",
            Kind::Null => "null",
            Kind::In => "in",
            Kind::LParen => "(",
            Kind::RParen => ")",
            Kind::LBracket => "[",
            Kind::RBracket => "]",
            Kind::LBrace => "{",
            Kind::RBrace => "}",
            Kind::Dot => ".",
            Kind::Comma => ",",
            Kind::Question => "?",
            Kind::Colon => ":",
            Kind::Not => "!",
            Kind::Minus => "-",
            Kind::Plus => "+",
            Kind::Star => "*",
            Kind::Slash => "/",
            Kind::Percent => "%",
            Kind::Eq => "==",
            Kind::Ne => "!=",
            Kind::Lt => "<",
            Kind::Le => "<=",
            Kind::Gt => ">",
            Kind::Ge => ">=",
            Kind::And => "&&",
            Kind::Or => "||",
        };
        format!("'{symbol}'")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) kind: Kind,
    pub(crate) at: Position,
}

/// The tokens of `source`, ending with [`Kind::End`].
pub(crate) fn tokenize(source: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { chars: source.chars().collect(), next: 0, position: Position { line: 1, column: 1 } };
    let mut tokens = Vec::new();
    loop {
        lexer.skip_blanks();
        let at = lexer.position;
        let Some(first) = lexer.peek(0) else {
            tokens.push(Token { kind: Kind::End, at });
            return Ok(tokens);
        };
        let kind = lexer.token(first, at)?;
        tokens.push(Token { kind, at });
    }
}

struct Lexer {
    chars: Vec<char>,
    next: usize,
    position: Position,
}

impl Lexer {
    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.next + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.next += 1;
        if c == '\n' {
            self.position = Position { line: self.position.line + 1, column: 1 };
        } else {
            self.position.column += 1;
        }
        Some(c)
    }

    fn eat(&mut self, expected: char) -> bool {
        let found = self.peek(0) == Some(expected);
        if found {
            self.bump();
        }
        found
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> String {
        let mut taken = String::new();
        while let Some(c) = self.peek(0).filter(|c| keep(*c)) {
            self.bump();
            taken.push(c);
        }
        taken
    }

    /// Skips whitespace and `//` comments; a YAML block scalar can carry either.
    fn skip_blanks(&mut self) {
        loop {
            match (self.peek(0), self.peek(1)) {
                (Some(' ' | '\t' | '\n' | '\r' | '\u{c}'), _) => {
                    self.bump();
                }
                (Some('/'), Some('/')) => {
                    self.take_while(|c| c != '\n');
                }
                _ => return,
            }
        }
    }

    fn token(&mut self, first: char, at: Position) -> Result<Kind, ParseError> {
        match (first, self.peek(1)) {
            ('0'..='9', _) | ('.', Some('0'..='9')) => self.number(at),
            ('"' | '\'', _) => self.string(at, first, false),
            ('r' | 'R', Some(quote @ ('"' | '\''))) => {
                self.bump();
                self.string(at, quote, true)
            }
            ('b' | 'B', Some('"' | '\'')) => Err(at.error("bytes literals are not supported")),
            (c, _) if c == '_' || c.is_ascii_alphabetic() => Ok(self.word()),
            _ => self.symbol(first, at),
        }
    }

    fn word(&mut self) -> Kind {
        let word = self.take_while(|c| c == '_' || c.is_ascii_alphanumeric());
        match word.as_str() {
            "true" => Kind::True,
            "false" => Kind::False,
            "null" => Kind::Null,
            "in" => Kind::In,
            _ => Kind::Ident(word),
        }
    }

    fn symbol(&mut self, first: char, at: Position) -> Result<Kind, ParseError> {
        self.bump();
        Ok(match first {
            '(' => Kind::LParen,
            ')' => Kind::RParen,
            '[' => Kind::LBracket,
            ']' => Kind::RBracket,
            '{' => Kind::LBrace,
            '}' => Kind::RBrace,
            '.' => Kind::Dot,
            ',' => Kind::Comma,
            '?' => Kind::Question,
            ':' => Kind::Colon,
            '-' => Kind::Minus,
            '+' => Kind::Plus,
            '*' => Kind::Star,
            '/' => Kind::Slash,
            '%' => Kind::Percent,
            '=' if self.eat('=') => Kind::Eq,
            '!' if self.eat('=') => Kind::Ne,
            '!' => Kind::Not,
            '<' if self.eat('=') => Kind::Le,
            '<' => Kind::Lt,
            '>' if self.eat('=') => Kind::Ge,
            '>' => Kind::Gt,
            '&' if self.eat('&') => Kind::And,
            '|' if self.eat('|') => Kind::Or,
            // A single `=`, `&` or `|` is almost always a typo for the doubled operator.
            '=' => return Err(at.error("expected '==' ('=' alone is not an operator)")),
            '&' => return Err(at.error("expected '&&' ('&' alone is not an operator)")),
            '|' => return Err(at.error("expected '||' ('|' alone is not an operator)")),
            other => return Err(at.error(format!("unexpected character '{other}'"))),
        })
    }

    fn number(&mut self, at: Position) -> Result<Kind, ParseError> {
        let out_of_range = || at.error("integer literal out of range");
        let kind = if self.peek(0) == Some('0') && matches!(self.peek(1), Some('x' | 'X')) {
            self.bump();
            self.bump();
            let digits = self.take_while(|c| c.is_ascii_hexdigit());
            if digits.is_empty() {
                return Err(at.error("expected hexadecimal digits after '0x'"));
            }
            Kind::Int(u64::from_str_radix(&digits, 16).map_err(|_| out_of_range())?)
        } else {
            let mut text = self.take_while(|c| c.is_ascii_digit());
            let mut double = false;
            if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
                self.bump();
                text.push('.');
                text.push_str(&self.take_while(|c| c.is_ascii_digit()));
                double = true;
            }
            if matches!(self.peek(0), Some('e' | 'E')) {
                let signed = matches!(self.peek(1), Some('+' | '-'));
                let first_digit = if signed { 2 } else { 1 };
                if self.peek(first_digit).is_some_and(|c| c.is_ascii_digit()) {
                    for _ in 0..first_digit {
                        text.extend(self.bump());
                    }
                    text.push_str(&self.take_while(|c| c.is_ascii_digit()));
                    double = true;
                }
            }
            if double {
                // The text is digits, a dot and an exponent, which Rust reads (too large is infinity).
                Kind::Double(text.parse().map_err(|_| at.error("invalid number"))?)
            } else {
                Kind::Int(text.parse().map_err(|_| out_of_range())?)
            }
        };
        match self.peek(0) {
            Some('u' | 'U') if matches!(kind, Kind::Int(_)) => {
                Err(self.position.error("unsigned integer literals are not supported; drop the 'u'"))
            }
            Some(c) if c == '_' || c.is_ascii_alphanumeric() => {
                Err(self.position.error(format!("unexpected '{c}' after a number")))
            }
            _ => Ok(kind),
        }
    }

    /// A string literal; its opening `quote` (after any `r` prefix) is next.
    fn string(&mut self, at: Position, quote: char, raw: bool) -> Result<Kind, ParseError> {
        self.bump();
        let triple = self.peek(0) == Some(quote) && self.peek(1) == Some(quote);
        if triple {
            self.bump();
            self.bump();
        }
        let mut value = String::new();
        loop {
            let Some(c) = self.peek(0) else {
                return Err(at.error(format!("unterminated string; expected a closing {quote}")));
            };
            if c == quote && (!triple || (self.peek(1) == Some(quote) && self.peek(2) == Some(quote))) {
                for _ in 0..if triple { 3 } else { 1 } {
                    self.bump();
                }
                return Ok(Kind::Str(value));
            }
            if !triple && (c == '\n' || c == '\r') {
                return Err(at.error(format!(
                    "unterminated string; expected a closing {quote} on the same line (triple quotes span lines)"
                )));
            }
            if c == '\\' && !raw {
                value.push(self.escape()?);
            } else {
                self.bump();
                value.push(c);
            }
        }
    }

    /// An escape sequence; the backslash is next.
    fn escape(&mut self) -> Result<char, ParseError> {
        let at = self.position;
        self.bump();
        let Some(c) = self.bump() else {
            return Err(at.error("unterminated escape sequence"));
        };
        Ok(match c {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' | '?' | '"' | '\'' | '`' => c,
            'x' | 'X' => self.code_point(at, String::new(), 2, 16)?,
            'u' => self.code_point(at, String::new(), 4, 16)?,
            'U' => self.code_point(at, String::new(), 8, 16)?,
            '0'..='3' => self.code_point(at, c.to_string(), 3, 8)?,
            other => return Err(at.error(format!("invalid escape sequence '\\{other}'"))),
        })
    }

    /// Reads the digits of a numeric escape until `digits` has `count` of them.
    fn code_point(&mut self, at: Position, mut digits: String, count: usize, radix: u32) -> Result<char, ParseError> {
        while digits.len() < count {
            match self.peek(0).filter(|c| c.is_digit(radix)) {
                Some(c) => {
                    self.bump();
                    digits.push(c);
                }
                None => {
                    let kind = if radix == 8 { "octal" } else { "hexadecimal" };
                    return Err(at.error(format!("expected {count} {kind} digits in escape sequence")));
                }
            }
        }
        u32::from_str_radix(&digits, radix)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| at.error(format!("escape sequence names no Unicode character (U+{digits})")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(source: &str) -> Vec<Kind> {
        tokenize(source).unwrap().into_iter().map(|token| token.kind).collect()
    }

    fn string(source: &str) -> String {
        match kinds(source).as_slice() {
            [Kind::Str(value), Kind::End] => value.clone(),
            other => panic!("{source}: {other:?}"),
        }
    }

    #[test]
    fn operators_and_words() {
        use Kind::*;
        assert_eq!(
            kinds("a.b_2[0] == 'x' && !c || d != e < f <= g > h >= i in j ? k : l"),
            vec![
                Ident("a".into()),
                Dot,
                Ident("b_2".into()),
                LBracket,
                Int(0),
                RBracket,
                Eq,
                Str("x".into()),
                And,
                Not,
                Ident("c".into()),
                Or,
                Ident("d".into()),
                Ne,
                Ident("e".into()),
                Lt,
                Ident("f".into()),
                Le,
                Ident("g".into()),
                Gt,
                Ident("h".into()),
                Ge,
                Ident("i".into()),
                In,
                Ident("j".into()),
                Question,
                Ident("k".into()),
                Colon,
                Ident("l".into()),
                End,
            ]
        );
        assert_eq!(kinds("true false null (),{}-+*/%"), {
            vec![True, False, Null, LParen, RParen, Comma, LBrace, RBrace, Minus, Plus, Star, Slash, Percent, End]
        });
    }

    #[test]
    fn numbers() {
        let cases = [
            ("0", Kind::Int(0)),
            ("007", Kind::Int(7)),
            ("18446744073709551615", Kind::Int(u64::MAX)),
            ("0x1F", Kind::Int(31)),
            ("0XfF", Kind::Int(255)),
            ("1.5", Kind::Double(1.5)),
            (".25", Kind::Double(0.25)),
            ("1e3", Kind::Double(1000.0)),
            ("2.5E-1", Kind::Double(0.25)),
            ("1e+2", Kind::Double(100.0)),
        ];
        for (source, expected) in cases {
            assert_eq!(kinds(source), vec![expected, Kind::End], "{source}");
        }
        // `1.foo` is a field selection on 1, not a broken double.
        assert_eq!(kinds("1.a"), vec![Kind::Int(1), Kind::Dot, Kind::Ident("a".into()), Kind::End]);
    }

    #[test]
    fn strings_and_escapes() {
        let cases = [
            (r#""a'b""#, "a'b"),
            (r#"'a"b'"#, "a\"b"),
            (r#""""a"b""c""""#, "a\"b\"\"c"),
            ("'''one\ntwo'''", "one\ntwo"),
            (r#""""#, ""),
            (r#""\a\b\f\n\r\t\v\\\?\"\'\`""#, "\u{7}\u{8}\u{c}\n\r\t\u{b}\\?\"'`"),
            (r#""\x41\X42\u00e9\U0001F600\101""#, "ABé😀A"),
            (r#"r"\n\x""#, "\\n\\x"),
            (r#"R'\'"#, "\\"),
            ("'日本語 ü'", "日本語 ü"),
        ];
        for (source, expected) in cases {
            assert_eq!(string(source), expected, "{source}");
        }
    }

    #[test]
    fn blanks_and_comments_are_skipped_and_positions_count_characters() {
        let tokens = tokenize("// leading comment\n  'é' ==\n\tx // trailing").unwrap();
        let positions: Vec<(usize, usize)> = tokens.iter().map(|t| (t.at.line, t.at.column)).collect();
        assert_eq!(positions, vec![(2, 3), (2, 7), (3, 2), (3, 15)]);
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let cases = [
            ("a = b", 1, 3, "expected '==' ('=' alone is not an operator)"),
            ("a & b", 1, 3, "expected '&&'"),
            ("a | b", 1, 3, "expected '||'"),
            ("a # b", 1, 3, "unexpected character '#'"),
            ("x == 'é\u{a0}", 1, 6, "unterminated string; expected a closing '"),
            ("'abc\ndef'", 1, 1, "unterminated string; expected a closing ' on the same line"),
            ("\"\"\"abc", 1, 1, "unterminated string; expected a closing \""),
            (r#""a\qb""#, 1, 3, "invalid escape sequence '\\q'"),
            (r#""\x4""#, 1, 2, "expected 2 hexadecimal digits in escape sequence"),
            (r#""\18""#, 1, 2, "expected 3 octal digits in escape sequence"),
            (r#""\uD800""#, 1, 2, "escape sequence names no Unicode character (U+D800)"),
            (r#""\U00110000""#, 1, 2, "escape sequence names no Unicode character"),
            ("\"\\", 1, 2, "unterminated escape sequence"),
            ("b'abc'", 1, 1, "bytes literals are not supported"),
            ("0x", 1, 1, "expected hexadecimal digits after '0x'"),
            ("18446744073709551616", 1, 1, "integer literal out of range"),
            ("0x10000000000000000", 1, 1, "integer literal out of range"),
            ("\n 12u", 2, 4, "unsigned integer literals are not supported"),
            ("12abc", 1, 3, "unexpected 'a' after a number"),
            ("1.5u", 1, 4, "unexpected 'u' after a number"),
        ];
        for (source, line, column, message) in cases {
            let error = tokenize(source).expect_err(source);
            assert_eq!((error.line, error.column), (line, column), "{source}: {error}");
            assert!(error.message.starts_with(message), "{source}: {error}");
        }
    }
}
