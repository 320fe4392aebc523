//! `/audit`: the auditor's page. **Export** (a POST with the CSRF token) runs `audit export`
//! with the officer's credential (the node allows auditors only) and answers the bundle as a
//! download; **verify** (a multipart upload; the guard checks its CSRF field) runs the same
//! offline verifier as `trm-admin audit verify` on the uploaded bytes and shows what it
//! checked, the key fingerprints, or the first failure. Both go through one function each of
//! [`crate::cmd::audit`] (`fetch`, `check`). The console keeps no bundle: the download is
//! the node's bytes, the upload is dropped with the answer.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Form};
use maud::{html, Markup};
use serde::Deserialize;
use trm_proto::audit::{AuditFailure, Options, Summary};
use trm_proto::date::format_ms;

use super::guard::Csrf;
use super::i18n::{t, Lang};
use super::pages::{failed, layout, refusal, App, Failed};
use super::upload::Upload;
use crate::cmd;
use crate::render;

/// `GET /audit` (and the home page of an auditor).
pub(crate) async fn page(lang: Lang, Extension(csrf): Extension<Csrf>) -> Response {
    layout(lang, t(lang, "Audit"), forms(lang, &csrf)).into_response()
}

/// The export form and the verify form.
pub(crate) fn forms(lang: Lang, csrf: &Csrf) -> Markup {
    html! {
        h2 { (t(lang, "Export the audit log")) }
        p { (t(lang, "The node's signed audit log as a bundle file (auditors only): all of it, or the entries of a period.")) }
        form method="post" action="/audit/export" {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Period (optional)")) }
                label { (t(lang, "From (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix milliseconds)")) " " input type="text" name="from"; }
                label { (t(lang, "To (YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or Unix milliseconds)")) " " input type="text" name="to"; }
                button type="submit" { (t(lang, "Export and download")) }
            }
        }
        h2 { (t(lang, "Verify a bundle offline")) }
        p { (t(lang, "The same checks as trm-admin audit verify, on this machine: no node is asked.")) }
        form method="post" action="/audit/verify" enctype="multipart/form-data" {
            input type="hidden" name="csrf" value=(csrf.0);
            fieldset {
                legend { (t(lang, "Bundle")) }
                label { (t(lang, "Bundle file")) " " input type="file" name="bundle" required; }
                label { input type="checkbox" name="partial" value="yes"; " " (t(lang, "A partial bundle (an export of a period) is expected")) }
                label { (t(lang, "Expected key fingerprints of the node (optional, separated by spaces)")) " " input type="text" name="expect_key"; }
                label { (t(lang, "Other nodes' bundles as witnesses (optional)")) " " input type="file" name="witness" multiple; }
                button type="submit" { (t(lang, "Verify")) }
            }
        }
    }
}

/// The export form's period (`--from`, `--to`; parsed as the command line parses them).
#[derive(Deserialize)]
pub(crate) struct ExportForm {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// A command-line failure as a page status: usage 400, role 403, node unreachable 502.
fn failure(f: crate::failure::Failure) -> Failed {
    Failed {
        status: match f.code {
            64 => StatusCode::BAD_REQUEST,
            77 => StatusCode::FORBIDDEN,
            69 => StatusCode::BAD_GATEWAY,
            _ => StatusCode::UNPROCESSABLE_ENTITY,
        },
        line: f.lines.join("; "),
    }
}

/// `POST /audit/export`: the bundle as a download, or the node's refusal in one line.
pub(crate) async fn export(
    lang: Lang,
    State(app): State<App>,
    Form(f): Form<ExportForm>,
) -> Response {
    let given = |s: &str| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    let (from, to) = (given(&f.from), given(&f.to));
    match cmd::audit::fetch(&app.session, from.as_deref(), to.as_deref()).await {
        Ok((answer, data)) => {
            let cc: String = answer
                .country
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .collect();
            let disposition = format!("attachment; filename=\"trm-audit-{cc}.bundle\"");
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                data,
            )
                .into_response()
        }
        Err(e) => failed(lang, t(lang, "Export refused"), failure(e)),
    }
}

/// The verifier's options from the form, as `--partial`, `--expect-key` (checked the same
/// way) and `--witness` (each uploaded witness bundle).
fn options(form: &Upload) -> Result<Options, String> {
    let expect_keys: Vec<String> = form
        .text("expect_key")
        .split([' ', ',', '\n', '\r', '\t'])
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .collect();
    for k in &expect_keys {
        trm_proto::audit::parse_fingerprint(k).map_err(|e| format!("--expect-key: {e}"))?;
    }
    Ok(Options {
        allow_partial: form.text("partial") == "yes",
        expect_keys,
        witnesses: form
            .all("witness")
            .filter(|p| !p.data.is_empty())
            .map(|p| p.data.to_vec())
            .collect(),
    })
}

