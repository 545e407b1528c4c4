//! String manipulation functions (with `join`), and a basic safety check of narrative XHTML for
//! `htmlChecks()`.

use regex::Regex;

use crate::EvalError;
use crate::ast::Function;
use crate::functions::{Call, integer_arg, single_string};
use crate::value::{Collection, Item, SystemValue};

/// The longest pattern `matches` and `replaceMatches` compile.
const MAX_PATTERN_LENGTH: usize = 4096;

pub(crate) fn call<'a>(call: &Call<'_, '_, 'a>) -> Result<Collection<'a>, EvalError> {
    if call.function == Function::Join {
        let separator = call.string_arg(0)?;
        let mut parts = Vec::with_capacity(call.items().len());
        for item in call.items() {
            parts.push(
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| EvalError::new("join() needs strings"))?,
            );
        }
        return Ok(Collection(vec![Item::string(parts.join(separator.as_deref().unwrap_or("")))]));
    }
    let mut evaluated = Vec::with_capacity(call.args.len());
    for idx in 0..call.args.len() {
        evaluated.push(call.arg(idx)?);
    }
    on_string(call.function, call.input, &evaluated)
}

fn on_string<'a>(
    function: Function,
    input: &Collection<'a>,
    args: &[Collection<'a>],
) -> Result<Collection<'a>, EvalError> {
    let text = match input.0.as_slice() {
        [] => return Ok(Collection::new()),
        [item] => match item.as_str() {
            Some(text) => text.to_owned(),
            None => {
                return Err(EvalError::new(format!(
                    "{function:?} needs a string, found {}",
                    item.type_name()
                )));
            }
        },
        _ => return Err(EvalError::new(format!("{function:?} on a collection of several items"))),
    };
    let string_arg =
        |idx: usize| -> Result<Option<String>, EvalError> { single_string(&args[idx]) };
    let integer =
        |value: usize| Item::Value(SystemValue::Integer(i64::try_from(value).unwrap_or(i64::MAX)));
    let boolean = |flag: bool| Collection(vec![Item::boolean(flag)]);
    let string = |value: String| Collection(vec![Item::string(value)]);
    Ok(match function {
        Function::IndexOf => {
            let Some(needle) = string_arg(0)? else { return Ok(Collection::new()) };
            let found = text
                .find(&needle)
                .map_or(-1, |byte| i64::try_from(text[..byte].chars().count()).unwrap_or(-1));
            Collection(vec![Item::Value(SystemValue::Integer(found))])
        }
        Function::Substring => {
            let Some(start) = integer_arg(&args[0])? else { return Ok(Collection::new()) };
            let length = if args.len() > 1 { integer_arg(&args[1])? } else { None };
            let chars: Vec<char> = text.chars().collect();
            let Ok(start) = usize::try_from(start) else { return Ok(Collection::new()) };
            if start >= chars.len() {
                return Ok(Collection::new());
            }
            let end = match length {
                Some(length) => start
                    .saturating_add(usize::try_from(length.max(0)).unwrap_or(0))
                    .min(chars.len()),
                None => chars.len(),
            };
            string(chars[start..end].iter().collect())
        }
        Function::StartsWith => match string_arg(0)? {
            Some(prefix) => boolean(text.starts_with(&prefix)),
            None => Collection::new(),
        },
        Function::EndsWith => match string_arg(0)? {
            Some(suffix) => boolean(text.ends_with(&suffix)),
            None => Collection::new(),
        },
        Function::ContainsFn => match string_arg(0)? {
            Some(needle) => boolean(text.contains(&needle)),
            None => Collection::new(),
        },
        Function::Upper => string(text.to_uppercase()),
        Function::Lower => string(text.to_lowercase()),
        Function::Replace => {
            let (Some(pattern), Some(substitution)) = (string_arg(0)?, string_arg(1)?) else {
                return Ok(Collection::new());
            };
            if pattern.is_empty() {
                let mut out = substitution.clone();
                for character in text.chars() {
                    out.push(character);
                    out.push_str(&substitution);
                }
                return Ok(string(out));
            }
            string(text.replace(&pattern, &substitution))
        }
        Function::Matches => {
            let Some(pattern) = string_arg(0)? else { return Ok(Collection::new()) };
            boolean(compile(&format!("(?s){pattern}"))?.is_match(&text))
        }
        // FHIRPath 2.0: the whole string must match (R4's `matches` finds the pattern anywhere).
        Function::MatchesFull => {
            let Some(pattern) = string_arg(0)? else { return Ok(Collection::new()) };
            boolean(compile(&format!(r"(?s)\A(?:{pattern})\z"))?.is_match(&text))
        }
        Function::ReplaceMatches => {
            let (Some(pattern), Some(substitution)) = (string_arg(0)?, string_arg(1)?) else {
                return Ok(Collection::new());
            };
            if pattern.is_empty() {
                return Ok(string(text));
            }
            string(compile(&pattern)?.replace_all(&text, substitution.as_str()).into_owned())
        }
        Function::Length => Collection(vec![integer(text.chars().count())]),
        Function::ToChars => {
            Collection(text.chars().map(|c| Item::string(c.to_string())).collect())
        }
        Function::Split => {
            let Some(separator) = string_arg(0)? else { return Ok(Collection::new()) };
            Collection(
                text.split(separator.as_str()).map(|part| Item::string(part.to_owned())).collect(),
            )
        }
        Function::Trim => string(text.trim().to_owned()),
        Function::Encode | Function::Decode | Function::Escape | Function::Unescape => {
            let Some(format) = string_arg(0)? else { return Ok(Collection::new()) };
            match codec(function, &format, &text) {
                Some(result) => string(result),
                None => Collection::new(),
            }
        }
        _ => Collection::new(),
    })
}

