//! The printable page of `case export`: one self-contained HTML file (inline style, no script,
//! nothing fetched), every text from the node HTML-escaped. Pure: the answer in, the page out.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;
use trm_admin_api::answers as a;

use crate::failure::Failure;

/// The page's path: `out` with the extension `.html`. `out` itself must not be an `.html`
/// file (the two would be one).
pub(crate) fn page_path(out: &Path) -> Result<PathBuf, Failure> {
    let is_html = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html"));
    if is_html || out.file_name().is_none() {
        return Err(Failure::usage(format!(
            "--out {}: name the JSON file (e.g. case.json); the printable page is written beside it with the extension .html",
            out.display()
        )));
    }
    Ok(out.with_extension("html"))
}

/// Text with `& < > " '` escaped, safe in element content and quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON document as `(path, text)` rows: nested keys joined with `.`, arrays of scalars
/// joined with `, `, other arrays indexed `[i]`.
pub(crate) fn rows(v: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, path: &str, out: &mut Vec<(String, String)>) {
        let join = |k: &str| {
            if path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        };
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    walk(v, &join(k), out);
                }
            }
            Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
                let texts: Vec<String> = items.iter().map(scalar).collect();
                out.push((path.to_string(), texts.join(", ")));
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, &format!("{path}[{i}]"), out);
                }
            }
            other => out.push((path.to_string(), scalar(other))),
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn as_value<T: Serialize>(t: &T) -> Value {
    serde_json::to_value(t).unwrap_or(Value::Null)
}

/// A two-column table of rows, escaped.
fn table(rows: &[(String, String)]) -> String {
    if rows.is_empty() {
        return "<p class=\"none\">(none)</p>\n".into();
    }
    let mut out = String::from("<table>\n");
    for (k, v) in rows {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            escape(k),
            escape(v)
        ));
    }
    out + "</table>\n"
}

const STYLE: &str = "body{font-family:serif;margin:2em;max-width:60em}\
table{border-collapse:collapse;margin:0.5em 0 1em;width:100%}\
th,td{border:1px solid #999;padding:0.2em 0.5em;text-align:left;vertical-align:top}\
th{width:30%;font-weight:normal;background:#eee}\
td{white-space:pre-wrap;word-break:break-word}\
section{break-inside:avoid}\
@media print{body{margin:0}}";

/// The printable page of a case export.
pub(crate) fn case_export(x: &a::CaseExport) -> String {
    let case = &x.case;
    let mut about = vec![
        ("case".to_string(), case.id.clone()),
        ("origin".into(), case.origin.clone()),
    ];
    if let Some(by) = &case.created_by {
        about.push(("recorded by".into(), by.clone()));
    }
    if let Some(at) = &case.created {
        about.push(("recorded at".into(), at.clone()));
    }
    if let Some(erased) = &case.erased {
        about.push(("categories erased".into(), erased.join(", ")));
    }
    about.extend([
        ("exported by node".into(), x.country.clone()),
        ("exported by".into(), x.exported_by.clone()),
        ("exported at".into(), x.exported.clone()),
    ]);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Case {} – export</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>Case {}</h1>\n",
        escape(&case.id),
        escape(&case.id)
    );
    out.push_str("<p>Everything this node holds on the case: its values, its referral threads and every message sent and received about it, with the result of re-verifying each message's signature.</p>\n");
    out.push_str(&table(&about));
    out.push_str("<h2>Case values</h2>\n");
    out.push_str(&table(&rows(&case.case)));
    out.push_str("<h2>Referral threads</h2>\n");
    let threads = case
        .thread
        .iter()
        .chain(&case.referrals)
        .chain(&x.timeline.threads);
    let mut seen = Vec::new();
    for t in threads {
        let key = (t.peer.clone(), t.role.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        out.push_str(&format!(
            "<h3>{} ({})</h3>\n",
            escape(&t.peer),
            escape(&t.role)
        ));
        out.push_str(&table(&rows(&as_value(t))));
    }
    if seen.is_empty() {
        out.push_str("<p class=\"none\">(none)</p>\n");
    }
    out.push_str(&format!(
        "<h2>Messages ({})</h2>\n",
        x.timeline.messages.len()
    ));
    for m in &x.timeline.messages {
        out.push_str(&message(m));
    }
    out + "</body>\n</html>\n"
}

