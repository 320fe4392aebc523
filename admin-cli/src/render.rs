//! Human output: readable tables and summaries of the node's JSON documents.

use serde_json::Value;

/// Which document a command printed.
pub(crate) enum View {
    Status,
    Peer,
    Peers,
    Done,
    Officer,
    Officers,
    Created(String),
    Cases,
    Case,
    Template,
    Preview,
    Sent,
    Inbox,
    Message,
    Timeline,
    Directory,
    Json,
    Exported(String),
}

fn s(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

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

fn list<'a>(v: &'a Value, k: &str) -> &'a [Value] {
    v.get(k)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn peer_block(p: &Value) -> String {
    format!(
        "country:          {}\nname:             {}\naddresses:        {}\nsigning key:      {}\nTLS certificate:  {}\naccepts:          {}\nvalid until:      {}\n",
        s(p, "country"),
        s(p, "name"),
        list(p, "addresses").iter().map(|a| a.as_str().unwrap_or("")).collect::<Vec<_>>().join(", "),
        s(p, "signing_key"),
        s(p, "tls_certificate"),
        list(p, "acceptance").iter().map(|a| a.as_str().unwrap_or("")).collect::<Vec<_>>().join(", "),
        s(p, "valid_until"),
    )
}

/// Renders `v` for people.
pub(crate) fn render(view: &View, v: &Value) -> String {
    match view {
        View::Status => {
            let audit = v.get("audit").cloned().unwrap_or(Value::Null);
            let mut out = format!(
                "node {} ({})\npeer listener {}   admin listener {}\nsigning key     {}\nTLS certificate {}\nreceived {}   outbox {}   audit entries {}   last checkpoint {} at {}\nprocessing      {}\n",
                s(v, "country"), s(v, "name"), s(v, "peer_listen"), s(v, "admin_listen"),
                s(v, "signing_key"), s(v, "tls_certificate"),
                s(v, "received_total"), s(v, "outbox_total"), s(v, "audit_entries"),
                s(&audit, "checkpoint_size"), s(&audit, "checkpoint_time"), s(&audit, "processing"),
            );
            if let Some(r) = v.get("last_restore").filter(|r| !r.is_null()) {
                out.push_str(&format!(
                    "RESTORED from a backup taken at {}: anything recorded after that is not on this node\n\n",
                    s(r, "taken")
                ));
            }
            if !s(&audit, "write_failure").is_empty() {
                out.push_str(&format!("audit log failure: {}\n", s(&audit, "write_failure")));
            }
            for p in list(v, "peers") {
                let log = p.get("audit_log").cloned().unwrap_or(Value::Null);
                if log.get("held") == Some(&Value::Bool(true)) {
                    out.push_str(&format!(
                        "peer {} HELD since {}: {}\n  re-accept with: trm-admin peer trust {}\n",
                        s(p, "country"), s(&log, "held_since"), s(&log, "reason"), s(p, "country")
                    ));
                }
            }
            out.push('\n');
            let rows: Vec<Vec<String>> = list(v, "peers")
                .iter()
                .map(|p| {
                    vec![
                        s(p, "country"),
                        s(p, "state"),
                        s(p, "last_contact"),
                        s(p, "outbox"),
                        s(p, "oldest_pending"),
                        s(p, "last_error"),
                    ]
                })
                .collect();
            out.push_str(&table(
                &["peer", "state", "last contact", "outbox", "oldest pending", "last error"],
                &rows,
            ));
            let overdue = list(v, "overdue");
            if !overdue.is_empty() {
                out.push_str("\nOVERDUE referrals (no acceptance or decline by the response date):\n");
                let rows: Vec<Vec<String>> = overdue
                    .iter()
                    .map(|t| vec![s(t, "case_ref"), s(t, "peer"), s(t, "role"), s(t, "response_due")])
                    .collect();
                out.push_str(&table(&["case", "with", "role", "due"], &rows));
            }
            out
        }
        View::Peer => {
            let mut out = format!("pinned peer\n{}", peer_block(v));
            if let Some(w) = v.get("warning").and_then(Value::as_str) {
                out.push_str(&format!("warning:          {w}\n"));
            }
            out
        }
        View::Peers => {
            let rows: Vec<Vec<String>> = list(v, "peers")
                .iter()
                .map(|p| {
                    vec![
                        s(p, "country"),
                        s(p, "name"),
                        s(p, "signing_key").chars().take(19).collect(),
                        if p.get("revoked") == Some(&Value::Bool(true)) { "revoked".into() } else { "active".into() },
                    ]
                })
                .collect();
            table(&["country", "name", "signing key", "state"], &rows)
        }
        View::Done => match v.get("removed").and_then(Value::as_str) {
            Some(cc) => format!("removed peer {cc}\n"),
            None => format!("done: {v}\n"),
        },
        View::Exported(file) => format!(
            "wrote {file}: {} entries of a log of {}, {} checkpoints, {} peer cards\ncheck it offline with: trm-admin audit verify {file}\n",
            s(v, "entries"), s(v, "tree_size"), s(v, "checkpoints"), s(v, "peer_cards")
        ),
        View::Officer => format!(
            "registered {} (role {}, certificate {}) on node {}\nthe officer's credential names node {} and node certificate {}\n",
            s(v, "name"),
            s(v, "role"),
            s(v, "certificate"),
            s(v, "country"),
            s(v, "node"),
            s(v, "node_cert_sha256")
        ),
        View::Officers => {
            let rows: Vec<Vec<String>> = list(v, "officers")
                .iter()
                .map(|o| {
                    let state = match o.get("revoked").and_then(Value::as_str) {
                        Some(at) => format!("revoked {at}"),
                        None => "active".into(),
                    };
                    vec![s(o, "name"), s(o, "role"), s(o, "added"), s(o, "certificate").chars().take(19).collect(), state]
                })
                .collect();
            table(&["name", "role", "added", "certificate", "state"], &rows)
        }
        View::Created(_) => format!("recorded case {} ({} fields)\n", s(v, "id"), s(v, "fields")),
        View::Cases => {
            let rows: Vec<Vec<String>> = list(v, "cases")
                .iter()
                .map(|c| {
                    let refs: Vec<String> = list(c, "referrals")
                        .iter()
                        .map(|r| format!("{}:{}", s(r, "to"), s(r, "state")))
                        .collect();
                    vec![s(c, "id"), s(c, "created"), s(c, "created_by"), s(c, "fields"), refs.join(" ")]
                })
                .collect();
            table(&["case", "created", "by", "fields", "referrals"], &rows)
        }
        View::Case => format!(
            "case {} (recorded {} by {})\n{}\n",
            s(v, "id"),
            s(v, "created"),
            s(v, "created_by"),
            serde_json::to_string_pretty(v.get("case").unwrap_or(&Value::Null)).unwrap_or_default()
        ),
        View::Template => s(v, "template") + "\n",
        View::Preview => {
            let fields = list(v, "fields");
            let released = fields.iter().filter(|f| f.get("released") == Some(&Value::Bool(true))).count();
            let rows: Vec<Vec<String>> = fields
                .iter()
                .map(|f| {
                    let why: Vec<String> = list(f, "withheld_by").iter().map(|w| w.as_str().unwrap_or("").replace('_', " ")).collect();
                    vec![
                        s(f, "path"),
                        s(f, "category"),
                        if why.is_empty() { "released".into() } else { "withheld".into() },
                        why.join(", "),
                    ]
                })
                .collect();
            format!(
                "referral of case {} to {}: {} of {} fields released\n{}",
                s(v, "case"),
                s(v, "to"),
                released,
                fields.len(),
                table(&["field", "category", "decision", "withheld by"], &rows)
            )
        }
        View::Sent => format!(
            "referral {} of case {} to {} is in the outbox ({} fields released, {} withheld)\nfollow it with: trm-admin message show {}\n",
            s(v, "message"), s(v, "case"), s(v, "to"), s(v, "released"), s(v, "withheld"), s(v, "message")
        ),
        View::Inbox => {
            let rows: Vec<Vec<String>> = list(v, "messages")
                .iter()
                .map(|m| {
                    let cats: Vec<&str> = list(m, "categories").iter().filter_map(Value::as_str).collect();
                    vec![s(m, "id"), s(m, "from"), s(m, "kind"), s(m, "case_ref"), s(m, "received"), cats.join(",")]
                })
                .collect();
            table(&["message", "from", "kind", "case", "received", "categories"], &rows)
        }
        View::Timeline => {
            let mut out = format!("case {}\n", s(v, "case"));
            for t in list(v, "threads") {
                out.push_str(&format!(
                    "  with {} ({}): {}{}  phase: {}  due: {}\n",
                    s(t, "peer"),
                    s(t, "role"),
                    s(t, "state"),
                    if t.get("overdue") == Some(&Value::Bool(true)) { " OVERDUE" } else { "" },
                    s(t, "phase"),
                    s(t, "response_due"),
                ));
            }
            let rows: Vec<Vec<String>> = list(v, "messages")
                .iter()
                .map(|m| {
                    let ver = m.get("verification").cloned().unwrap_or(Value::Null);
                    let del = m.get("delivery").cloned().unwrap_or(Value::Null);
                    vec![
                        s(m, "created"),
                        if s(m, "direction") == "sent" { format!("→ {}", s(m, "peer")) } else { format!("← {}", s(m, "peer")) },
                        s(m, "kind"),
                        s(m, "summary"),
                        s(&ver, "signature"),
                        s(&del, "state"),
                    ]
                })
                .collect();
            out.push_str(&table(&["time", "way", "kind", "summary", "signature", "delivery"], &rows));
            out
        }
        View::Directory => {
            let rows: Vec<Vec<String>> = list(v, "entries")
                .iter()
                .map(|e| {
                    let ch: Vec<&str> = list(e, "channels").iter().filter_map(Value::as_str).collect();
                    vec![
                        s(e, "country"),
                        s(e, "role"),
                        format!("{} {}", s(e, "institution"), s(e, "unit")).trim().to_string(),
                        ch.join(" "),
                        s(e, "hours"),
                        s(e, "last_confirmed"),
                        if e.get("stale") == Some(&Value::Bool(true)) { "STALE".into() } else { String::new() },
                    ]
                })
                .collect();
            table(&["country", "role", "institution", "channels", "hours", "confirmed", ""], &rows)
        }
        View::Json => {
            let mut out = String::new();
            if let Some(m) = v.as_object() {
                for (k, x) in m {
                    let shown = match x {
                        Value::String(t) => t.clone(),
                        other => other.to_string(),
                    };
                    out.push_str(&format!("{k}: {shown}\n"));
                }
            }
            out
        }
        View::Message => {
            let ver = v.get("verification").cloned().unwrap_or(Value::Null);
            let del = v.get("delivery").cloned().unwrap_or(Value::Null);
            let mut out = format!(
                "message {}\n  {} {} {} -> {}   case {}   created {}\n  signature:    {}\n  disclosures:  {}\n  envelope hash {}\n  delivery:     {}",
                s(v, "id"), s(v, "direction"), s(v, "kind"), s(v, "sender"), s(v, "recipient"),
                s(v, "case_ref"), s(v, "created"), s(&ver, "signature"), s(&ver, "disclosures"),
                s(&ver, "envelope_hash"), s(&del, "state"),
            );
            if let Some(a) = del.get("answer").filter(|a| !a.is_null()) {
                out.push_str(&format!(" ({} {}, signature {})", s(a, "kind"), s(a, "reason"), s(a, "signature")));
            }
            out.push('\n');
            for e in list(v, "extensions") {
                let declared = if e.get("known_here") == Some(&Value::Bool(false)) {
                    ", declared by the sender"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  extension {} (category {}{declared}): {}\n",
                    s(e, "path"),
                    s(e, "category"),
                    s(e, "help")
                ));
            }
            out.push_str("  fields:\n");
            out.push_str(&serde_json::to_string_pretty(v.get("fields").unwrap_or(&Value::Null)).unwrap_or_default());
            out.push('\n');
            out
        }
    }
}

/// The result of `audit verify`, for people or as JSON.
pub(crate) fn audit_summary(sum: &trm_proto::audit::Summary, json: bool) -> String {
    use trm_proto::date::format_ms;
    let messages: Vec<Value> = sum
        .messages
        .iter()
        .map(|((peer, dir, kind), n)| {
            serde_json::json!({ "peer": peer, "direction": dir, "kind": kind, "count": n })
        })
        .collect();
    if json {
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
        return serde_json::to_string_pretty(&v).unwrap_or_default() + "\n";
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
