//! Known-answer test for the canonical JSON bytes that field digests commit to
//! (docs/PROTOCOL.md §5.1). A change here changes signed bytes: it breaks every referral
//! already sent, so it must never happen silently (for example through a crate in the graph
//! enabling serde_json's `preserve_order`).

use serde_json::json;
use trm_proto::template::canonical_json;

#[test]
fn canonical_json_bytes_are_pinned() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!("Rossi"), r#""Rossi""#),
        (json!(1998), "1998"),
        (json!(-5), "-5"),
        (json!(true), "true"),
        (json!(["a", "b"]), r#"["a","b"]"#),
        // Keys sorted by UTF-8 bytes whatever the insertion order; no white space.
        (
            serde_json::from_str(r#"{ "b": [true, "x"], "a": 1, "Z": null, "é": 0 }"#).unwrap(),
            r#"{"Z":null,"a":1,"b":[true,"x"],"é":0}"#,
        ),
        // Escapes: quote, backslash, the five short control escapes, other controls as
        // \u00XX in lower-case hex; '/', DEL and non-ASCII as their own bytes.
        (
            json!("q\"b\\\u{8}\t\n\u{c}\r\u{1}\u{1f}/\u{7f}ç€😀"),
            "\"q\\\"b\\\\\\b\\t\\n\\f\\r\\u0001\\u001f/\u{7f}ç€😀\"",
        ),
    ];
    for (value, expected) in cases {
        assert_eq!(
            String::from_utf8(canonical_json(&value)).unwrap(),
            expected,
            "canonical bytes of {value:?}"
        );
    }
}