fn compile(pattern: &str) -> Result<Regex, EvalError> {
    if pattern.len() > MAX_PATTERN_LENGTH {
        return Err(EvalError::new("regular expression too long"));
    }
    Regex::new(pattern)
        .map_err(|error| EvalError::new(format!("invalid regular expression: {error}")))
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn codec(function: Function, format: &str, text: &str) -> Option<String> {
    match (function, format) {
        (Function::Encode, "base64" | "urlbase64") => {
            let mut out = String::new();
            for chunk in text.as_bytes().chunks(3) {
                let bytes = [
                    chunk[0],
                    chunk.get(1).copied().unwrap_or(0),
                    chunk.get(2).copied().unwrap_or(0),
                ];
                let combined =
                    (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
                for idx in 0..4 {
                    if idx <= chunk.len() {
                        out.push(char::from(BASE64[((combined >> (18 - 6 * idx)) & 63) as usize]));
                    } else {
                        out.push('=');
                    }
                }
            }
            Some(if format == "urlbase64" { out.replace('+', "-").replace('/', "_") } else { out })
        }
        (Function::Decode, "base64" | "urlbase64") => {
            let mut bits = 0u32;
            let mut n_bits = 0;
            let mut bytes = Vec::new();
            for character in text.chars().filter(|c| *c != '=') {
                let character = match character {
                    '-' => '+',
                    '_' => '/',
                    other => other,
                };
                let value = BASE64.iter().position(|b| char::from(*b) == character)?;
                bits = (bits << 6) | u32::try_from(value).ok()?;
                n_bits += 6;
                if n_bits >= 8 {
                    n_bits -= 8;
                    bytes.push(u8::try_from((bits >> n_bits) & 0xff).ok()?);
                }
            }
            String::from_utf8(bytes).ok()
        }
        (Function::Encode, "hex") => Some(text.bytes().map(|b| format!("{b:02x}")).collect()),
        (Function::Decode, "hex") => {
            let bytes: Option<Vec<u8>> = (0..text.len())
                .step_by(2)
                .map(|idx| text.get(idx..idx + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
                .collect();
            String::from_utf8(bytes?).ok()
        }
        (Function::Escape, "html") => Some(
            text.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&#39;"),
        ),
        (Function::Unescape, "html") => Some(
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        ),
        (Function::Escape, "json") => Some(text.replace('\\', "\\\\").replace('"', "\\\"")),
        (Function::Unescape, "json") => Some(text.replace("\\\"", "\"").replace("\\\\", "\\")),
        _ => None,
    }
}

/// A basic check of narrative XHTML: no scripts, no event handler attributes, no forms or frames.
pub(crate) fn html_is_safe(xhtml: &str) -> bool {
    let lower = xhtml.to_lowercase();
    let forbidden =
        ["<script", "<iframe", "<frame", "<form", "<object", "<embed", "<applet", "javascript:"];
    if forbidden.iter().any(|f| lower.contains(f)) {
        return false;
    }
    !lower.split('<').skip(1).any(|tag| {
        let head = tag.split('>').next().unwrap_or("");
        head.split_whitespace().skip(1).any(|attribute| attribute.starts_with("on"))
    })
}
