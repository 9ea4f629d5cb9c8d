//! Recursive descent over CEL's grammar, loosest binding first: `?:`, `||`, `&&`, the relations
//! (`==`, `!=`, `<`, `<=`, `>`, `>=`, `in`, all one level and left-associative), unary `!` and
//! `-`, then selection, indexing and calls.

use crate::ast::{Expr, Literal, Relation, StringTest};
use crate::lexer::{tokenize, Kind, Position, Token};
use crate::ParseError;

/// How deeply an expression may nest (parentheses, list elements, call arguments, chained
/// relations, selections, unary operators). CEL asks for at least 12 to 32 depending on the
/// construct; the cap keeps a hostile expression from exhausting the stack while parsing or
/// evaluating.
const MAX_DEPTH: usize = 100;

/// Words CEL keeps for embedding languages; they cannot name a variable or a function.
const RESERVED: [&str; 17] = [
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
];

pub(crate) fn parse(source: &str) -> Result<Expr, ParseError> {
    let mut parser = Parser { tokens: tokenize(source)?, next: 0, depth: 0 };
    let expr = parser.expr()?;
    match parser.peek() {
        Kind::End => Ok(expr),
        _ => Err(parser.unexpected("an operator or the end of the expression")),
    }
}

struct Parser {
    /// Always ends with [`Kind::End`], which `advance` never moves past.
    tokens: Vec<Token>,
    next: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Kind {
        &self.tokens[self.next].kind
    }

