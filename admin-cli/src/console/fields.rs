//! A case's field values in the officer's language: the allowed values of choice and
//! multi-choice fields through the catalogue (`PATH=VALUE`), yes/no through the vocabulary,
//! record columns under their labels; free text, dates, codes and numbers as written.

use serde_json::Value;
use trm_proto::template::{core_field, Kind};

use super::i18n::{column_key, label, t, value, word, Lang};
use crate::render::FieldText;

/// A core field's value in words, in `lang`; `None` for a path outside the core template (a
/// national extension: shown as the command line writes it).
pub(super) fn field_text(lang: Lang, path: &str, doc: &Value) -> Option<FieldText> {
    let def = core_field(path)?;
    let v = &doc[def.section()][def.name()];
    let consent = def.kind == Kind::Consent;
    let cols = def.kind.record_fields();
    Some(match v {
        Value::Array(items) if !cols.is_empty() => FieldText::Records(
            items
                .iter()
                .map(|i| record(lang, def.path, consent, cols, i))
                .collect(),
        ),
        Value::Object(_) => FieldText::One(record(lang, def.path, consent, cols, v)),
        other => FieldText::One(scalar(lang, def.path, def.kind, other)),
    })
}

/// A scalar or list of scalars: an allowed value translated (key `KEY=VALUE`), a boolean as
/// yes/no, anything else as written.
fn scalar(lang: Lang, key: &str, kind: Kind, v: &Value) -> String {
    match v {
        Value::String(s) if kind.allowed_values().contains(&s.as_str()) => value(lang, key, s),
        Value::String(s) => s.clone(),
        Value::Bool(b) => word(lang, if *b { "yes" } else { "no" }),
        Value::Array(items) => items
            .iter()
            .map(|i| scalar(lang, key, kind, i))
            .collect::<Vec<_>>()
            .join(", "),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A record on one line, its columns in template order (labelled), any others after them.
fn record(lang: Lang, path: &str, consent: bool, cols: &[(&str, Kind)], v: &Value) -> String {
    let Value::Object(m) = v else {
        return scalar(lang, path, Kind::Text, v);
    };
    let known = cols
        .iter()
        .filter_map(|(n, k)| m.get(*n).map(|x| (*n, *k, x)));
    let others = m
        .iter()
        .filter(|(k, _)| !cols.iter().any(|(n, _)| n == k))
        .map(|(k, x)| (k.as_str(), Kind::Text, x));
    known
        .chain(others)
        .filter(|(_, _, x)| !x.is_null())
        .map(|(n, k, x)| {
            let key = column_key(path, consent, n);
            // French typography puts a space before the colon.
            let colon = t(lang, ": ");
            format!("{}{colon}{}", label(lang, &key), scalar(lang, &key, k, x))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(t: Option<FieldText>) -> String {
        match t {
            Some(FieldText::One(s)) => s,
            Some(FieldText::Records(r)) => r.join(" | "),
            None => "NONE".into(),
        }
    }

    #[test]
    fn values_are_translated_and_free_text_is_not() {
        let doc = serde_json::json!({
            "reference": {"urgency": "emergency", "reason": "emergency"},
            "child": {"minor": true},
            "exploitation": {"forms": ["labour", "other"]},
            "identity": {"identity_documents": [{"type": "passport", "number": "X1"}]},
            "consent": {"health": {"status": "given", "by": "guardian"}},
        });
        let cases = [
            (Lang::En, "reference.urgency", "emergency"),
            (Lang::Fr, "reference.urgency", "urgence absolue"),
            (Lang::Fr, "reference.reason", "emergency"),
            (Lang::It, "child.minor", "sì"),
            (Lang::En, "exploitation.forms", "labour, other"),
            (
                Lang::En,
                "identity.identity_documents",
                "Type: passport, Number: X1",
            ),
            (Lang::En, "consent.health", "Status: given, By: guardian"),
            (Lang::En, "ext.xx.anything", "NONE"),
        ];
        for (lang, path, want) in cases {
            assert_eq!(one(field_text(lang, path, &doc)), want, "{lang:?} {path}");
        }
        let fr = one(field_text(Lang::Sq, "identity.identity_documents", &doc));
        assert!(fr.contains("X1") && !fr.contains("passport"), "{fr}");
    }
}
