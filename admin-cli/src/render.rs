//! Human output: readable tables and summaries of the node's typed answers (one function per
//! answer type; `--json` prints the answers themselves).

use serde_json::Value;
use trm_admin_api::answers as a;
use trm_proto::template::core_field;

/// A plain text table with a header row.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(|h| h.to_uppercase()).collect());
    for r in rows {
        out.push_str(&line(r.clone()));
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

/// The first 19 characters of a fingerprint (four groups).
fn short(fp: &str) -> String {
    fp.chars().take(19).collect()
}

/// A JSON document (a case, released fields) as indented text.
fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// `peer remove`.
pub(crate) fn removed(r: &a::PeerRemoved) -> String {
    format!("removed peer {}\n", r.removed)
}

/// `status`: the node, then one row per peer, then overdue referrals.
pub(crate) fn status(v: &a::Status) -> String {
    let au = &v.audit;
    let mut out = format!(
        "node {} ({})\npeer listener {}   admin listener {}\nsigning key     {}\nTLS certificate {}\nreceived {}   outbox {}   audit entries {}   last checkpoint {} at {}\nprocessing      {}\n",
        v.country, v.name, v.peer_listen, v.admin_listen, v.signing_key, v.tls_certificate,
        v.received_total, v.outbox_total, v.audit_entries, au.checkpoint_size, au.checkpoint_time,
        au.processing,
    );
    if let Some(r) = &v.last_restore {
        out.push_str(&format!(
            "RESTORED from a backup taken at {}: anything recorded after that is not on this node\n\n",
            r.taken
        ));
    }
    if !au.write_failure.is_empty() {
        out.push_str(&format!("audit log failure: {}\n", au.write_failure));
    }
    for p in v.peers.iter().filter(|p| p.audit_log.held) {
        let log = &p.audit_log;
        out.push_str(&format!(
            "peer {} HELD since {}: {}\n  re-accept with: trm-admin peer trust {}\n",
            p.country, log.held_since, log.reason, p.country
        ));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = v
        .peers
        .iter()
        .map(|p| {
            vec![
                p.country.clone(),
                p.state.clone(),
                p.last_contact.clone(),
                p.outbox.to_string(),
                p.oldest_pending.clone(),
                p.last_error.clone(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "peer",
            "state",
            "last contact",
            "outbox",
            "oldest pending",
            "last error",
        ],
        &rows,
    ));
    if !v.overdue.is_empty() {
        out.push_str("\nOVERDUE referrals (no acceptance or decline by the response date):\n");
        let rows: Vec<Vec<String>> = v
            .overdue
            .iter()
            .map(|t| {
                vec![
                    t.case_ref.clone(),
                    t.peer.clone(),
                    t.role.clone(),
                    t.response_due.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&["case", "with", "role", "due"], &rows));
    }
    out
}

/// `peer add`.
pub(crate) fn peer(p: &a::PeerCard) -> String {
    let mut out = format!(
        "pinned peer\ncountry:          {}\nname:             {}\naddresses:        {}\nsigning key:      {}\nTLS certificate:  {}\naccepts:          {}\nvalid until:      {}\n",
        p.country,
        p.name,
        p.addresses.join(", "),
        p.signing_key,
        p.tls_certificate,
        p.acceptance.join(", "),
        p.valid_until,
    );
    if let Some(agreement) = &p.agreement {
        out.push_str(&format!("agreement:        {agreement}\n"));
    }
    if let Some(basis) = &p.legal_basis {
        out.push_str(&format!("legal basis:      {basis}\n"));
    }
    if let Some(w) = &p.warning {
        out.push_str(&format!("warning:          {w}\n"));
    }
    out
}

/// `peer list`.
pub(crate) fn peers(v: &a::PeerList) -> String {
    let rows: Vec<Vec<String>> = v
        .peers
        .iter()
        .map(|p| {
            let state = match (&p.state, p.revoked) {
                (Some(s), _) => s.as_str(),
                (None, true) => "revoked",
                (None, false) => "pinned",
            };
            let agreement = match (&p.agreement, &p.legal_basis) {
                (None, _) => "none recorded".to_string(),
                (Some(a), None) => a.clone(),
                (Some(a), Some(b)) => format!("{a} (legal basis: {b})"),
            };
            vec![
                p.country.clone(),
                p.name.clone(),
                short(&p.signing_key),
                state.into(),
                agreement,
            ]
        })
        .collect();
    table(
        &["country", "name", "signing key", "state", "agreement"],
        &rows,
    )
}

/// `audit export`.
pub(crate) fn exported(file: &str, v: &a::AuditExported) -> String {
    format!(
        "wrote {file}: {} entries of a log of {}, {} checkpoints, {} peer cards\ncheck it offline with: trm-admin audit verify {file}\n",
        v.entries, v.tree_size, v.checkpoints, v.peer_cards
    )
}

/// `officer add`.
pub(crate) fn officer(v: &a::OfficerAdded) -> String {
    format!(
        "registered {} (role {}, certificate {}) on node {}\nthe officer's credential names node {} and node certificate {}\n",
        v.name, v.role, v.certificate, v.country, v.node, v.node_cert_sha256
    )
}

/// `officer list`.
pub(crate) fn officers(v: &a::OfficerList) -> String {
    let rows: Vec<Vec<String>> = v
        .officers
        .iter()
        .map(|o| {
            let state = match &o.revoked {
                Some(at) => format!("revoked {at}"),
                None => "active".into(),
            };
            vec![
                o.name.clone(),
                o.role.clone(),
                o.added.clone(),
                short(&o.certificate),
                state,
            ]
        })
        .collect();
    table(&["name", "role", "added", "certificate", "state"], &rows)
}

/// `case create`.
pub(crate) fn created(v: &a::CaseCreated) -> String {
    format!("recorded case {} ({} fields)\n", v.id, v.fields)
}

/// A referral's state as `CC:state`, `(overdue)` after it when past its response date.
pub(crate) fn referral_state(t: &a::Thread) -> String {
    let overdue = if t.overdue { "(overdue)" } else { "" };
    format!("{}:{}{overdue}", t.peer, t.state)
}

/// `case list`: one row per case recorded here, then one per case received; the referrals
/// as `CC:state`.
pub(crate) fn cases(v: &a::CaseList) -> String {
    let mut rows: Vec<Vec<String>> = v
        .cases
        .iter()
        .map(|c| {
            let refs: Vec<String> = c.referrals.iter().map(referral_state).collect();
            vec![
                c.id.clone(),
                "recorded here".into(),
                c.created.clone(),
                c.created_by.clone(),
                refs.join(" "),
            ]
        })
        .collect();
    rows.extend(v.received.iter().map(|t| {
        vec![
            t.case_ref.clone(),
            format!("received from {}", t.peer),
            "-".into(),
            "-".into(),
            referral_state(t),
        ]
    }));
    table(&["case", "origin", "recorded", "by", "referrals"], &rows)
}

/// A template name as a label: `response_due` → `Response due`.
fn label(name: &str) -> String {
    let words = name.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => words,
    }
}

/// A scalar or a list of scalars as text (booleans as yes/no).
fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.into(),
        Value::Array(items) => items.iter().map(scalar_text).collect::<Vec<_>>().join(", "),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// A record (a consent, a document, a family member) on one line, its fields in template
/// order (`cols`), any others after them.
fn record_text(cols: &[(&str, trm_proto::template::Kind)], v: &Value) -> String {
    let Value::Object(m) = v else {
        return scalar_text(v);
    };
    let known: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
    let mut names = known.clone();
    names.extend(m.keys().map(String::as_str).filter(|k| !known.contains(k)));
    names
        .iter()
        .filter_map(|n| m.get(*n).filter(|x| !x.is_null()).map(|x| (n, x)))
        .map(|(n, x)| format!("{}: {}", label(n).to_lowercase(), scalar_text(x)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A field's value in words: one text, or one line per record (a list of records).
pub(crate) enum FieldText {
    One(String),
    Records(Vec<String>),
}

/// A field's value in words (shared by `case show` and the console's case page).
pub(crate) fn field_text(kind: trm_proto::template::Kind, v: &Value) -> FieldText {
    let cols = kind.record_fields();
    match v {
        Value::Array(items) if !cols.is_empty() => {
            FieldText::Records(items.iter().map(|i| record_text(cols, i)).collect())
        }
        Value::Object(_) => FieldText::One(record_text(cols, v)),
        other => FieldText::One(scalar_text(other)),
    }
}

/// One field as `  Label   value` lines (a list of records: one line per record).
fn field_lines(label: &str, text: &FieldText) -> String {
    let pad = |first: &str| format!("  {label:<28} {first}\n");
    match text {
        FieldText::Records(items) => {
            let mut out = pad("");
            for item in items {
                out.push_str(&format!("    - {item}\n"));
            }
            out
        }
        FieldText::One(text) => pad(&text.replace('\n', &format!("\n  {:<28} ", ""))),
    }
}

/// Leaf paths of a case document (`section.field` or deeper), in document order.
fn leaf_paths(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) if prefix.is_empty() || prefix.starts_with("ext") => {
            for (k, x) in m {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaf_paths(&path, x, out);
            }
        }
        Value::Object(m) if !prefix.contains('.') => {
            for (k, x) in m {
                out.push((format!("{prefix}.{k}"), x.clone()));
            }
        }
        Value::Null => {}
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// The case's fields in template order as (section label, [(field label, value)]); then any
/// field the core template does not name (national extensions) by path, under "Other fields
/// (national extensions)". Shared by `case show` and the console's case page.
pub(crate) fn case_sections(doc: &Value) -> Vec<(String, Vec<(String, FieldText)>)> {
    case_sections_keyed(doc)
        .into_iter()
        .map(|(section, rows)| {
            let title = section.map_or_else(|| "Other fields (national extensions)".into(), label);
            let rows = rows
                .into_iter()
                .map(|(path, x)| match core_field(&path) {
                    Some(f) => (label(f.name()), x),
                    None => (path, x),
                })
                .collect();
            (title, rows)
        })
        .collect()
}

/// The case's fields in template order by section name and field path (the section `None`:
/// national extensions and other fields outside the core template), for a caller that labels
/// them itself (the console, in the officer's language).
pub(crate) type KeyedSections = Vec<(Option<&'static str>, Vec<(String, FieldText)>)>;

pub(crate) fn case_sections_keyed(doc: &Value) -> KeyedSections {
    use trm_proto::template::{core_fields, SECTIONS};
    let mut out = Vec::new();
    for section in SECTIONS {
        let rows: Vec<(String, FieldText)> = core_fields()
            .iter()
            .filter(|f| f.section() == section)
            .filter_map(|f| match &doc[section][f.name()] {
                Value::Null => None,
                v => Some((f.path.to_string(), field_text(f.kind, v))),
            })
            .collect();
        if !rows.is_empty() {
            out.push((Some(section), rows));
        }
    }
    let mut others = Vec::new();
    leaf_paths("", doc, &mut others);
    others.retain(|(p, x)| core_field(p).is_none() && !x.is_null());
    if !others.is_empty() {
        let rows = others
            .into_iter()
            .map(|(path, x)| (path, FieldText::One(scalar_text(&x))))
            .collect();
        out.push((None, rows));
    }
    out
}

/// The case's fields in template order, under their section's label.
fn case_fields(doc: &Value) -> String {
    let mut out = String::new();
    for (section, rows) in case_sections(doc) {
        out.push_str(&format!("\n{section}\n"));
        for (label, text) in &rows {
            out.push_str(&field_lines(label, text));
        }
    }
    out
}

/// The header of `case show` (and of the console's case page): reference, urgency, due date,
/// phase and state per partner, version, last report, erased categories.
pub(crate) fn case_header_rows(v: &a::CaseShow) -> Vec<(&'static str, String)> {
    let (origin, threads, missing) = match &v.thread {
        Some(t) => (v.origin.clone(), vec![t.clone()], "not disclosed"),
        None => (
            format!(
                "{}, {} by {}",
                v.origin,
                v.created.as_deref().unwrap_or("-"),
                v.created_by.as_deref().unwrap_or("-")
            ),
            v.referrals.clone(),
            "not recorded",
        ),
    };
    let reference = &v.case["reference"];
    let value = |name: &str| reference[name].as_str().unwrap_or(missing).to_string();
    let phases: Vec<String> = threads
        .iter()
        .map(|t| format!("{}: {}", t.peer, t.phase))
        .collect();
    let states: Vec<String> = threads.iter().map(referral_state).collect();
    let mut rows = vec![
        ("case", v.id.clone()),
        ("origin", origin),
        ("urgency", value("urgency")),
        ("response due", value("response_due")),
        ("phase", phases.join("; ")),
        ("state", states.join(" ")),
    ];
    if threads.is_empty() {
        rows[4].1 = "-".into();
        rows[5].1 = "not referred".into();
    }
    if let (Some(c), Some(n)) = (&v.version, v.versions) {
        let cause = c.cause.replace('-', " ");
        let version = format!("{} of {n}, {} by {} ({cause})", c.version, c.at, c.by);
        rows.push(("version", version));
    }
    if let Some(r) = &v.reported {
        let status = if r.status.is_empty() { "-" } else { &r.status };
        let reported = format!("{}: {status} ({}, {})", r.phase, r.at, r.cause);
        rows.push(("reported", reported));
    }
    if let Some(erased) = v.erased.as_ref().filter(|e| !e.is_empty()) {
        rows.push(("erased", erased.join(", ")));
    }
    rows
}

/// The header of `case show`, with the basis of transfer of a received case.
fn case_header(v: &a::CaseShow) -> String {
    let mut out: String = case_header_rows(v)
        .iter()
        .map(|(k, x)| format!("{k:<13} {x}\n"))
        .collect();
    if let Some(basis) = &v.basis_of_transfer {
        out.push_str(&format!("basis of transfer: {basis}\n"));
    }
    out
}

/// `case show`: the header, then the fields in template order with their labels.
pub(crate) fn case(v: &a::CaseShow) -> String {
    case_header(v) + &case_fields(&v.case)
}

/// `case template`.
pub(crate) fn template(v: &a::CaseTemplate) -> String {
    format!("{}\n", v.template)
}

/// `referral preview`.
pub(crate) fn preview(v: &a::Preview) -> String {
    let released = v.fields.iter().filter(|f| f.released).count();
    format!(
        "referral of case {} to {}: {} of {} fields released\n{}{}",
        v.case,
        v.to,
        released,
        v.fields.len(),
        warnings(&v.warnings),
        decisions(&v.fields)
    )
}

/// `followup preview`.
pub(crate) fn follow_up_preview(v: &a::Preview) -> String {
    let released = v.fields.iter().filter(|f| f.released).count();
    format!(
        "follow-up of case {} to {}: {} of {} fields released (nothing sent)\n{}",
        v.case,
        v.to,
        released,
        v.fields.len(),
        decisions(&v.fields)
    )
}

/// `followup send`: what left, and each withheld field with its rules.
pub(crate) fn follow_up_sent(v: &a::FollowUpSent) -> String {
    let mut out = format!(
        "follow-up {} of case {} to {} is in the outbox ({} fields released, {} withheld)\n",
        v.message, v.case, v.to, v.released, v.withheld
    );
    if !v.withheld_fields.is_empty() {
        out.push_str("withheld:\n");
        out.push_str(&decisions(&v.withheld_fields));
    }
    out.push_str(&format!(
        "follow it with: trm-admin message show {}\n",
        v.message
    ));
    out
}

/// `referral approve`: who approved what for which referral, and what still waits.
pub(crate) fn approved(v: &a::Approved) -> String {
    let which = if v.referral.is_empty() {
        format!("the next referral of case {} to {}", v.case, v.to)
    } else {
        format!("referral {} of case {} to {}", v.referral, v.case, v.to)
    };
    let mine: Vec<&str> = v
        .granted
        .iter()
        .filter(|g| g.supervisor == v.supervisor)
        .map(|g| g.category.as_str())
        .collect();
    let mut out = format!(
        "{} approved {} for {which}\napproved so far: {}\n",
        v.supervisor,
        mine.join(","),
        grants(&v.granted)
    );
    for w in &v.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if v.waiting.is_empty() {
        out.push_str("nothing else waits for approval\n");
    } else {
        out.push_str(&format!(
            "still waiting for approval: {}\n",
            v.waiting.join(",")
        ));
    }
    out
}

/// Grants as `category (supervisor)`, comma separated.
fn grants(list: &[a::Grant]) -> String {
    let shown: Vec<String> = list
        .iter()
        .map(|g| format!("{} ({})", g.category, g.supervisor))
        .collect();
    if shown.is_empty() {
        "nothing".into()
    } else {
        shown.join(", ")
    }
}

/// `referral approvals`.
pub(crate) fn approvals(v: &a::Approvals) -> String {
    let rows: Vec<Vec<String>> = v
        .waiting
        .iter()
        .map(|w| {
            vec![
                w.case.clone(),
                w.to.clone(),
                referral_name(&w.referral),
                w.categories.join(","),
            ]
        })
        .collect();
    let mut out = format!(
        "waiting for approval\n{}",
        table(&["case", "to", "referral", "categories"], &rows)
    );
    let rows: Vec<Vec<String>> = v
        .approvals
        .iter()
        .flat_map(|ap| {
            ap.granted.iter().map(|g| {
                vec![
                    ap.case.clone(),
                    ap.to.clone(),
                    referral_name(&ap.referral),
                    g.category.clone(),
                    g.supervisor.clone(),
                    g.at.clone(),
                ]
            })
        })
        .collect();
    out.push_str(&format!(
        "\napproved\n{}",
        table(
            &["case", "to", "referral", "category", "supervisor", "at"],
            &rows
        )
    ));
    out
}

fn referral_name(id: &str) -> String {
    if id.is_empty() {
        "next".into()
    } else {
        id.into()
    }
}

/// A queue item's flags: its urgency, `child`, `OVERDUE` (shared with the console).
pub(crate) fn queue_flags(i: &a::QueueItem) -> Vec<String> {
    let mut flags = Vec::new();
    if let Some(u) = &i.urgency {
        flags.push(u.clone());
    }
    if i.minor == Some(true) {
        flags.push("child".into());
    }
    if i.overdue {
        flags.push("OVERDUE".into());
    }
    flags
}

/// A kind of work in words: `answer referral`.
pub(crate) fn queue_kind(kind: a::QueueKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|k| k.as_str().map(str::to_string))
        .unwrap_or_default()
        .replace('_', " ")
}

/// `queue`: one block per item, most pressing first.
pub(crate) fn queue(v: &a::Queue) -> String {
    let mut out = format!(
        "queue of a{} {}\n",
        if v.role.starts_with('o') { "n" } else { "" },
        v.role
    );
    if v.role == "operator" {
        match &v.last_backup {
            Some(b) => out.push_str(&format!(
                "last backup: {} ({} days ago)\n",
                b.taken, b.age_days
            )),
            None => out.push_str("last backup: none taken by this node\n"),
        }
    }
    if v.items.is_empty() {
        out.push_str("nothing to do\n");
    }
    for i in &v.items {
        let flags = queue_flags(i);
        let kind = queue_kind(i.kind);
        out.push_str(&format!("\n[{kind}] {}\n", i.what));
        if !i.id.is_empty() {
            out.push_str(&format!("  id: {}\n", i.id));
        }
        if !flags.is_empty() {
            out.push_str(&format!("  flags: {}\n", flags.join(", ")));
        }
        if i.due != "-" {
            out.push_str(&format!("  due: {}\n", i.due));
        }
        out.push_str(&format!("  do: {}\n", i.command));
    }
    out
}

/// Field decisions as a table: field, category, decision, the rules that withheld it.
fn decisions(fields: &[a::FieldDecision]) -> String {
    let rows: Vec<Vec<String>> = fields
        .iter()
        .map(|f| {
            let why: Vec<String> = f.withheld_by.iter().map(|w| w.replace('_', " ")).collect();
            let decision = if why.is_empty() {
                "released"
            } else {
                "withheld"
            };
            vec![
                f.path.clone(),
                f.category.clone(),
                decision.into(),
                why.join(", "),
            ]
        })
        .collect();
    table(&["field", "category", "decision", "withheld by"], &rows)
}

/// `case consent`.
pub(crate) fn consent(v: &a::Consent) -> String {
    let mut out = format!("consent for {} on case {}: {}", v.consent, v.case, v.status);
    if let Some(by) = &v.by {
        out.push_str(&format!(" (by the {by})"));
    }
    out.push('\n');
    if let Some(officer) = &v.recorded_by {
        out.push_str(&format!("recorded by: {officer}\n"));
    }
    if let Some(erased) = &v.erased {
        out.push_str(&format!("erased here: {erased}\n"));
    }
    if let Some(requests) = &v.erasure_requests {
        out.push_str(&format!("erasure requests sent: {}\n", requests.join(", ")));
    }
    out + &warnings(&v.warnings)
}

/// One `warning: ...` line per warning.
fn warnings(w: &[a::Warning]) -> String {
    w.iter().map(|w| format!("warning: {}\n", w.text)).collect()
}

/// `referral send`.
pub(crate) fn sent(v: &a::ReferralSent) -> String {
    format!(
        "referral {} of case {} to {} is in the outbox ({} fields released, {} withheld)\n{}follow it with: trm-admin message show {}\n",
        v.message, v.case, v.to, v.released, v.withheld, warnings(&v.warnings), v.message
    )
}

/// `inbox`: emergency and child cases first (the node's order), with both flags.
pub(crate) fn inbox(v: &a::Inbox) -> String {
    let rows: Vec<Vec<String>> = v
        .messages
        .iter()
        .map(|m| {
            let minor = match m.minor {
                Some(true) => "yes",
                Some(false) => "no",
                None => "unknown",
            };
            let urgency = m.urgency.as_deref().unwrap_or("unknown");
            vec![
                m.id.clone(),
                m.from.clone(),
                m.kind.clone(),
                m.case_ref.clone(),
                urgency.into(),
                minor.into(),
                m.received.clone(),
                m.categories.join(","),
            ]
        })
        .collect();
    table(
        &[
            "message",
            "from",
            "kind",
            "case",
            "urgency",
            "child",
            "received",
            "categories",
        ],
        &rows,
    )
}

/// An information request's answered state (nothing for other messages).
fn answered_line(v: &a::MessageView) -> String {
    match &v.answered_by {
        Some(ids) if ids.is_empty() => "  answered:     not yet\n".to_string(),
        Some(ids) => format!("  answered:     yes, by {}\n", ids.join(", ")),
        None => String::new(),
    }
}

/// `case timeline`: the threads, then every message in both directions.
pub(crate) fn timeline(v: &a::Timeline) -> String {
    let mut out = format!("case {}\n", v.case);
    for t in &v.threads {
        out.push_str(&format!(
            "  with {} ({}): {}{}  phase: {}  due: {}\n",
            t.peer,
            t.role,
            t.state,
            if t.overdue { " OVERDUE" } else { "" },
            t.phase,
            t.response_due,
        ));
    }
    let rows: Vec<Vec<String>> = v
        .messages
        .iter()
        .map(|m| {
            let way = if m.direction == "sent" { "→" } else { "←" };
            let summary = match &m.answered_by {
                Some(ids) if ids.is_empty() => format!("{} [not answered yet]", m.summary),
                Some(ids) => format!("{} [answered by {}]", m.summary, ids.join(",")),
                None => m.summary.clone(),
            };
            vec![
                m.created.clone(),
                m.id.clone(),
                format!("{way} {}", m.peer),
                m.kind.clone(),
                summary,
                m.verification.signature.clone(),
                m.delivery.state().to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "time",
            "message",
            "way",
            "kind",
            "summary",
            "signature",
            "delivery",
        ],
        &rows,
    ));
    out + &timeline_changes(v)
}

/// The case's versions (field paths changed, never values) and the reopenings of a side.
fn timeline_changes(v: &a::Timeline) -> String {
    let mut out = String::new();
    if !v.versions.is_empty() {
        out.push_str("versions of this node's record:\n");
    }
    for c in &v.versions {
        let changed = if c.changed.is_empty() {
            "no field".to_string()
        } else {
            c.changed.join(", ")
        };
        let phase = if c.phase.is_empty() {
            String::new()
        } else {
            format!("  reported phase: {}", c.phase)
        };
        out.push_str(&format!(
            "  version {}  {}  by {}  ({})  changed: {changed}{phase}\n",
            c.version, c.at, c.by, c.cause
        ));
    }
    for r in &v.reopened {
        out.push_str(&format!(
            "reopened {}'s side with {}: {} by {} ({})\n",
            r.side, r.peer, r.at, r.by, r.reason
        ));
    }
    out
}

/// `case update`.
pub(crate) fn updated(v: &a::CaseUpdated) -> String {
    format!(
        "case {} is now at version {}; changed: {}\n",
        v.id,
        v.version,
        v.changed.join(", ")
    )
}

/// `case reopen`.
pub(crate) fn reopened(v: &a::CaseReopened) -> String {
    let note = if v.state == "closed" {
        " (still closed by the other side)"
    } else {
        ""
    };
    format!(
        "reopened this side of case {} with {}: {}{note}; the next follow-up tells {}\n",
        v.case, v.to, v.state, v.to
    )
}

/// `directory list`.
pub(crate) fn directory(v: &a::DirectoryList) -> String {
    let rows: Vec<Vec<String>> = v
        .entries
        .iter()
        .map(|e| {
            vec![
                e.country.clone(),
                e.role.clone(),
                format!("{} {}", e.institution, e.unit).trim().to_string(),
                e.channels.join(" "),
                e.languages.join(" "),
                e.hours.clone(),
                if e.last_confirmed.is_empty() {
                    "never".into()
                } else {
                    e.last_confirmed.clone()
                },
                if e.last_confirmed.is_empty() {
                    "UNCONFIRMED".into()
                } else if e.stale {
                    "STALE".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = String::new();
    for d in &v.versions {
        let whose = if d.own { " (this node)" } else { "" };
        let when = if d.published.is_empty() {
            "never published".to_string()
        } else {
            format!("published {}", d.published)
        };
        out.push_str(&format!(
            "{}{whose}: version {}, {when}, {} entries\n",
            d.country, d.version, d.entries
        ));
    }
    out.push_str(&table(
        &[
            "country",
            "role",
            "institution",
            "channels",
            "languages",
            "hours",
            "confirmed",
            "",
        ],
        &rows,
    ));
    out
}

/// The peer's signed answer to a sent message, in words.
fn answer_lines(answer: &a::SignedAnswer, peer: &str) -> String {
    match answer {
        a::SignedAnswer::Receipt {
            received,
            signature,
            receiver,
            outcome,
            signer_key,
        } => {
            let outcome = if outcome.is_empty() {
                String::new()
            } else {
                format!(" ({outcome})")
            };
            let key = if signer_key.is_empty() {
                format!("no key of {peer} pinned here was valid when it was signed")
            } else {
                format!("checked against {peer}'s pinned key {signer_key}")
            };
            format!(
                "  receipt:      {receiver} received it at {received}{outcome}\n                signature {signature}, {key}\n"
            )
        }
        a::SignedAnswer::Rejection {
            reason,
            detail,
            fields,
            signature,
        } => {
            let fields = if fields.is_empty() {
                String::new()
            } else {
                format!(" (fields: {})", fields.join(", "))
            };
            format!("  rejection:    {reason} by {peer}: {detail}{fields}\n                signature {signature}\n")
        }
        a::SignedAnswer::Unreadable => "  answer:       unreadable\n".into(),
    }
}

/// A pending message's delivery, in words.
fn pending_lines(p: &a::PendingDelivery, peer: &str) -> String {
    let mut out = format!("  waiting for:  {peer} ({})", p.peer_state);
    if p.failing_since != "-" {
        out.push_str(&format!(
            ", failing since {} ({} failed attempts)",
            p.failing_since, p.attempts
        ));
    }
    out.push('\n');
    if !p.last_error.is_empty() {
        out.push_str(&format!("  last error:   {}\n", p.last_error));
    }
    out.push_str(&format!(
        "  last contact: {}   messages ahead of it: {}\n  next attempt: {}\n",
        p.last_contact, p.ahead, p.next_attempt
    ));
    out
}

/// A message's delivery: the state in words, then what the node knows of it.
pub(crate) fn delivery_lines(v: &a::MessageView) -> String {
    match &v.delivery {
        a::Delivery::Received { received, state } => {
            format!("  delivery:     {state} (received {received})\n")
        }
        a::Delivery::Sent {
            answer,
            answered,
            state,
            pending,
        } => {
            let mut out = match pending {
                Some(_) => format!("  delivery:     {state}: not delivered yet\n"),
                None if answered != "-" => {
                    format!("  delivery:     {state} (answered {answered})\n")
                }
                None => format!("  delivery:     {state}\n"),
            };
            if let Some(p) = pending {
                out.push_str(&pending_lines(p, &v.peer));
            }
            if let Some(answer) = answer {
                out.push_str(&answer_lines(answer, &v.peer));
            }
            out
        }
    }
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// A referral's agreement and legal basis in words.
fn basis_of_transfer(agreement: &Option<String>, legal_basis: &Option<String>) -> String {
    trm_proto::agreement::basis(
        agreement.as_deref().unwrap_or(""),
        legal_basis.as_deref().unwrap_or(""),
    )
    .unwrap_or_else(|| "not stated by the sender".into())
}

/// What a message says, one labelled line each (shared by `message show` and the console).
pub(crate) fn payload_lines(p: &a::PayloadView) -> Vec<(&'static str, String)> {
    use a::PayloadView as P;
    match p {
        P::Referral {
            agreement,
            legal_basis,
            phase,
            response_due,
            urgency,
        } => vec![
            ("urgency", urgency.clone()),
            ("response due", response_due.clone()),
            ("phase", phase.clone()),
            (
                "basis of transfer",
                basis_of_transfer(agreement, legal_basis),
            ),
        ],
        P::Acceptance {
            focal_point,
            responsible_institution,
        } => vec![
            ("accepted by", responsible_institution.clone()),
            ("focal point", or_none(focal_point, "not named")),
        ],
        P::Decline { reason } => vec![("declined", reason.clone())],
        P::FollowUp {
            date,
            phase,
            status,
        } => vec![
            ("phase", phase.clone()),
            ("status", or_none(status, "no status text")),
            ("date", or_none(date, "undated")),
        ],
        P::InformationRequest {
            categories,
            fields,
            purpose,
        } => {
            let whole = categories.iter().map(|c| format!("every {c} field"));
            let asked: Vec<String> = fields.iter().cloned().chain(whole).collect();
            vec![
                ("asks for", list_or_none(&asked)),
                ("purpose", purpose.clone()),
            ]
        }
        P::Disclosure { referral } => vec![("more fields of", format!("referral {referral}"))],
        P::ErasureRequest {
            categories,
            reason,
            referral,
        } => vec![
            ("erase", list_or_none(categories)),
            ("reason", reason.clone()),
            ("of", format!("referral {referral}")),
        ],
        P::ErasureConfirmation {
            categories,
            erased,
            request,
        } => vec![
            ("erased", list_or_none(categories)),
            ("at", erased.clone()),
            ("request", request.clone()),
        ],
        P::Closure { date, outcome } => vec![
            ("outcome", outcome.replace('_', " ")),
            ("closed on", or_none(date, "undated")),
        ],
        P::DirectoryUpdate { contacts, version } => vec![(
            "directory",
            format!("version {version}, {contacts} contacts"),
        )],
        P::KeyAnnouncement { key } => vec![("new key", key.clone())],
        P::Unknown => vec![("content", "unreadable".into())],
    }
}

/// `message show`.
pub(crate) fn message(v: &a::MessageView) -> String {
    let ver = &v.verification;
    let mut out = format!(
        "message {}\n  {} {} {} -> {}   case {}   created {}\n  signature:    {}\n  disclosures:  {}\n  envelope hash {}\n",
        v.id, v.direction, v.kind, v.sender, v.recipient, v.case_ref, v.created, ver.signature,
        ver.disclosures, ver.envelope_hash,
    );
    out.push_str(&delivery_lines(v));
    if !v.in_reply_to.is_empty() {
        out.push_str(&format!("  in reply to:  {}\n", v.in_reply_to));
    }
    out.push_str(&answered_line(v));
    for (label, value) in v.payload.as_ref().map(payload_lines).unwrap_or_default() {
        out.push_str(&format!("  {:<13} {value}\n", format!("{label}:")));
    }
    // The referral's header says whether the person is a child, even when child.* is withheld.
    if let Some(minor) = v
        .fields
        .pointer("/reference/minor")
        .and_then(Value::as_bool)
    {
        let said = if minor {
            "yes: the person is a child"
        } else {
            "no"
        };
        out.push_str(&format!("  minor:        {said}\n"));
    }
    for e in v.extensions.iter().flatten() {
        let declared = if e.known_here {
            ""
        } else {
            ", declared by the sender"
        };
        out.push_str(&format!(
            "  extension {} (category {}{declared}): {}\n",
            e.path, e.category, e.help
        ));
    }
    if v.fields.as_object().is_some_and(|m| m.is_empty()) {
        out.push_str("  fields:       none carried by this message\n");
        return out;
    }
    out.push_str("  fields:\n");
    out.push_str(&pretty(&v.fields));
    out.push('\n');
    out
}

/// The result of `audit verify` as a JSON document (keys sorted).
fn audit_summary_json(sum: &trm_proto::audit::Summary) -> String {
    use trm_proto::date::format_ms;
    let messages: Vec<Value> = sum
        .messages
        .iter()
        .map(|((peer, dir, kind), n)| {
            serde_json::json!({ "peer": peer, "direction": dir, "kind": kind, "count": n })
        })
        .collect();
    let v = serde_json::json!({
        "verified": true,
        "country": sum.country,
        "name": sum.name,
        "keys": sum.keys,
        "peers": sum.peers,
        "entries": sum.entries,
        "tree_size": sum.tree_size,
        "root": sum.root,
        "checkpoints": sum.checkpoints,
        "signatures": sum.signatures,
        "first": format_ms(sum.first_ms.unwrap_or(0)),
        "last": format_ms(sum.last_ms.unwrap_or(0)),
        "first_index": sum.first_index,
        "last_index": sum.last_index,
        "kinds": sum.kinds,
        "messages": messages,
        "coverage": sum.coverage.to_string(),
        "complete": sum.coverage == trm_proto::audit::Coverage::Complete,
        "exported": sum.exported_ms.map(format_ms),
        "signed": sum.signed_ms.map(format_ms),
        "legacy_checkpoints": sum.legacy_checkpoints,
        "replaced_cards": sum.replaced_cards,
        "key_fingerprints": sum.key_fingerprints,
        "peer_keys": sum.peer_keys,
        "witnessed": sum.witnessed.iter().map(|w| serde_json::json!({
            "by": w.by, "checkpoints": w.checkpoints, "largest_tree_size": w.largest,
        })).collect::<Vec<_>>(),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default() + "\n"
}

/// The result of `audit verify`, for people or as JSON.
pub(crate) fn audit_summary(sum: &trm_proto::audit::Summary, json: bool) -> String {
    use trm_proto::date::format_ms;
    if json {
        return audit_summary_json(sum);
    }
    let mut keys = format!(
        "  node keys    {}\n",
        sum.key_fingerprints.join("\n               ")
    );
    for (peer, fps) in &sum.peer_keys {
        keys += &format!("  {peer} keys      {}\n", fps.join("\n               "));
    }
    let mut notes = String::new();
    if sum.legacy_checkpoints > 0 {
        notes += &format!(
            "  note         {} legacy checkpoints (unchained: one removed from among them would not show)\n",
            sum.legacy_checkpoints
        );
    }
    if sum.replaced_cards > 0 {
        notes += &format!(
            "  note         {} peer identities replaced (a new key history each, pinned by an operator's logged `peer add`)\n",
            sum.replaced_cards
        );
    }
    for w in &sum.witnessed {
        notes += &format!(
            "  witnessed    by {}: {} checkpoints of this node agree with this log (largest tree size {})\n",
            w.by, w.checkpoints, w.largest
        );
    }
    let kinds: Vec<String> = sum.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
    let rows: Vec<Vec<String>> = sum
        .messages
        .iter()
        .map(|((peer, dir, kind), n)| vec![peer.clone(), dir.clone(), kind.clone(), n.to_string()])
        .collect();
    format!(
        "audit bundle of {} ({}): VERIFIED, {}\n  exported     {} (log signed at {})\n  entries      {} (indices {}..={} of a log of {}, root {})\n  checkpoints  {}, chained, each consistent with the one before\n  signatures   {} checked ({} keys in the node's history; peers: {})\n{keys}{notes}  first        {}\n  last         {}\n  by kind      {}\n\n{}",
        sum.country,
        sum.name,
        sum.coverage,
        sum.exported_ms
            .map_or("- (partial bundle: no record of this export)".into(), format_ms),
        sum.signed_ms.map_or("-".into(), format_ms),
        sum.entries,
        sum.first_index.map_or("-".into(), |i| i.to_string()),
        sum.last_index.map_or("-".into(), |i| i.to_string()),
        sum.tree_size,
        sum.root.get(..16).unwrap_or("-"),
        sum.checkpoints,
        sum.signatures,
        sum.keys,
        if sum.peers.is_empty() { "none".to_string() } else { sum.peers.join(", ") },
        format_ms(sum.first_ms.unwrap_or(0)),
        format_ms(sum.last_ms.unwrap_or(0)),
        kinds.join(", "),
        table(&["peer", "direction", "kind", "messages"], &rows),
    )
}

/// A message put in the outbox (`referral accept | decline`, `case close`, `info request`):
/// what was sent to whom, and how to follow it. Delivery comes later: `message show`.
pub(crate) fn enqueued(v: &a::Enqueued) -> String {
    let what = match v.kind.as_str() {
        "acceptance" => "acceptance",
        "decline" => "decline",
        "closure" => "closure",
        "information_request" => "information request",
        other => other,
    };
    format!(
        "{what} of case {} to {} is in the outbox: message {}\nfollow it with: trm-admin message show {}\n",
        v.case, v.to, v.message, v.message
    )
}

/// `referral disclose`.
pub(crate) fn disclosed(v: &a::Disclosed) -> String {
    let mut out = format!(
        "{} more fields of case {} released to {}: message {}\n",
        v.released, v.case, v.to, v.message
    );
    if !v.still_withheld.is_empty() {
        out.push_str(&format!(
            "still withheld: {} (see trm-admin referral preview {} --to {})\n",
            v.still_withheld.join(", "),
            v.case,
            v.to
        ));
    }
    out
}

/// `directory edit`.
pub(crate) fn directory_edited(v: &a::DirectoryEdited) -> String {
    format!(
        "saved {} entries of this node's directory; not sent yet: send them with trm-admin directory publish\n",
        v.entries
    )
}

/// `directory publish`.
pub(crate) fn directory_published(v: &a::DirectoryPublished) -> String {
    if v.sent.is_empty() {
        return format!(
            "signed version {} of this node's directory; no partner to send it to yet\n",
            v.version
        );
    }
    let to: Vec<String> = v
        .sent
        .iter()
        .map(|s| format!("{} (message {})", s.to, s.message))
        .collect();
    format!(
        "signed version {} of this node's directory; in the outbox for {}\n",
        v.version,
        to.join(", ")
    )
}

/// `peer revoke`.
pub(crate) fn peer_revoked(v: &a::PeerRevoked) -> String {
    format!(
        "revoked {} at {}: its connections are closed and its messages refused\n",
        v.revoked, v.at
    )
}

/// `peer trust`.
pub(crate) fn peer_trusted(v: &a::PeerTrusted) -> String {
    format!(
        "trusted {} again (it was held: {})\n",
        v.trusted, v.was_held_for
    )
}

/// `officer revoke`.
pub(crate) fn officer_revoked(v: &a::OfficerRevoked) -> String {
    format!(
        "revoked {} ({} credential(s)) at {}: their sessions are closed\n",
        v.revoked, v.credentials, v.at
    )
}

/// `text`, or `none` in words when it is empty (never a blank where a value is expected).
fn or_none(text: &str, none: &str) -> String {
    if text.is_empty() {
        none.to_owned()
    } else {
        text.to_owned()
    }
}
/// `case access-log`.
pub(crate) fn access_log(v: &a::AccessLog) -> String {
    let rows: Vec<Vec<String>> = v
        .entries
        .iter()
        .map(|e| {
            vec![
                e.time.clone(),
                e.officer.clone(),
                e.role.clone(),
                e.call.clone(),
                e.target.clone(),
                e.result.clone(),
            ]
        })
        .collect();
    format!(
        "case {}: {} admin call(s) named it\n",
        v.case,
        v.entries.len()
    ) + &table(
        &["time", "officer", "role", "call", "target", "result"],
        &rows,
    )
}

/// The period of `stats`.
fn period(v: &a::Stats) -> String {
    let or = |d: &str, open: &str| {
        if d.is_empty() {
            open.to_string()
        } else {
            d.to_string()
        }
    };
    format!("{} to {}", or(&v.from, "the start"), or(&v.to, "today"))
}

/// `stats`: one table per category, then the medians.
pub(crate) fn stats(v: &a::Stats) -> String {
    let mut out = format!(
        "statistics from {} (counts from 1 to {} shown as <5, and one more where a hidden count could be found by subtraction)\n",
        period(v),
        v.threshold - 1
    );
    for t in &v.tables {
        let mut rows: Vec<Vec<String>> = t
            .rows
            .iter()
            .map(|r| vec![r.label.clone(), r.count.to_string()])
            .collect();
        rows.push(vec!["total".into(), t.total.to_string()]);
        let note = if t.multiple {
            " (a case may count in several rows)"
        } else {
            ""
        };
        out.push_str(&format!(
            "\n{} by {}{note}\n",
            t.unit,
            t.by.replace('_', " ")
        ));
        out.push_str(&table(&[&t.by, &t.unit], &rows));
    }
    out.push_str("\nmedian days to acceptance\n");
    let rows: Vec<Vec<String>> = v
        .median_days_to_acceptance
        .iter()
        .map(|(way, d)| vec![format!("referrals {way}"), d.clone()])
        .collect();
    out + &table(&["direction", "days"], &rows)
}

/// `stats --csv`: `table,label,count`, one line per cell (totals as label `total`), then
/// `median_days_to_acceptance,DIRECTION,DAYS`.
pub(crate) fn stats_csv(v: &a::Stats) -> String {
    let quote = |s: &str| {
        if s.contains([',', '"', '\n']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("table,label,count\n");
    for t in &v.tables {
        for r in &t.rows {
            out.push_str(&format!("{},{},{}\n", t.by, quote(&r.label), r.count));
        }
        out.push_str(&format!("{},total,{}\n", t.by, t.total));
    }
    for (way, d) in &v.median_days_to_acceptance {
        out.push_str(&format!("median_days_to_acceptance,{way},{d}\n"));
    }
    out
}