    fn at(&self) -> Position {
        self.tokens[self.next].at
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.next].clone();
        if token.kind != Kind::End {
            self.next += 1;
        }
        token
    }

    fn eat(&mut self, kind: &Kind) -> bool {
        let found = self.peek() == kind;
        if found {
            self.advance();
        }
        found
    }

    fn expect(&mut self, kind: &Kind) -> Result<(), ParseError> {
        if self.eat(kind) {
            Ok(())
        } else {
            Err(self.unexpected(&kind.describe()))
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.at().error(format!("expected {expected}, found {}", self.peek().describe()))
    }

    /// Counts one level of nesting; each caller gives its levels back when it returns.
    fn descend(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.at().error(format!("expression nests more than {MAX_DEPTH} levels deep")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.descend()?;
        let condition = self.or()?;
        let expr = if self.eat(&Kind::Question) {
            let then = self.or()?;
            self.expect(&Kind::Colon)?;
            let otherwise = self.expr()?;
            Expr::Conditional { condition: Box::new(condition), then: Box::new(then), otherwise: Box::new(otherwise) }
        } else {
            condition
        };
        self.depth -= 1;
        Ok(expr)
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.and()?];
        while self.eat(&Kind::Or) {
            terms.push(self.and()?);
        }
        Ok(chain(terms, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut terms = vec![self.relation()?];
        while self.eat(&Kind::And) {
            terms.push(self.relation()?);
        }
        Ok(chain(terms, Expr::And))
    }

    fn relation(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.operand()?;
        let mut steps = 0;
        loop {
            let operator = match self.peek() {
                Kind::Eq => Relation::Eq,
                Kind::Ne => Relation::Ne,
                Kind::Lt => Relation::Lt,
                Kind::Le => Relation::Le,
                Kind::Gt => Relation::Gt,
                Kind::Ge => Relation::Ge,
                Kind::In => Relation::In,
                _ => break,
            };
            self.advance();
            self.descend()?;
            steps += 1;
            let right = self.operand()?;
            left = Expr::Relation { operator, left: Box::new(left), right: Box::new(right) };
        }
        self.depth -= steps;
        Ok(left)
    }

    /// A unary expression. CEL puts arithmetic between relations and unary operators; this
    /// subset has none, so an arithmetic operator here gets its own message.
    fn operand(&mut self) -> Result<Expr, ParseError> {
        let operand = self.unary()?;
        match self.peek() {
            Kind::Plus | Kind::Minus | Kind::Star | Kind::Slash | Kind::Percent => {
                Err(self
                    .unexpected("a comparison, '&&', '||' or the end of the expression (arithmetic is not supported)"))
            }
            _ => Ok(operand),
        }
    }

    /// `!` and `-` repeat but do not mix, as in CEL's grammar.
    fn unary(&mut self) -> Result<Expr, ParseError> {
        let operator = self.peek().clone();
        if !matches!(operator, Kind::Not | Kind::Minus) {
            return self.member(false);
        }
        let mut count = 0;
        while self.eat(&operator) {
            self.descend()?;
            count += 1;
        }
        // A minus right before a number belongs to the literal, which is how the most negative
        // integer can be written.
        let folded = operator == Kind::Minus && matches!(self.peek(), Kind::Int(_) | Kind::Double(_));
        let mut expr = self.member(folded)?;
        for _ in usize::from(folded)..count {
            expr = match operator {
                Kind::Not => Expr::Not(Box::new(expr)),
                _ => Expr::Negate(Box::new(expr)),
            };
        }
        self.depth -= count;
        Ok(expr)
    }

    fn member(&mut self, negative: bool) -> Result<Expr, ParseError> {
        let mut expr = self.primary(negative)?;
        let mut steps = 0;
        loop {
            if self.eat(&Kind::Dot) {
                self.descend()?;
                let at = self.at();
                let Kind::Ident(name) = self.peek().clone() else {
                    return Err(self.unexpected("a field name after '.'"));
                };
                self.advance();
                expr = if self.eat(&Kind::LParen) {
                    let arguments = self.arguments()?;
                    method(expr, &name, at, arguments)?
                } else {
                    Expr::Select { operand: Box::new(expr), field: name }
                };
            } else if self.eat(&Kind::LBracket) {
                self.descend()?;
                let index = self.expr()?;
                self.expect(&Kind::RBracket)?;
                expr = Expr::Index { operand: Box::new(expr), index: Box::new(index) };
            } else {
                break;
            }
            steps += 1;
        }
        self.depth -= steps;
        Ok(expr)
    }

    fn primary(&mut self, negative: bool) -> Result<Expr, ParseError> {
        let Token { kind, at } = self.advance();
        let literal = match kind {
            Kind::Int(magnitude) => {
                let value =
                    if negative { 0_i64.checked_sub_unsigned(magnitude) } else { i64::try_from(magnitude).ok() };
                Literal::Int(value.ok_or_else(|| at.error("integer literal out of range"))?)
            }
            Kind::Double(value) => Literal::Double(if negative { -value } else { value }),
            Kind::Str(value) => Literal::String(value),
            Kind::True => Literal::Bool(true),
            Kind::False => Literal::Bool(false),
            Kind::Null => Literal::Null,
            Kind::Ident(name) => {
                if RESERVED.contains(&name.as_str()) {
                    return Err(at.error(format!("'{name}' is a reserved word; it cannot name a variable or function")));
                }
                if self.eat(&Kind::LParen) {
                    let arguments = self.arguments()?;
                    return function(&name, at, arguments);
                }
                return Ok(Expr::Variable(name));
            }
            Kind::LParen => {
                let inner = self.expr()?;
                self.expect(&Kind::RParen)?;
                return Ok(inner);
            }
            Kind::LBracket => return self.list(),
            Kind::LBrace => return Err(at.error("map literals are not supported")),
            other => return Err(at.error(format!("expected an expression, found {}", other.describe()))),
        };
        Ok(Expr::Literal(literal))
    }

    /// Call arguments; the `(` is behind.
    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        let mut arguments = Vec::new();
        if self.eat(&Kind::RParen) {
            return Ok(arguments);
        }
        loop {
            arguments.push(self.expr()?);
            if self.eat(&Kind::RParen) {
                return Ok(arguments);
            }
            if !self.eat(&Kind::Comma) {
                return Err(self.unexpected("',' or ')'"));
            }
        }
    }

    /// A list literal, which may end with a comma; the `[` is behind.
    fn list(&mut self) -> Result<Expr, ParseError> {
        let mut elements = Vec::new();
        loop {
            if self.eat(&Kind::RBracket) {
                return Ok(Expr::List(elements));
            }
            elements.push(self.expr()?);
            if !self.eat(&Kind::Comma) {
                if !self.eat(&Kind::RBracket) {
                    return Err(self.unexpected("',' or ']'"));
                }
                return Ok(Expr::List(elements));
            }
        }
    }
}

/// One term stands for itself; more make an `&&` or `||` node.
fn chain(mut terms: Vec<Expr>, build: fn(Vec<Expr>) -> Expr) -> Expr {
    if terms.len() == 1 {
        terms.swap_remove(0)
    } else {
        build(terms)
    }
}

/// A global call: `has(a.b)` or `size(x)`.
fn function(name: &str, at: Position, arguments: Vec<Expr>) -> Result<Expr, ParseError> {
    if !matches!(name, "has" | "size") {
        return Err(at.error(format!(
            "unsupported function '{name}'; expected has(), size() or a method such as .startsWith()"
        )));
    }
    let argument = single(name, at, arguments)?;
    match (name, argument) {
        ("size", argument) => Ok(Expr::Size(Box::new(argument))),
        (_, Expr::Select { operand, field }) => Ok(Expr::Has { operand, field }),
        _ => Err(at.error("expected a field selection inside has(), such as has(event.data.express)")),
    }
}

/// A receiver call: `target.name(arguments)`.
fn method(target: Expr, name: &str, at: Position, arguments: Vec<Expr>) -> Result<Expr, ParseError> {
    let test = match name {
        "size" if arguments.is_empty() => return Ok(Expr::Size(Box::new(target))),
        "size" => return Err(at.error(format!("size() as a method takes no argument, found {}", arguments.len()))),
        "startsWith" => StringTest::StartsWith,
        "endsWith" => StringTest::EndsWith,
        "contains" => StringTest::Contains,
        _ => {
            return Err(
                at.error(format!("unsupported method '{name}'; expected startsWith, endsWith, contains or size"))
            )
        }
    };
    let argument = single(name, at, arguments)?;
    Ok(Expr::StringTest { test, target: Box::new(target), argument: Box::new(argument) })
}

fn single(name: &str, at: Position, arguments: Vec<Expr>) -> Result<Expr, ParseError> {
    let count = arguments.len();
    match <[Expr; 1]>::try_from(arguments) {
        Ok([argument]) => Ok(argument),
        Err(_) => Err(at.error(format!("{name}() takes 1 argument, found {count}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree, fully parenthesised, to check how an expression groups.
    fn show(expr: &Expr) -> String {
        let list = |items: &[Expr], separator: &str| items.iter().map(show).collect::<Vec<_>>().join(separator);
        match expr {
            Expr::Literal(Literal::Null) => "null".to_owned(),
            Expr::Literal(Literal::Bool(value)) => value.to_string(),
            Expr::Literal(Literal::Int(value)) => value.to_string(),
            Expr::Literal(Literal::Double(value)) => format!("{value:?}"),
            Expr::Literal(Literal::String(value)) => format!("{value:?}"),
            Expr::Variable(name) => name.clone(),
            Expr::Select { operand, field } => format!("{}.{field}", show(operand)),
            Expr::Has { operand, field } => format!("has({}.{field})", show(operand)),
            Expr::Index { operand, index } => format!("{}[{}]", show(operand), show(index)),
            Expr::List(items) => format!("[{}]", list(items, ", ")),
            Expr::Not(operand) => format!("!{}", show(operand)),
            Expr::Negate(operand) => format!("-{}", show(operand)),
            Expr::Relation { operator, left, right } => {
                format!("({} {} {})", show(left), operator.symbol(), show(right))
            }
            Expr::And(terms) => format!("({})", list(terms, " && ")),
            Expr::Or(terms) => format!("({})", list(terms, " || ")),
            Expr::Conditional { condition, then, otherwise } => {
                format!("({} ? {} : {})", show(condition), show(then), show(otherwise))
            }
            Expr::Size(operand) => format!("size({})", show(operand)),
            Expr::StringTest { test, target, argument } => {
                format!("{}.{}({})", show(target), test.name(), show(argument))
            }
        }
    }

    #[test]
    fn grouping_follows_cel_precedence() {
        let cases = [
            ("a || b && c", "(a || (b && c))"),
            ("a && b || c && d", "((a && b) || (c && d))"),
            ("a || b || c", "(a || b || c)"),
            ("a == b && c != d", "((a == b) && (c != d))"),
            ("a < b == c", "((a < b) == c)"),
            ("a in b == c", "((a in b) == c)"),
            ("!a == b", "(!a == b)"),
            ("!!a", "!!a"),
            ("-a.b", "-a.b"),
            ("--1", "--1"),
            ("-1", "-1"),
            ("- 2.5", "-2.5"),
            ("-9223372036854775808", "-9223372036854775808"),
            ("(a || b) && c", "((a || b) && c)"),
            ("a ? b : c ? d : e", "(a ? b : (c ? d : e))"),
            ("a || b ? c && d : e", "((a || b) ? (c && d) : e)"),
            ("a.b[0].c", "a.b[0].c"),
            ("a[\"k\"][b.c]", "a[\"k\"][b.c]"),
            ("a.b.startsWith('x') || size(c) > 1", "(a.b.startsWith(\"x\") || (size(c) > 1))"),
            ("c.size() == 0", "(size(c) == 0)"),
            ("has(a.b.c) && !has(a.d)", "(has(a.b.c) && !has(a.d))"),
            ("[1, 'x', [],]", "[1, \"x\", []]"),
            ("x.package == var_", "(x.package == var_)"),
        ];
        for (source, expected) in cases {
            let expr = parse(source).unwrap_or_else(|error| panic!("{source}: {error}"));
            assert_eq!(show(&expr), expected, "{source}");
        }
    }

    #[test]
    fn errors_name_position_and_expectation() {
        let cases = [
            ("", 1, 1, "expected an expression, found the end of the expression"),
            ("event.type ==", 1, 14, "expected an expression, found the end of the expression"),
            ("(a || b", 1, 8, "expected ')', found the end of the expression"),
            ("a b", 1, 3, "expected an operator or the end of the expression, found 'b'"),
            ("a == 'x' 'y'", 1, 10, "expected an operator or the end of the expression, found a string"),
            ("a.", 1, 3, "expected a field name after '.', found the end of the expression"),
            ("a.true", 1, 3, "expected a field name after '.', found 'true'"),
            ("a[0", 1, 4, "expected ']', found the end of the expression"),
            ("[1 2]", 1, 4, "expected ',' or ']', found a number"),
            ("[,]", 1, 2, "expected an expression, found ','"),
            ("size(a b)", 1, 8, "expected ',' or ')', found 'b'"),
            ("a ? b", 1, 6, "expected ':', found the end of the expression"),
            ("a + 1 > 2", 1, 3, "expected a comparison, '&&', '||' or the end of the expression (arithmetic"),
            ("event.data.price * 2", 1, 18, "expected a comparison"),
            ("!-a", 1, 2, "expected an expression, found '-'"),
            ("{'a': 1}", 1, 1, "map literals are not supported"),
            ("if == 1", 1, 1, "'if' is a reserved word"),
            ("matches(a, 'x')", 1, 1, "unsupported function 'matches'"),
            ("a.matches('x')", 1, 3, "unsupported method 'matches'"),
            ("has(a)", 1, 1, "expected a field selection inside has()"),
            ("has(a[0])", 1, 1, "expected a field selection inside has()"),
            ("has(a.b, a.c)", 1, 1, "has() takes 1 argument, found 2"),
            ("size()", 1, 1, "size() takes 1 argument, found 0"),
            ("a.size(1)", 1, 3, "size() as a method takes no argument, found 1"),
            ("a.startsWith()", 1, 3, "startsWith() takes 1 argument, found 0"),
            ("a.\n  endsWith('x', 'y')", 2, 3, "endsWith() takes 1 argument, found 2"),
            ("9223372036854775808 > 0", 1, 1, "integer literal out of range"),
            ("-9223372036854775809 < 0", 1, 2, "integer literal out of range"),
        ];
        for (source, line, column, message) in cases {
            let error = parse(source).expect_err(source);
            assert_eq!((error.line, error.column), (line, column), "{source}: {error}");
            assert!(error.message.starts_with(message), "{source}: {error}");
        }
    }

    #[test]
    fn nesting_is_capped() {
        let nested = |depth: usize| format!("{}true{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_DEPTH - 1)).is_ok());
        let error = parse(&nested(MAX_DEPTH + 1)).unwrap_err();
        assert!(error.message.contains("nests more than"), "{error}");
        let relations = format!("a{}", " == a".repeat(MAX_DEPTH + 1));
        assert!(parse(&relations).unwrap_err().message.contains("nests more than"));
        let selections = format!("a{}", ".b".repeat(MAX_DEPTH + 1));
        assert!(parse(&selections).unwrap_err().message.contains("nests more than"));
        let negations = format!("{}a", "!".repeat(MAX_DEPTH + 1));
        assert!(parse(&negations).unwrap_err().message.contains("nests more than"));
        // Flat chains cost no depth, so CEL's "32 terms in a row" and far more are fine.
        let terms = vec!["a"; 1000].join(" && ");
        assert!(parse(&terms).is_ok());
        // Each construct gives its depth back, so siblings never add up.
        let siblings = vec!["(!a == --b.c[0] && [d.size()] in e)"; MAX_DEPTH * 2].join(" || ");
        assert!(parse(&siblings).is_ok());
    }
}
