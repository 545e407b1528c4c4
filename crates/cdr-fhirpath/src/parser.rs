//! A precedence-climbing parser from tokens to the syntax tree, with a nesting limit so that hostile input
//! cannot overflow the stack.

use rust_decimal::Decimal;

use crate::ParseError;
use crate::ast::{BinaryOp, Expr, Function, Literal, TypeSpecifier};
use crate::datetime::Partial;
use crate::lexer::{Spanned, Token, tokenize};
use crate::model::model;

/// The deepest nesting of sub-expressions the parser accepts.
const MAX_DEPTH: usize = 128;
/// The longest expression text the parser accepts, in bytes.
const MAX_LENGTH: usize = 64 * 1024;

pub(crate) fn parse(text: &str) -> Result<Expr, ParseError> {
    if text.len() > MAX_LENGTH {
        return Err(ParseError::new(MAX_LENGTH, "expression too long"));
    }
    let tokens = tokenize(text)?;
    let mut parser = Parser { tokens, pos: 0, depth: 0 };
    let expr = parser.expression(0)?;
    match parser.peek() {
        Token::End => Ok(expr.mark_constants()),
        _ => Err(parser.error("unexpected token")),
    }
}

struct Parser {
    tokens: Vec<Spanned>,
    pos: usize,
    depth: usize,
}

