//! Property tests of the inputs a client controls byte for byte: the paging cursor and the JSON body of a write.
//! Whatever they hold, the server answers with a 400-type error ([`InteractionError::Invalid`]), never a panic.
//!
//! Each property runs 256 cases; `PROPTEST_CASES` sets another number (a longer run before a release).

use cdr_model::{Instant, LogicalId, ResourceType};
use cdr_store::{PageDirection, PageKey, SortValue};
use proptest::prelude::*;

use crate::InteractionError;
use crate::shape::{Cursor, decode_cursor, encode_cursor};
use crate::write::parse_body;

/// A valid Patient body, the seed that mutations turn into near-JSON.
const PATIENT: &str = r#"{"resourceType":"Patient","id":"p-1","meta":{"profile":["http://x/y"]},
"name":[{"family":"Doe","given":["Eve"]}],"birthDate":"1970-01-01","active":true,"extension":[{"url":"u","valueDecimal":1.50}]}"#;

/// Bytes a mutation inserts: JSON punctuation, escapes, NUL, a lone UTF-8 continuation byte, digits.
const INTERESTING: &[u8] = b"{}[]\":,\\0-.eE \x00\x80\xff9u";

fn read_or_invalid<T>(result: &Result<T, InteractionError>) -> bool {
    matches!(result, Ok(_) | Err(InteractionError::Invalid(_)))
}

/// Applies (position, kind, byte) edits to `seed`: delete, insert, replace, or cut the rest.
fn mutate(seed: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for &(position, kind, byte) in edits {
        let at = position % (bytes.len() + 1);
        let interesting = INTERESTING[usize::from(byte) % INTERESTING.len()];
        match kind % 4 {
            0 if at < bytes.len() => {
                bytes.remove(at);
            }
            1 => bytes.insert(at, interesting),
            2 if at < bytes.len() => bytes[at] = interesting,
            _ => bytes.truncate(at.max(1)),
        }
    }
    bytes
}

fn sort_value() -> impl Strategy<Value = SortValue> {
    prop_oneof![
        any::<i64>().prop_map(SortValue::Int),
        any::<f64>()
            .prop_filter("NaN is not a sort value", |x| !x.is_nan())
            .prop_map(SortValue::Float),
        "[^\u{0}]{0,12}".prop_map(SortValue::Text),
    ]
}

proptest! {
    #[test]
    fn any_cursor_text_is_rejected_or_read(text in any::<String>()) {
        prop_assert!(read_or_invalid(&decode_cursor(&text, None)));
    }

    /// Hex, as a real cursor is, of any bytes and of JSON close to a cursor's.
    #[test]
    fn any_hex_cursor_is_rejected_or_read(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..64),
            "\\[\"[ab]\",\"[A-Za-z]{0,8}\",\"([^\"\\\\]|\\\\u0000){0,6}\",\\[(\\{\"[ift]\":(-?[0-9]{1,3}|\"[^\"]{0,4}\"|null|\\[\\])\\},?){0,3}\\]\\]"
                .prop_map(String::into_bytes),
        ],
    ) {
        let text: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
        let decoded = decode_cursor(&text, None);
        prop_assert!(read_or_invalid(&decoded));
        if let Ok(cursor) = decoded {
            let no_nul = cursor.key.values.iter().all(|value| match value {
                SortValue::Text(text) => !text.contains('\0'),
                SortValue::Int(_) | SortValue::Float(_) => true,
            });
            prop_assert!(no_nul, "{text}");
        }
    }

    #[test]
    fn cursors_round_trip(
        before in any::<bool>(),
        values in proptest::collection::vec(sort_value(), 0..4),
        res_type in proptest::sample::select(crate::SERVED_TYPES.to_vec()),
        res_id in "[A-Za-z0-9.-]{1,64}",
        horizon in proptest::option::of(any::<i64>()),
    ) {
        let direction = if before { PageDirection::Before } else { PageDirection::After };
        let key = PageKey { values, res_type, res_id: LogicalId::parse(&res_id).unwrap() };
        let horizon = horizon.map(Instant::from_millis);
        let cursor = Cursor { direction, key, horizon };
        let decoded = decode_cursor(&encode_cursor(&cursor, None), None);
        prop_assert_eq!(decoded.ok(), Some(cursor));
    }

    #[test]
    fn any_body_is_rejected_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let patient = ResourceType::parse("Patient").unwrap();
        prop_assert!(read_or_invalid(&parse_body(patient, &bytes)));
    }

    #[test]
    fn near_json_bodies_are_rejected_or_read(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6),
    ) {
        let patient = ResourceType::parse("Patient").unwrap();
        let body = mutate(PATIENT.as_bytes(), &edits);
        let parsed = parse_body(patient, &body);
        prop_assert!(read_or_invalid(&parsed));
        if let Ok(resource) = parsed {
            prop_assert_eq!(resource.resource_type(), patient);
        }
    }
}

#[test]
fn deep_and_odd_bodies_are_rejected() {
    let patient = ResourceType::parse("Patient").unwrap();
    let deep = format!(
        r#"{{"resourceType":"Patient","x":{}1{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let nul_key = "{\"resourceType\":\"Patient\",\"a\\u0000\":1}";
    let lone_surrogate = r#"{"resourceType":"Patient","name":[{"family":"\ud800"}]}"#;
    let huge_number = format!(r#"{{"resourceType":"Patient","x":1{}}}"#, "0".repeat(100_000));
    for body in [deep.as_str(), nul_key, lone_surrogate, huge_number.as_str(), "", "null", "[]"] {
        assert!(read_or_invalid(&parse_body(patient, body.as_bytes())), "{body:.80}");
    }
    assert!(parse_body(patient, PATIENT.as_bytes()).is_ok());
}
