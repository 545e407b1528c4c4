//! The FHIRPath syntax tree and the table of known functions.

use rust_decimal::Decimal;

use crate::datetime::Partial;

#[derive(Clone, Debug)]
pub(crate) enum Expr {
    Empty,
    Literal(Literal),
    This,
    Index,
    Total,
    Variable(String),
    /// A member of `base`; without a base, a member of the focus (or a type name filter on it).
    Member(Option<Box<Expr>>, String),
    /// A function call on `base`; without a base, on the focus.
    Call(Option<Box<Expr>>, Function, Vec<Expr>),
    Indexer(Box<Expr>, Box<Expr>),
    Negate(Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `x is T` and `x.is(T)`.
    Is(Option<Box<Expr>>, TypeSpecifier),
    /// `x as T` and `x.as(T)`.
    As(Option<Box<Expr>>, TypeSpecifier),
    OfType(Option<Box<Expr>>, TypeSpecifier),
}

#[derive(Clone, Debug)]
pub(crate) enum Literal {
    Boolean(bool),
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Date(Partial),
    DateTime(Partial),
    Time(Partial),
    Quantity(Decimal, String),
}

#[derive(Clone, Debug)]
pub(crate) struct TypeSpecifier {
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BinaryOp {
    Multiply,
    Divide,
    IntegerDivide,
    Modulo,
    Add,
    Subtract,
    Concatenate,
    Union,
    Less,
    Greater,
    LessOrEqual,
    GreaterOrEqual,
    Equal,
    NotEqual,
    Equivalent,
    NotEquivalent,
    In,
    Contains,
    And,
    Or,
    Xor,
    Implies,
}

macro_rules! functions {
    ($($variant:ident $name:literal $min:literal $max:literal,)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum Function { $($variant,)* }

        impl Function {
            /// The function of that name with its minimum and maximum argument counts.
            pub(crate) fn lookup(name: &str) -> Option<(Function, usize, usize)> {
                match name {
                    $($name => Some((Function::$variant, $min, $max)),)*
                    _ => None,
                }
            }
        }
    };
}

functions! {
    Empty "empty" 0 0,
    Exists "exists" 0 1,
    All "all" 1 1,
    AllTrue "allTrue" 0 0,
    AnyTrue "anyTrue" 0 0,
    AllFalse "allFalse" 0 0,
    AnyFalse "anyFalse" 0 0,
    SubsetOf "subsetOf" 1 1,
    SupersetOf "supersetOf" 1 1,
    Count "count" 0 0,
    Distinct "distinct" 0 0,
    IsDistinct "isDistinct" 0 0,
    Where "where" 1 1,
    Select "select" 1 1,
    Repeat "repeat" 1 1,
    Single "single" 0 0,
    First "first" 0 0,
    Last "last" 0 0,
    Tail "tail" 0 0,
    Skip "skip" 1 1,
    Take "take" 1 1,
    Intersect "intersect" 1 1,
    Exclude "exclude" 1 1,
    Union "union" 1 1,
    Combine "combine" 1 1,
    Iif "iif" 2 3,
    ToBoolean "toBoolean" 0 0,
    ConvertsToBoolean "convertsToBoolean" 0 0,
    ToInteger "toInteger" 0 0,
    ConvertsToInteger "convertsToInteger" 0 0,
    ToDecimal "toDecimal" 0 0,
    ConvertsToDecimal "convertsToDecimal" 0 0,
    ToStringFn "toString" 0 0,
    ConvertsToString "convertsToString" 0 0,
    ToDate "toDate" 0 0,
    ConvertsToDate "convertsToDate" 0 0,
    ToDateTime "toDateTime" 0 0,
    ConvertsToDateTime "convertsToDateTime" 0 0,
    ToTime "toTime" 0 0,
    ConvertsToTime "convertsToTime" 0 0,
    ToQuantity "toQuantity" 0 1,
    ConvertsToQuantity "convertsToQuantity" 0 1,
    IndexOf "indexOf" 1 1,
    Substring "substring" 1 2,
    StartsWith "startsWith" 1 1,
    EndsWith "endsWith" 1 1,
    ContainsFn "contains" 1 1,
    Upper "upper" 0 0,
    Lower "lower" 0 0,
    Replace "replace" 2 2,
    Matches "matches" 1 1,
    ReplaceMatches "replaceMatches" 2 2,
    Length "length" 0 0,
    ToChars "toChars" 0 0,
    Split "split" 1 1,
    Join "join" 0 1,
    Trim "trim" 0 0,
    Encode "encode" 1 1,
    Decode "decode" 1 1,
    Escape "escape" 1 1,
    Unescape "unescape" 1 1,
    Abs "abs" 0 0,
    Ceiling "ceiling" 0 0,
    Exp "exp" 0 0,
    Floor "floor" 0 0,
    Ln "ln" 0 0,
    Log "log" 1 1,
    Power "power" 1 1,
    Round "round" 0 1,
    Sqrt "sqrt" 0 0,
    Truncate "truncate" 0 0,
    Children "children" 0 0,
    Descendants "descendants" 0 0,
    Trace "trace" 1 2,
    Now "now" 0 0,
    Today "today" 0 0,
    TimeOfDay "timeOfDay" 0 0,
    Not "not" 0 0,
    Extension "extension" 1 1,
    HasValue "hasValue" 0 0,
    GetValue "getValue" 0 0,
    Resolve "resolve" 0 0,
    MemberOf "memberOf" 1 1,
    ConformsTo "conformsTo" 1 1,
    HtmlChecks "htmlChecks" 0 0,
    Aggregate "aggregate" 1 2,
    LowBoundary "lowBoundary" 0 1,
    HighBoundary "highBoundary" 0 1,
    Precision "precision" 0 0,
    Subsumes "subsumes" 1 1,
    SubsumedBy "subsumedBy" 1 1,
    Comparable "comparable" 1 1,
    ElementDefinition "elementDefinition" 0 0,
    Slice "slice" 2 2,
    CheckModifiers "checkModifiers" 1 1,
    TypeFn "type" 0 0,
}