const CALENDAR_UNITS: [&str; 16] = [
    "year",
    "years",
    "month",
    "months",
    "week",
    "weeks",
    "day",
    "days",
    "hour",
    "hours",
    "minute",
    "minutes",
    "second",
    "seconds",
    "millisecond",
    "milliseconds",
];

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)].token
    }

    fn offset(&self) -> usize {
        self.tokens[self.pos.min(self.tokens.len() - 1)].offset
    }

    fn next(&mut self) -> Token {
        let token = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        token
    }

    fn error(&self, message: &str) -> ParseError {
        let shown = match self.peek() {
            Token::End => "end of expression".to_owned(),
            token => format!("{token:?}"),
        };
        ParseError::new(self.offset(), format!("{message}: {shown}"))
    }

    fn expect(&mut self, symbol: &'static str) -> Result<(), ParseError> {
        if *self.peek() == Token::Symbol(symbol) {
            self.next();
            return Ok(());
        }
        Err(self.error(&format!("expected '{symbol}'")))
    }

    /// The binary operator at the cursor with its precedence (higher binds tighter).
    fn binary_operator(&self) -> Option<(BinaryOp, u8)> {
        let op = match self.peek() {
            Token::Symbol(symbol) => match *symbol {
                "*" => (BinaryOp::Multiply, 10),
                "/" => (BinaryOp::Divide, 10),
                "+" => (BinaryOp::Add, 9),
                "-" => (BinaryOp::Subtract, 9),
                "&" => (BinaryOp::Concatenate, 9),
                "|" => (BinaryOp::Union, 7),
                "<" => (BinaryOp::Less, 6),
                ">" => (BinaryOp::Greater, 6),
                "<=" => (BinaryOp::LessOrEqual, 6),
                ">=" => (BinaryOp::GreaterOrEqual, 6),
                "=" => (BinaryOp::Equal, 5),
                "!=" => (BinaryOp::NotEqual, 5),
                "~" => (BinaryOp::Equivalent, 5),
                "!~" => (BinaryOp::NotEquivalent, 5),
                _ => return None,
            },
            Token::Identifier(word) => match word.as_str() {
                "div" => (BinaryOp::IntegerDivide, 10),
                "mod" => (BinaryOp::Modulo, 10),
                "in" => (BinaryOp::In, 4),
                "contains" => (BinaryOp::Contains, 4),
                "and" => (BinaryOp::And, 3),
                "or" => (BinaryOp::Or, 2),
                "xor" => (BinaryOp::Xor, 2),
                "implies" => (BinaryOp::Implies, 1),
                _ => return None,
            },
            _ => return None,
        };
        Some(op)
    }

    fn expression(&mut self, min_precedence: u8) -> Result<Expr, ParseError> {
        let depth_before = self.depth;
        self.enter()?;
        let mut left = self.unary()?;
        loop {
            // `is` and `as` bind at precedence 8 and take a type specifier.
            if let Token::Identifier(word) = self.peek()
                && (word == "is" || word == "as")
                && min_precedence <= 8
            {
                let is = word == "is";
                self.next();
                let type_specifier =
                    if is { self.type_specifier()? } else { self.cast_type_specifier()? };
                let base = Some(Box::new(left));
                // Each operator in a row nests the tree one level deeper on the left.
                self.enter()?;
                left = if is {
                    Expr::Is(base, type_specifier)
                } else {
                    Expr::As(base, type_specifier)
                };
                continue;
            }
            let Some((op, precedence)) = self.binary_operator() else { break };
            if precedence < min_precedence {
                break;
            }
            self.next();
            self.enter()?;
            let right = self.expression(precedence + 1)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
        self.depth = depth_before;
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Token::Symbol("-") => {
                self.next();
                self.enter()?;
                let operand = self.unary()?;
                self.depth -= 1;
                Ok(match operand {
                    Expr::Literal(Literal::Integer(value)) => {
                        Expr::Literal(Literal::Integer(-value))
                    }
                    Expr::Literal(Literal::Decimal(value)) => {
                        Expr::Literal(Literal::Decimal(-value))
                    }
                    Expr::Literal(Literal::Quantity(value, unit)) => {
                        Expr::Literal(Literal::Quantity(-value, unit))
                    }
                    other => Expr::Negate(Box::new(other)),
                })
            }
            Token::Symbol("+") => {
                self.next();
                self.enter()?;
                let operand = self.unary()?;
                self.depth -= 1;
                Ok(operand)
            }
            _ => self.postfix(),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(ParseError::new(self.offset(), "expression nested too deeply"));
        }
        Ok(())
    }

    /// A term and its invocations and indexers; each nests the tree one level deeper, and the evaluator recurses
    /// that deep, so they count against the nesting limit.
    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let depth_before = self.depth;
        let mut expr = self.term()?;
        loop {
            match self.peek() {
                Token::Symbol(".") => {
                    self.next();
                    self.enter()?;
                    expr = self.invocation(Some(Box::new(expr)))?;
                }
                Token::Symbol("[") => {
                    self.next();
                    self.enter()?;
                    let index = self.expression(0)?;
                    self.expect("]")?;
                    expr = Expr::Indexer(Box::new(expr), Box::new(index));
                }
                _ => {
                    self.depth = depth_before;
                    return Ok(expr);
                }
            }
        }
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let offset = self.offset();
        match self.next() {
            Token::Number(text) => self.number(&text, offset),
            Token::String(value) => Ok(Expr::Literal(Literal::String(value))),
            Token::DateTime(text) => date_time_literal(&text)
                .ok_or_else(|| ParseError::new(offset, "invalid date/time literal")),
            Token::Variable(name) => Ok(Expr::Variable(name)),
            Token::Special(name) => Ok(match name.as_str() {
                "this" => Expr::This,
                "index" => Expr::Index,
                _ => Expr::Total,
            }),
            Token::Symbol("(") => {
                self.enter()?;
                let inner = self.expression(0)?;
                self.depth -= 1;
                self.expect(")")?;
                Ok(inner)
            }
            Token::Symbol("{") => {
                self.expect("}")?;
                Ok(Expr::Empty)
            }
            Token::Identifier(word) if word == "true" => Ok(Expr::Literal(Literal::Boolean(true))),
            Token::Identifier(word) if word == "false" => {
                Ok(Expr::Literal(Literal::Boolean(false)))
            }
            Token::Identifier(_) | Token::DelimitedIdentifier(_) => {
                self.pos -= 1;
                self.invocation(None)
            }
            token => {
                if token != Token::End {
                    self.pos -= 1;
                }
                Err(self.error("expected an expression"))
            }
        }
    }

    fn number(&mut self, text: &str, offset: usize) -> Result<Expr, ParseError> {
        let value: Decimal =
            text.parse().map_err(|_| ParseError::new(offset, "number out of range"))?;
        // A number followed by a unit string or a calendar duration keyword is a quantity.
        let unit = match self.peek() {
            Token::String(unit) => Some(unit.clone()),
            Token::Identifier(word) if CALENDAR_UNITS.contains(&word.as_str()) => {
                Some(word.clone())
            }
            _ => None,
        };
        if let Some(unit) = unit {
            self.next();
            return Ok(Expr::Literal(Literal::Quantity(value, unit)));
        }
        if text.contains('.') {
            return Ok(Expr::Literal(Literal::Decimal(value)));
        }
        let integer =
            text.parse::<i64>().map_err(|_| ParseError::new(offset, "integer out of range"))?;
        Ok(Expr::Literal(Literal::Integer(integer)))
    }

    /// An identifier or a function call, on `base` or on the focus.
    fn invocation(&mut self, base: Option<Box<Expr>>) -> Result<Expr, ParseError> {
        let offset = self.offset();
        let (name, delimited) = match self.next() {
            Token::Identifier(name) => (name, false),
            Token::DelimitedIdentifier(name) => (name, true),
            Token::Special(name) if base.is_some() => {
                return Err(ParseError::new(offset, format!("unexpected ${name}")));
            }
            _ => {
                self.pos = self.pos.saturating_sub(1);
                return Err(self.error("expected an identifier"));
            }
        };
        if delimited || *self.peek() != Token::Symbol("(") {
            return Ok(Expr::Member(base, name));
        }
        self.next();
        if matches!(name.as_str(), "is" | "as" | "ofType") {
            let type_specifier =
                if name == "is" { self.type_specifier()? } else { self.cast_type_specifier()? };
            self.expect(")")?;
            return Ok(match name.as_str() {
                "is" => Expr::Is(base, type_specifier),
                "as" => Expr::As(base, type_specifier),
                _ => Expr::OfType(base, type_specifier),
            });
        }
        let Some((function, min_args, max_args)) = Function::lookup(&name) else {
            return Err(ParseError::new(offset, format!("unknown function {name}")));
        };
        let mut args = Vec::new();
        if *self.peek() != Token::Symbol(")") {
            loop {
                self.enter()?;
                args.push(self.expression(0)?);
                self.depth -= 1;
                if *self.peek() != Token::Symbol(",") {
                    break;
                }
                self.next();
            }
        }
        self.expect(")")?;
        if args.len() < min_args || args.len() > max_args {
            return Err(ParseError::new(offset, format!("wrong number of arguments for {name}")));
        }
        Ok(Expr::Call(base, function, args))
    }

    fn type_specifier(&mut self) -> Result<TypeSpecifier, ParseError> {
        let mut name = self.type_name_part()?;
        let mut namespace = None;
        if *self.peek() == Token::Symbol(".") {
            self.next();
            namespace = Some(name);
            name = self.type_name_part()?;
        }
        Ok(TypeSpecifier { namespace, name })
    }

    /// The type of `as` and `ofType`, which must name a known type (`is` accepts any name and is false).
    fn cast_type_specifier(&mut self) -> Result<TypeSpecifier, ParseError> {
        let offset = self.offset();
        let type_specifier = self.type_specifier()?;
        if !model().is_known_type(type_specifier.namespace.as_deref(), &type_specifier.name) {
            return Err(ParseError::new(
                offset,
                match &type_specifier.namespace {
                    Some(namespace) => format!("unknown type {namespace}.{}", type_specifier.name),
                    None => format!("unknown type {}", type_specifier.name),
                },
            ));
        }
        Ok(type_specifier)
    }

    fn type_name_part(&mut self) -> Result<String, ParseError> {
        match self.next() {
            Token::Identifier(name) | Token::DelimitedIdentifier(name) => Ok(name),
            _ => {
                self.pos = self.pos.saturating_sub(1);
                Err(self.error("expected a type name"))
            }
        }
    }
}

fn date_time_literal(text: &str) -> Option<Expr> {
    if let Some(time) = text.strip_prefix('T') {
        return Partial::parse_time(time).map(|t| Expr::Literal(Literal::Time(t)));
    }
    if text.contains('T') {
        return Partial::parse_date_time(text, true).map(|d| Expr::Literal(Literal::DateTime(d)));
    }
    Partial::parse_date(text).map(|d| Expr::Literal(Literal::Date(d)))
}