/// `POST /audit/verify` (multipart: `bundle`, `partial`, `expect_key`): the verdict.
pub(crate) async fn verify(lang: Lang, upload: Option<Extension<Upload>>) -> Response {
    let title = t(lang, "Bundle verification");
    let Some(Extension(form)) = upload else {
        let text = t(
            lang,
            "Send the bundle as a file upload (the form on the audit page).",
        );
        return refusal(lang, StatusCode::BAD_REQUEST, text);
    };
    let Some(file) = form.get("bundle").filter(|p| !p.data.is_empty()) else {
        return refusal(
            lang,
            StatusCode::BAD_REQUEST,
            t(lang, "Choose a bundle file."),
        );
    };
    let opts = match options(&form) {
        Ok(o) => o,
        Err(line) => return refusal(lang, StatusCode::BAD_REQUEST, &line),
    };
    let name = file.filename.clone().unwrap_or_default();
    let size = file.data.len();
    let data = file.data.clone();
    // Signatures are checked one by one: CPU work, off the runtime's threads.
    let verdict = tokio::task::spawn_blocking(move || cmd::audit::check(&data, &opts)).await;
    let body = match verdict {
        Ok(Ok(sum)) => verified(lang, &sum),
        Ok(Err(f)) => not_verified(lang, &f, &witness_name(&form, &f)),
        Err(_) => html! { p.error { (t(lang, "The verifier stopped unexpectedly.")) } },
    };
    let page = html! {
        p { (t(lang, "Bundle file")) ": " (name) " (" (size) " " (t(lang, "bytes")) ")" }
        (body)
        p { a href="/audit" { (t(lang, "Verify another bundle")) } }
    };
    layout(lang, title, page).into_response()
}

/// The file name of the witness bundle a failure is in, as the command line names it.
fn witness_name(form: &Upload, f: &AuditFailure) -> String {
    match f.location {
        trm_proto::audit::Location::Witness { bundle, .. } => form
            .all("witness")
            .filter(|p| !p.data.is_empty())
            .nth(bundle)
            .and_then(|p| p.filename.clone())
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

fn not_verified(lang: Lang, f: &AuditFailure, of: &str) -> Markup {
    html! {
        p { span.badge.bad { (t(lang, "NOT VERIFIED")) } }
        p.error { (t(lang, "Verification FAILED at")) " " (f) (of) }
        p { (t(lang, "The verifier stops at the first failure; nothing after it was checked.")) }
    }
}

/// What a verified bundle holds: the facts `trm-admin audit verify` prints, then its text.
fn verified(lang: Lang, s: &Summary) -> Markup {
    let or_dash = |i: Option<u64>| i.map_or("-".to_string(), |i| i.to_string());
    let exported = s.exported_ms.map_or_else(
        || t(lang, "- (partial bundle: no record of this export)").to_string(),
        format_ms,
    );
    html! {
        p { span.badge.ok { (t(lang, "VERIFIED")) } " " (s.coverage) }
        table {
            tr { th { (t(lang, "Node")) } td { (s.country) " (" (s.name) ")" } }
            tr { th { (t(lang, "Exported")) } td { (exported) " (" (t(lang, "log signed at")) " " (s.signed_ms.map_or("-".into(), format_ms)) ")" } }
            tr { th { (t(lang, "Entries")) } td { (s.entries) " (" (t(lang, "indices")) " " (or_dash(s.first_index)) "..=" (or_dash(s.last_index)) ", " (t(lang, "log size")) " " (s.tree_size) ", " (t(lang, "root")) " " (s.root.get(..16).unwrap_or("-")) ")" } }
            tr { th { (t(lang, "Checkpoints")) } td { (s.checkpoints) ", " (t(lang, "chained, each consistent with the one before")) } }
            tr { th { (t(lang, "Signatures checked")) } td { (s.signatures) " (" (s.keys) " " (t(lang, "keys in the node's history")) ")" } }
            tr { th { (t(lang, "First entry")) } td { (format_ms(s.first_ms.unwrap_or(0))) } }
            tr { th { (t(lang, "Last entry")) } td { (format_ms(s.last_ms.unwrap_or(0))) } }
            tr { th { (t(lang, "Entries by kind")) } td { (s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect::<Vec<_>>().join(", ")) } }
        }
        (fingerprints(lang, s))
        details {
            summary { (t(lang, "As trm-admin audit verify prints it")) }
            pre { (render::audit_summary(s, false)) }
        }
    }
}

/// The node's key fingerprints and each peer's, oldest first; the verifier's notes.
fn fingerprints(lang: Lang, s: &Summary) -> Markup {
    html! {
        h2 { (t(lang, "Key fingerprints")) }
        table {
            tr { th { (t(lang, "Whose")) } th { (t(lang, "Fingerprints, oldest first")) } }
            tr { td { (t(lang, "This node")) " (" (s.country) ")" } td.fp { @for f in &s.key_fingerprints { code { (f) } br; } } }
            @for (peer, fps) in &s.peer_keys {
                tr { td { (peer) } td.fp { @for f in fps { code { (f) } br; } } }
            }
        }
        @if s.legacy_checkpoints > 0 {
            p { (t(lang, "Legacy checkpoints (unchained: one removed from among them would not show):")) " " (s.legacy_checkpoints) }
        }
        @if !s.witnessed.is_empty() {
            h2 { (t(lang, "Witness bundles")) }
            table {
                tr { th { (t(lang, "Witnessed by")) } th { (t(lang, "Checkpoints of this node that agree with this log")) } th { (t(lang, "Largest tree size")) } }
                @for w in &s.witnessed { tr { td { (w.by) } td { (w.checkpoints) } td { (w.largest) } } }
            }
        }
        @if s.replaced_cards > 0 {
            p { (t(lang, "Peer identities replaced (each pinned by an operator's logged peer add):")) " " (s.replaced_cards) }
        }
    }
}
