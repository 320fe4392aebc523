//! `trm-admin --json` stays byte-compatible: every command of docs/CLI.md that prints a
//! document is run against two real nodes, its output normalised (ids, digests,
//! fingerprints, times, ports, paths and counts that depend on timing) and compared with a
//! golden file under `tests/golden/json/`.
//!
//! The goldens were recorded on the code before the admin answers became types; to record
//! them again (only for an intended change of a document), run this test with
//! `TRM_GOLDEN_RECORD=1` and review the diff.

use std::path::{Path, PathBuf};
use std::time::Duration;

use trm_node::identity::OPERATOR_CRED;
use trm_proto::admin as api;
use trm_proto::admin::admin_request::Call;
use trm_tests::pins::{trm_admin, Ran};
use trm_tests::{pin_all, wait_until, TestNode};

/// Keys whose scalar values depend on timing (retries, background checkpoints, receipts).
const VOLATILE: &[&str] = &[
    "attempts",
    "last_contact",
    "last_contact_ms",
    "failing_since",
    "last_error",
    "audit_entries",
    "checkpoint_size",
    "checkpoint_time",
    "tree_size",
    "checkpoints",
    "signatures",
    "first_index",
    "last_index",
    "peer_log_inconsistent",
    "content_bytes",
    "file",
    "records",
    "seen_checkpoint_time",
    "seen_tree_size",
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("golden/json")
}

/// The pieces of one run that must not reach a golden file.
struct Scrub {
    /// (literal, replacement), applied first.
    literals: Vec<(String, String)>,
    /// Today's date (YYYY-MM-DD), replaced after whole times are.
    today: String,
}

impl Scrub {
    fn apply(&self, text: &str) -> String {
        let mut t = text.to_string();
        for (from, to) in &self.literals {
            t = t.replace(from.as_str(), to);
        }
        let lines: Vec<String> = t.lines().map(volatile_line).collect();
        let mut out = tokens(&lines.join("\n")).replace(&self.today, "<today>");
        if text.ends_with('\n') {
            out.push('\n');
        }
        out
    }
}

/// `"key": scalar` with a volatile key (or one ending in `_ms`): the value becomes `<v>`.
fn volatile_line(line: &str) -> String {
    let trimmed = line.trim_start();
    let Some(rest) = trimmed.strip_prefix('"') else {
        return line.to_string();
    };
    let Some((key, value)) = rest.split_once("\": ") else {
        return line.to_string();
    };
    let scalar = !value.starts_with('[') && !value.starts_with('{');
    if scalar && (VOLATILE.contains(&key) || key.ends_with("_ms")) {
        let indent = &line[..line.len() - trimmed.len()];
        let comma = if value.ends_with(',') { "," } else { "" };
        return format!("{indent}\"{key}\": \"<v>\"{comma}");
    }
    line.to_string()
}

fn is_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}

/// Length of a `YYYY-MM-DDTHH:MM:SS(.fff)Z` time at the start of `s`, if any.
fn time_len(s: &[u8]) -> Option<usize> {
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if s.len() < shape.len() + 1 {
        return None;
    }
    for (i, want) in shape.iter().enumerate() {
        let ok = match want {
            b'd' => s[i].is_ascii_digit(),
            other => s[i] == *other,
        };
        if !ok {
            return None;
        }
    }
    let mut n = shape.len();
    if s[n] == b'.' {
        n += 1;
        while n < s.len() && s[n].is_ascii_digit() {
            n += 1;
        }
    }
    (s.get(n) == Some(&b'Z')).then_some(n + 1)
}

/// Length of a fingerprint (hex groups joined by colons, four groups or more) at `s`.
fn fingerprint_len(s: &[u8]) -> Option<usize> {
    let (mut n, mut groups) = (0, 0);
    loop {
        let start = n;
        while n < s.len() && is_hex(s[n]) {
            n += 1;
        }
        if n - start < 2 {
            n = start.saturating_sub(1);
            break;
        }
        groups += 1;
        if s.get(n) == Some(&b':') {
            n += 1;
        } else {
            break;
        }
    }
    (groups >= 4).then_some(n)
}