/// One message: its facts, its verification and delivery, its fields and payload.
fn message(m: &a::MessageView) -> String {
    let way = if m.direction == "sent" { "to" } else { "from" };
    let mut out = format!(
        "<section>\n<h3>{} – {} {} {} {}</h3>\n",
        escape(&m.created),
        escape(&m.direction),
        escape(&m.kind),
        way,
        escape(&m.peer)
    );
    let mut facts = vec![
        ("message id".to_string(), m.id.clone()),
        ("sender".into(), m.sender.clone()),
        ("recipient".into(), m.recipient.clone()),
        ("summary".into(), m.summary.clone()),
        ("in reply to".into(), m.in_reply_to.clone()),
        ("signature".into(), m.verification.signature.clone()),
        ("disclosures".into(), m.verification.disclosures.clone()),
        ("envelope hash".into(), m.verification.envelope_hash.clone()),
        ("categories erased".into(), m.erased.join(", ")),
    ];
    facts.extend(
        rows(&as_value(&m.delivery))
            .into_iter()
            .map(|(k, v)| (format!("delivery.{k}"), v)),
    );
    out.push_str(&table(&facts));
    if let Some(p) = &m.payload {
        out.push_str("<h4>Content</h4>\n");
        out.push_str(&table(&rows(&as_value(p))));
    }
    out.push_str("<h4>Fields</h4>\n");
    out.push_str(&table(&rows(&m.fields)));
    out + "</section>\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_every_markup_character() {
        let cases = [
            ("plain", "plain"),
            (
                "<script>alert(1)</script>",
                "&lt;script&gt;alert(1)&lt;/script&gt;",
            ),
            ("a & b", "a &amp; b"),
            ("\"q\" 'a'", "&quot;q&quot; &#39;a&#39;"),
            ("", ""),
        ];
        for (text, want) in cases {
            assert_eq!(escape(text), want);
        }
    }

    #[test]
    fn flattens_a_document_into_rows() {
        let v = serde_json::json!({
            "a": {"b": "x", "c": [1, 2]},
            "d": [{"e": null}],
            "f": true
        });
        let want = vec![
            ("a.b".to_string(), "x".to_string()),
            ("a.c".into(), "1, 2".into()),
            ("d[0].e".into(), "-".into()),
            ("f".into(), "true".into()),
        ];
        assert_eq!(rows(&v), want);
    }

    #[test]
    fn a_value_with_markup_never_reaches_the_page_raw() {
        let mut x = a::CaseExport::default();
        x.case.id = "IT-2026-0001".into();
        x.case.case = serde_json::json!({"reference": {"reason": "<script>alert('x')</script>"}});
        x.timeline.messages.push(a::MessageView {
            summary: "<b>bold</b>".into(),
            fields: serde_json::json!({"person": {"given_name": "<img src=x onerror=y>"}}),
            ..Default::default()
        });
        let page = case_export(&x);
        assert!(!page.contains("<script>"), "{page}");
        assert!(!page.contains("<b>"), "{page}");
        assert!(!page.contains("<img"), "{page}");
        assert!(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
        assert!(page.starts_with("<!DOCTYPE html>"));
    }

    #[test]
    fn the_page_goes_beside_the_json_file() {
        let cases = [
            ("case.json", Some("case.html")),
            ("out/case", Some("out/case.html")),
            ("case.html", None),
            ("case.HTML", None),
        ];
        for (out, want) in cases {
            let got = page_path(Path::new(out)).ok();
            assert_eq!(got, want.map(PathBuf::from), "{out}");
        }
    }
}
