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
    /// A subexpression that depends neither on the focus nor on `$this`, `$index` or `$total` (such as
    /// `%resource.descendants().reference` inside a `where`): evaluated once per evaluation and memoised.
    Constant(Box<Expr>),
}

impl Expr {
    /// Wraps the largest constant subexpressions that are worth memoising in [`Expr::Constant`].
    pub(crate) fn mark_constants(self) -> Expr {
        self.fold().0
    }

    /// The expression with its constant children marked, and whether it is constant itself.
    fn fold(self) -> (Expr, bool) {
        let child = |expr: Box<Expr>| -> (Box<Expr>, bool) {
            let (expr, constant) = expr.fold();
            (Box::new(expr), constant)
        };
        let optional = |expr: Option<Box<Expr>>| -> (Option<Box<Expr>>, bool) {
            match expr.map(child) {
                Some((expr, constant)) => (Some(expr), constant),
                None => (None, false),
            }
        };
        // A constant child of a node that is not constant is memoised.
        let mark = |(expr, constant): (Box<Expr>, bool), parent: bool| -> Box<Expr> {
            if constant && !parent && !expr.is_trivial() {
                Box::new(Expr::Constant(expr))
            } else {
                expr
            }
        };
        match self {
            // Without a root, `%context` is the focus.
            Expr::Variable(ref name) if name == "context" => (self, false),
            Expr::Empty | Expr::Literal(_) | Expr::Variable(_) => (self, true),
            Expr::This | Expr::Index | Expr::Total | Expr::Constant(_) => (self, false),
            Expr::Member(base, name) => {
                let (base, constant) = optional(base);
                (Expr::Member(base, name), constant)
            }
            Expr::Call(base, function, args) => {
                let (base, base_constant) = optional(base);
                let args: Vec<(Box<Expr>, bool)> =
                    args.into_iter().map(|arg| child(Box::new(arg))).collect();
                // `trace` passes its input through: a traced constant is constant too (and is logged once
                // per memoisation rather than once per use). R4's `ref-1` ends in
                // `in %rootResource.contained.id.trace('ids')`: kept out of the memo, every reference
                // cloned and scanned the list of contained ids, quadratic in the contained resources.
                let constant = base_constant && args.iter().all(|(_, constant)| *constant);
                let base = base.map(|base| mark((base, base_constant), constant));
                let args = args.into_iter().map(|arg| *mark(arg, constant)).collect();
                (Expr::Call(base, function, args), constant)
            }
            Expr::Indexer(base, index) => {
                let (base, index) = (child(base), child(index));
                let constant = base.1 && index.1;
                (Expr::Indexer(mark(base, constant), mark(index, constant)), constant)
            }
            Expr::Negate(operand) => {
                let (operand, constant) = child(operand);
                (Expr::Negate(operand), constant)
            }
            Expr::Binary(op, left, right) => {
                let (left, right) = (child(left), child(right));
                let constant = left.1 && right.1;
                (Expr::Binary(op, mark(left, constant), mark(right, constant)), constant)
            }
            Expr::Is(base, type_specifier) => {
                let (base, constant) = optional(base);
                (Expr::Is(base, type_specifier), constant)
            }
            Expr::As(base, type_specifier) => {
                let (base, constant) = optional(base);
                (Expr::As(base, type_specifier), constant)
            }
            Expr::OfType(base, type_specifier) => {
                let (base, constant) = optional(base);
                (Expr::OfType(base, type_specifier), constant)
            }
        }
    }

    /// Whether evaluating the expression costs no more than copying its result.
    fn is_trivial(&self) -> bool {
        matches!(self, Expr::Empty | Expr::Literal(_) | Expr::Variable(_))
    }
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

/// The section of the FHIRPath specification (or of FHIR's additions to it) a function belongs to; each has
/// its module under `functions`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Section {
    /// 5.1 Existence, with `not()` of 6.5 Boolean logic.
    Existence,
    /// 5.2 Filtering and projection.
    Filtering,
    /// 5.3 Subsetting.
    Subsetting,
    /// 5.4 Combining.
    Combining,
    /// 5.5 Conversion, with the boundary functions.
    Conversion,
    /// 5.6 String manipulation.
    String,
    /// 5.7 Math.
    Math,
    /// 5.8 Tree navigation.
    Navigation,
    /// 5.9 Utility functions.
    Utility,
    /// Aggregates (`aggregate()`).
    Aggregate,
    /// Reflection (`type()`).
    Types,
    /// The functions FHIR adds ("Additional functions" of the FHIR R4 FHIRPath page).
    Fhir,
}

macro_rules! functions {
    ($($variant:ident $name:literal $min:literal $max:tt $section:ident,)*) => {
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

            /// The section of the specification defining the function.
            pub(crate) fn section(self) -> Section {
                match self {
                    $(Function::$variant => Section::$section,)*
                }
            }
        }
    };
}