/// Replaces times, loopback ports, fingerprints and long hex runs.
fn tokens(text: &str) -> String {
    let s = text.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let boundary = i == 0 || !s[i - 1].is_ascii_alphanumeric();
        if boundary {
            if let Some(n) = time_len(&s[i..]) {
                out.extend_from_slice(b"<time>");
                i += n;
                continue;
            }
            if s[i..].starts_with(b"127.0.0.1:") {
                let mut n = 10;
                while i + n < s.len() && s[i + n].is_ascii_digit() {
                    n += 1;
                }
                out.extend_from_slice(b"127.0.0.1:<port>");
                i += n;
                continue;
            }
            if let Some(n) = fingerprint_len(&s[i..]) {
                out.extend_from_slice(b"<fp>");
                i += n;
                continue;
            }
            let mut n = 0;
            while i + n < s.len() && is_hex(s[i + n]) {
                n += 1;
            }
            let end = s.get(i + n).is_none_or(|c| !c.is_ascii_alphanumeric());
            if n >= 16 && end {
                out.extend_from_slice(b"<hex>");
                i += n;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 in, UTF-8 out")
}

/// Runs the commands and checks (or records) their goldens.
struct Session {
    scrub: Scrub,
    record: bool,
    step: usize,
    failures: Vec<String>,
}

impl Session {
    /// `trm-admin --cred CRED --json ARGS`, which must succeed; its output is checked against
    /// the golden named `name`. Returns the raw stdout.
    async fn json(&mut self, name: &str, cred: &Path, args: &[&str]) -> String {
        let mut all: Vec<String> =
            vec!["--cred".into(), cred.display().to_string(), "--json".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        let ran: Ran = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = all.iter().map(String::as_str).collect();
            trm_admin(&refs)
        })
        .await
        .expect("trm-admin thread");
        assert_eq!(
            ran.code,
            Some(0),
            "trm-admin {args:?} failed: {}",
            ran.stderr
        );
        let shown = format!("$ trm-admin --json {}\n{}", args.join(" "), ran.stdout);
        self.check(name, &shown);
        ran.stdout
    }

    /// As [`Session::json`] for a listing whose order depends on random keys: the list under
    /// `key` is sorted by its items' `name` before the check (the CLI prints
    /// `to_string_pretty` of the document, so re-printing it changes nothing else).
    async fn json_by_name(&mut self, name: &str, cred: &Path, args: &[&str], key: &str) {
        let step = self.step;
        let record = std::mem::replace(&mut self.record, true);
        let golden = std::mem::take(&mut self.failures);
        let out = self.json("unsorted", cred, args).await;
        // The unsorted run only recorded a scratch file; drop it and check the sorted one.
        let scratch = golden_dir().join(format!("{:02}-unsorted.txt", self.step));
        let _ = std::fs::remove_file(scratch);
        (self.step, self.record, self.failures) = (step, record, golden);
        let mut v: serde_json::Value = serde_json::from_str(&out).expect("JSON document");
        if let Some(list) = v[key].as_array_mut() {
            list.sort_by_key(|o| o["name"].as_str().unwrap_or_default().to_string());
        }
        let pretty = serde_json::to_string_pretty(&v).expect("JSON");
        let shown = format!("$ trm-admin --json {}\n{pretty}\n", args.join(" "));
        self.check(name, &shown);
    }

    fn check(&mut self, name: &str, text: &str) {
        self.step += 1;
        let file = golden_dir().join(format!("{:02}-{name}.txt", self.step));
        let got = self.scrub.apply(text);
        if self.record {
            std::fs::create_dir_all(golden_dir()).expect("golden folder");
            std::fs::write(&file, &got).expect("write golden");
            return;
        }
        let want = std::fs::read_to_string(&file).unwrap_or_default();
        if want != got {
            let first = want
                .lines()
                .zip(got.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(want.lines().count().min(got.lines().count()));
            self.failures.push(format!(
                "{}: differs at line {}:\n  golden: {:?}\n  now:    {:?}",
                file.display(),
                first + 1,
                want.lines().nth(first).unwrap_or("<end>"),
                got.lines().nth(first).unwrap_or("<end>"),
            ));
        }
    }
}

fn json_field(stdout: &str, key: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(stdout).expect("JSON document");
    v[key].as_str().unwrap_or_default().to_string()
}

/// Waits until neither node has anything left in its outbox.
async fn settle(nodes: &[&TestNode]) {
    let empty = || {
        nodes.iter().all(|n| {
            n.ctx()
                .store
                .outbox_depths()
                .map(|d| d.values().all(|x| x.0 == 0))
                .unwrap_or(false)
        })
    };
    assert!(wait_until(20, empty).await, "outboxes drained");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_json_document_is_unchanged() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    // Italy's law (here) lets it send every category to Albania, with approval and consent.
    it.configure(|c| {
        c.outgoing.insert("AL".into(), trm_tests::all_categories());
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let root = tmp.path();
    let today = trm_proto::date::format_ms(trm_node::base::time::now_ms())[..10].to_string();
    let mut s = Session {
        scrub: Scrub {
            literals: vec![(root.display().to_string(), "<tmp>".into())],
            today,
        },
        record: std::env::var_os("TRM_GOLDEN_RECORD").is_some(),
        step: 0,
        failures: Vec::new(),
    };
    let it_op = it.dir.join(OPERATOR_CRED);
    let al_op = al.dir.join(OPERATOR_CRED);
    let cred = |name: &str| root.join(format!("{name}.cred"));
    let (olivia, sam, ada, otto) = (cred("olivia"), cred("sam"), cred("ada"), cred("otto"));

    // Officers, peers and the node.
    for (name, role, file, op) in [
        ("Olivia Example", "officer", &olivia, &it_op),
        ("Sam Example", "supervisor", &sam, &it_op),
        ("Ada Example", "auditor", &ada, &it_op),
        ("Otto Example", "officer", &otto, &al_op),
    ] {
        let out = file.display().to_string();
        let args = ["officer", "add", name, "--role", role, "--out", &out];
        s.json("officer-add", op, &args).await;
    }
    s.json_by_name("officer-list", &it_op, &["officer", "list"], "officers")
        .await;
    s.json("status", &it_op, &["status"]).await;
    s.json("peer-list", &it_op, &["peer", "list"]).await;
    let al_card = al.dir.join("card.trm").display().to_string();
    s.json("peer-add-same", &it_op, &["peer", "add", &al_card])
        .await;

    // A case and its referral.
    let case_file = root.join("case.json");
    std::fs::write(&case_file, trm_tests::adult_case("IT-GOLD-1", None)).unwrap();
    let case_path = case_file.display().to_string();
    s.json("case-template", &olivia, &["case", "template"])
        .await;
    s.json(
        "case-create",
        &olivia,
        &["case", "create", "--file", &case_path],
    )
    .await;
    s.json("case-list", &olivia, &["case", "list"]).await;
    s.json("case-show", &olivia, &["case", "show", "IT-GOLD-1"])
        .await;
    let to_al = ["--to", "AL"];
    let preview = [&["referral", "preview", "IT-GOLD-1"][..], &to_al].concat();
    s.json("referral-preview", &olivia, &preview).await;
    let send = [&["referral", "send", "IT-GOLD-1"][..], &to_al].concat();
    let sent = s.json("referral-send", &olivia, &send).await;
    let referral = json_field(&sent, "message");
    assert!(
        wait_until(20, || it.delivered(&referral)).await,
        "delivered"
    );
    settle(&[&it, &al]).await;

    // The receiving side.
    s.json("inbox", &otto, &["inbox"]).await;
    s.json(
        "message-show-received",
        &otto,
        &["message", "show", &referral],
    )
    .await;
    s.json("case-show-received", &otto, &["case", "show", "IT-GOLD-1"])
        .await;
    let accept = [
        "referral",
        "accept",
        &referral,
        "--institution",
        "Synthetic Shelter",
        "--focal-point",
        "duty desk",
    ];
    s.json("referral-accept", &otto, &accept).await;
    settle(&[&it, &al]).await;
    let accepted = || trm_tests::recv::state(&it, "AL", "IT-GOLD-1") == "accepted";
    assert!(wait_until(20, accepted).await, "acceptance arrived");

    // Four eyes, more fields, follow-ups.
    let approve = [
        &[
            "referral",
            "approve",
            "IT-GOLD-1",
            "--categories",
            "identity",
        ][..],
        &to_al,
    ]
    .concat();
    s.json("referral-approve", &sam, &approve).await;
    let disclose = [
        &[
            "referral",
            "disclose",
            "IT-GOLD-1",
            "--categories",
            "identity",
        ][..],
        &to_al,
    ]
    .concat();
    s.json("referral-disclose", &olivia, &disclose).await;
    settle(&[&it, &al]).await;
    s.json(
        "message-show-sent",
        &olivia,
        &["message", "show", &referral],
    )
    .await;
    let follow = [
        &[
            "followup",
            "send",
            "IT-GOLD-1",
            "--phase",
            "first_assistance",
        ][..],
        &["--status", "shelter place found", "--date", "2026-03-20"],
        &to_al,
    ]
    .concat();
    s.json("followup-send", &olivia, &follow).await;
    let info = [
        &["info", "request", "IT-GOLD-1", "--fields", "identity.sex"][..],
        &["--purpose", "synthetic purpose"],
        &to_al,
    ]
    .concat();
    s.json("info-request", &olivia, &info).await;
    settle(&[&it, &al]).await;
    s.json("case-timeline", &olivia, &["case", "timeline", "IT-GOLD-1"])
        .await;
    s.json("inbox-later", &otto, &["inbox"]).await;
    let give = ["case", "consent", "IT-GOLD-1", "--give", "health"];
    s.json("consent-give", &olivia, &give).await;
    let withdraw = [
        "case",
        "consent",
        "IT-GOLD-1",
        "--withdraw",
        "health",
        "--yes",
    ];
    s.json("consent-withdraw", &olivia, &withdraw).await;
    let close = [
        &["case", "close", "IT-GOLD-1", "--outcome", "other"][..],
        &["--date", "2026-04-01"],
        &to_al,
    ]
    .concat();
    s.json("case-close", &olivia, &close).await;
    settle(&[&it, &al]).await;
    s.json("case-list-closed", &olivia, &["case", "list"]).await;

    // The directory.
    let dir_file = root.join("directory.json");
    let contacts = serde_json::json!({ "contacts": [{
        "institution": "Synthetic Referral Unit", "unit": "Desk A", "role": "national_referral_unit",
        "channels": ["email: desk@example.invalid"], "languages": ["en", "it"],
        "hours": "Mon-Fri 09-17", "last_confirmed": "2026-01-15" }] });
    std::fs::write(&dir_file, contacts.to_string()).unwrap();
    let dir_path = dir_file.display().to_string();
    s.json(
        "directory-edit",
        &it_op,
        &["directory", "edit", "--file", &dir_path],
    )
    .await;
    s.json("directory-publish", &it_op, &["directory", "publish"])
        .await;
    settle(&[&it, &al]).await;
    s.json("directory-list", &al_op, &["directory", "list"])
        .await;
    s.json(
        "directory-list-own",
        &it_op,
        &["directory", "list", "--country", "IT"],
    )
    .await;

    // The audit log and a backup.
    let bundle = root.join("it.bundle").display().to_string();
    s.json("audit-export", &ada, &["audit", "export", "--out", &bundle])
        .await;
    s.json("audit-verify", &ada, &["audit", "verify", &bundle])
        .await;
    let backup = it
        .op(Call::Backup(api::Backup {
            include_keys: false,
        }))
        .await;
    let shown = serde_json::to_string_pretty(&backup).unwrap();
    s.check("backup", &format!("backup (admin call)\n{shown}\n"));

    // Endings: revocations and removals.
    s.json(
        "officer-revoke",
        &it_op,
        &["officer", "revoke", "Sam Example"],
    )
    .await;
    s.json("status-late", &it_op, &["status"]).await;
    s.json("peer-revoke", &it_op, &["peer", "revoke", "AL"])
        .await;
    s.json("peer-list-revoked", &it_op, &["peer", "list"]).await;
    s.json("peer-remove", &it_op, &["peer", "remove", "AL"])
        .await;

    assert!(
        s.failures.is_empty(),
        "{} documents changed:\n{}",
        s.failures.len(),
        s.failures.join("\n")
    );
    it.finish().await;
    al.finish().await;
}
