//! The parsed form of an expression. Calls are resolved while parsing, so an unknown function
//! or a wrong argument count is a parse error, as it is when daprd compiles the expression.

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Literal(Literal),
    Variable(String),
    Select {
        operand: Box<Expr>,
        field: String,
    },
    /// The `has(operand.field)` macro.
    Has {
        operand: Box<Expr>,
        field: String,
    },
    Index {
        operand: Box<Expr>,
        index: Box<Expr>,
    },
    List(Vec<Expr>),
    Not(Box<Expr>),
    Negate(Box<Expr>),
    Relation {
        operator: Relation,
        left: Box<Expr>,
        right: Box<Expr>,
    },
    /// Chains of `&&` and of `||` are kept flat: a long chain then costs no recursion depth.
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Conditional {
        condition: Box<Expr>,
        then: Box<Expr>,
        otherwise: Box<Expr>,
    },
    Size(Box<Expr>),
    StringTest {
        test: StringTest,
        target: Box<Expr>,
        argument: Box<Expr>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relation {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
}

impl Relation {
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            Relation::Eq => "==",
            Relation::Ne => "!=",
            Relation::Lt => "<",
            Relation::Le => "<=",
            Relation::Gt => ">",
            Relation::Ge => ">=",
            Relation::In => "in",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StringTest {
    StartsWith,
    EndsWith,
    Contains,
}

impl StringTest {
    pub(crate) fn name(self) -> &'static str {
        match self {
            StringTest::StartsWith => "startsWith",
            StringTest::EndsWith => "endsWith",
            StringTest::Contains => "contains",
        }
    }
}