functions! {
    Empty "empty" 0 0 Existence,
    Exists "exists" 0 1 Existence,
    All "all" 1 1 Existence,
    AllTrue "allTrue" 0 0 Existence,
    AnyTrue "anyTrue" 0 0 Existence,
    AllFalse "allFalse" 0 0 Existence,
    AnyFalse "anyFalse" 0 0 Existence,
    SubsetOf "subsetOf" 1 1 Existence,
    SupersetOf "supersetOf" 1 1 Existence,
    Count "count" 0 0 Existence,
    Distinct "distinct" 0 0 Existence,
    IsDistinct "isDistinct" 0 0 Existence,
    Where "where" 1 1 Filtering,
    Select "select" 1 1 Filtering,
    Repeat "repeat" 1 1 Filtering,
    Sort "sort" 0 (usize::MAX) Filtering,
    Single "single" 0 0 Subsetting,
    First "first" 0 0 Subsetting,
    Last "last" 0 0 Subsetting,
    Tail "tail" 0 0 Subsetting,
    Skip "skip" 1 1 Subsetting,
    Take "take" 1 1 Subsetting,
    Intersect "intersect" 1 1 Subsetting,
    Exclude "exclude" 1 1 Subsetting,
    Union "union" 1 1 Combining,
    Combine "combine" 1 1 Combining,
    Iif "iif" 2 3 Conversion,
    ToBoolean "toBoolean" 0 0 Conversion,
    ConvertsToBoolean "convertsToBoolean" 0 0 Conversion,
    ToInteger "toInteger" 0 0 Conversion,
    ConvertsToInteger "convertsToInteger" 0 0 Conversion,
    ToDecimal "toDecimal" 0 0 Conversion,
    ConvertsToDecimal "convertsToDecimal" 0 0 Conversion,
    ToStringFn "toString" 0 0 Conversion,
    ConvertsToString "convertsToString" 0 0 Conversion,
    ToDate "toDate" 0 0 Conversion,
    ConvertsToDate "convertsToDate" 0 0 Conversion,
    ToDateTime "toDateTime" 0 0 Conversion,
    ConvertsToDateTime "convertsToDateTime" 0 0 Conversion,
    ToTime "toTime" 0 0 Conversion,
    ConvertsToTime "convertsToTime" 0 0 Conversion,
    ToQuantity "toQuantity" 0 1 Conversion,
    ConvertsToQuantity "convertsToQuantity" 0 1 Conversion,
    IndexOf "indexOf" 1 1 String,
    Substring "substring" 1 2 String,
    StartsWith "startsWith" 1 1 String,
    EndsWith "endsWith" 1 1 String,
    ContainsFn "contains" 1 1 String,
    Upper "upper" 0 0 String,
    Lower "lower" 0 0 String,
    Replace "replace" 2 2 String,
    Matches "matches" 1 1 String,
    MatchesFull "matchesFull" 1 1 String,
    ReplaceMatches "replaceMatches" 2 2 String,
    Length "length" 0 0 String,
    ToChars "toChars" 0 0 String,
    Split "split" 1 1 String,
    Join "join" 0 1 String,
    Trim "trim" 0 0 String,
    Encode "encode" 1 1 String,
    Decode "decode" 1 1 String,
    Escape "escape" 1 1 String,
    Unescape "unescape" 1 1 String,
    Abs "abs" 0 0 Math,
    Ceiling "ceiling" 0 0 Math,
    Exp "exp" 0 0 Math,
    Floor "floor" 0 0 Math,
    Ln "ln" 0 0 Math,
    Log "log" 1 1 Math,
    Power "power" 1 1 Math,
    Round "round" 0 1 Math,
    Sqrt "sqrt" 0 0 Math,
    Truncate "truncate" 0 0 Math,
    Children "children" 0 0 Navigation,
    Descendants "descendants" 0 0 Navigation,
    Trace "trace" 1 2 Utility,
    Now "now" 0 0 Utility,
    Today "today" 0 0 Utility,
    TimeOfDay "timeOfDay" 0 0 Utility,
    Not "not" 0 0 Existence,
    Extension "extension" 1 1 Fhir,
    HasValue "hasValue" 0 0 Fhir,
    GetValue "getValue" 0 0 Fhir,
    Resolve "resolve" 0 0 Fhir,
    MemberOf "memberOf" 1 1 Fhir,
    ConformsTo "conformsTo" 1 1 Fhir,
    HtmlChecks "htmlChecks" 0 0 Fhir,
    Aggregate "aggregate" 1 2 Aggregate,
    LowBoundary "lowBoundary" 0 1 Conversion,
    HighBoundary "highBoundary" 0 1 Conversion,
    Precision "precision" 0 0 Conversion,
    Subsumes "subsumes" 1 1 Fhir,
    SubsumedBy "subsumedBy" 1 1 Fhir,
    Comparable "comparable" 1 1 Fhir,
    ElementDefinition "elementDefinition" 0 0 Fhir,
    Slice "slice" 2 2 Fhir,
    CheckModifiers "checkModifiers" 1 1 Fhir,
    TypeFn "type" 0 0 Types,
}
