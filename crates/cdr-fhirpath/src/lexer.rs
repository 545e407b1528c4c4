//! The FHIRPath lexer: turns expression text into tokens with their byte offsets.

use crate::ParseError;

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Token {
    Identifier(String),
    /// A backtick-delimited identifier: never a keyword.
    DelimitedIdentifier(String),
    String(String),
    /// The lexical form of an integer or decimal number.
    Number(String),
    /// A date, date-time or time literal without its `@`.
    DateTime(String),
    /// `%name`, `%'name'` or ``%`name` ``.
    Variable(String),
    /// `$this`, `$index`, `$total`.
    Special(String),
    Symbol(&'static str),
    End,
}

#[derive(Clone, Debug)]
pub(crate) struct Spanned {
    pub(crate) token: Token,
    pub(crate) offset: usize,
}

const SYMBOLS: [&str; 22] = [
    "<=", ">=", "!=", "!~", ".", "[", "]", "(", ")", "{", "}", ",", "|", "+", "-", "*", "/", "&",
    "=", "~", "<", ">",
];

pub(crate) fn tokenize(text: &str) -> Result<Vec<Spanned>, ParseError> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let byte = bytes[pos];
        if byte.is_ascii_whitespace() {
            pos += 1;
            continue;
        }
        if text[pos..].starts_with("//") {
            pos = text[pos..].find('\n').map_or(bytes.len(), |end| pos + end);
            continue;
        }
        if text[pos..].starts_with("/*") {
            let Some(end) = text[pos + 2..].find("*/") else {
                return Err(ParseError::new(pos, "unterminated comment"));
            };
            pos += end + 4;
            continue;
        }
        let start = pos;
        let token = match byte {
            b'\'' => {
                let (value, next) = read_quoted(text, pos, b'\'')?;
                pos = next;
                Token::String(value)
            }
            b'`' => {
                let (value, next) = read_quoted(text, pos, b'`')?;
                pos = next;
                Token::DelimitedIdentifier(value)
            }
            b'0'..=b'9' => {
                let mut end = pos;
                while end < bytes.len() && bytes[end].is_ascii_digit() {
                    end += 1;
                }
                if end + 1 < bytes.len() && bytes[end] == b'.' && bytes[end + 1].is_ascii_digit() {
                    end += 1;
                    while end < bytes.len() && bytes[end].is_ascii_digit() {
                        end += 1;
                    }
                }
                pos = end;
                Token::Number(text[start..end].to_owned())
            }
            b'@' => {
                let mut end = pos + 1;
                while end < bytes.len() && is_datetime_byte(bytes[end], bytes.get(end + 1).copied())
                {
                    end += 1;
                }
                pos = end;
                Token::DateTime(text[start + 1..end].to_owned())
            }
            b'%' => {
                pos += 1;
                match bytes.get(pos) {
                    Some(&quote @ (b'`' | b'\'')) => {
                        let (value, next) = read_quoted(text, pos, quote)?;
                        pos = next;
                        Token::Variable(value)
                    }
                    _ => {
                        let end = identifier_end(bytes, pos, true);
                        if end == pos {
                            return Err(ParseError::new(start, "expected a variable name after %"));
                        }
                        let name = text[pos..end].to_owned();
                        pos = end;
                        Token::Variable(name)
                    }
                }
            }
            b'$' => {
                let end = identifier_end(bytes, pos + 1, false);
                let name = text[pos + 1..end].to_owned();
                if !matches!(name.as_str(), "this" | "index" | "total") {
                    return Err(ParseError::new(
                        start,
                        format!("unknown special variable ${name}"),
                    ));
                }
                pos = end;
                Token::Special(name)
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let end = identifier_end(bytes, pos, false);
                let name = text[pos..end].to_owned();
                pos = end;
                Token::Identifier(name)
            }
            _ => {
                let Some(symbol) = SYMBOLS.iter().find(|s| text[pos..].starts_with(**s)) else {
                    let shown = text[pos..].chars().next().unwrap_or(' ');
                    return Err(ParseError::new(start, format!("unexpected character {shown:?}")));
                };
                pos += symbol.len();
                Token::Symbol(symbol)
            }
        };
        tokens.push(Spanned { token, offset: start });
    }
    tokens.push(Spanned { token: Token::End, offset: text.len() });
    Ok(tokens)
}

fn is_datetime_byte(byte: u8, next: Option<u8>) -> bool {
    match byte {
        b'0'..=b'9' | b'-' | b':' | b'T' | b'Z' | b'+' => true,
        // A decimal point belongs to the literal only when fractional seconds follow.
        b'.' => next.is_some_and(|n| n.is_ascii_digit()),
        _ => false,
    }
}

fn identifier_end(bytes: &[u8], start: usize, allow_dash: bool) -> usize {
    let mut end = start;
    while end < bytes.len()
        && (bytes[end].is_ascii_alphanumeric()
            || bytes[end] == b'_'
            || (allow_dash && bytes[end] == b'-'))
    {
        end += 1;
    }
    end
}

fn read_quoted(text: &str, start: usize, quote: u8) -> Result<(String, usize), ParseError> {
    let bytes = text.as_bytes();
    let mut value = String::new();
    let mut pos = start + 1;
    loop {
        let Some(&byte) = bytes.get(pos) else {
            return Err(ParseError::new(start, "unterminated string"));
        };
        if byte == quote {
            return Ok((value, pos + 1));
        }
        if byte == b'\\' {
            let Some(&escaped) = bytes.get(pos + 1) else {
                return Err(ParseError::new(pos, "unterminated escape"));
            };
            pos += 2;
            match escaped {
                b'n' => value.push('\n'),
                b'r' => value.push('\r'),
                b't' => value.push('\t'),
                b'f' => value.push('\u{c}'),
                b'u' => {
                    let code =
                        text.get(pos..pos + 4).and_then(|hex| u32::from_str_radix(hex, 16).ok());
                    let Some(character) = code.and_then(char::from_u32) else {
                        return Err(ParseError::new(pos, "invalid unicode escape"));
                    };
                    value.push(character);
                    pos += 4;
                }
                // Any other escaped character stands for itself; it may take several bytes.
                _ => {
                    let character = text[pos - 1..].chars().next().unwrap_or(' ');
                    value.push(character);
                    pos += character.len_utf8() - 1;
                }
            }
            continue;
        }
        let character = text[pos..].chars().next().unwrap_or(' ');
        value.push(character);
        pos += character.len_utf8();
    }
}
