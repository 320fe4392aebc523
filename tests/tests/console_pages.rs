//! The console's statistics, directory and audit pages (issue 13), over plain HTTP with real
//! nodes (IT and AL), each compared with what `trm-admin` prints for the same credential:
//!
//! - `/stats` draws every figure of `stats --json` in an SVG chart and a table; a suppressed
//!   cell stays as the node reports it (`<5`, no bar); an officer gets the node's refusal; a
//!   bad period date is refused before anything is asked;
//! - `/directory` lists a partner's focal points with its published version, flagged STALE or
//!   UNCONFIRMED as `directory list` flags them;
//! - `/audit`: an auditor's home; the export is a download whose bytes `trm-admin audit
//!   verify` accepts; uploading it shows the checks and the key fingerprints of `audit verify
//!   --json`; a tampered bundle fails naming the entry the command line names; both POSTs are
//!   refused without the CSRF token (urlencoded and multipart); an officer's export gets the
//!   node's refusal line.

use std::path::{Path, PathBuf};

use prost::Message;
use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::bins::{admin_ok as admin, run};
use trm_tests::console::{
    csrf_of, get, post, post_download, post_multipart, sign_in, Console, Field, Reply,
};
use trm_tests::{wait_until, TestNode};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Text as maud writes it into a page.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A synthetic case with the given forms of exploitation.
fn forms_case(dir: &Path, case_ref: &str, forms: &[&str]) -> String {
    let v = serde_json::json!({
        "reference": {
            "case_ref": case_ref,
            "sending_institution": "Synthetic Test Unit",
            "receiving_country": "AL",
            "date": "2026-11-01",
            "reason": "Synthetic reason.",
        },
        "exploitation": { "forms": forms, "victim_status": "presumed" },
    });
    let file = dir.join(format!("{case_ref}.json"));
    std::fs::write(&file, v.to_string()).expect("case file");
    file.display().to_string()
}

/// Registers officers on `node` (name, role, credential file name); their credential files.
async fn enrol(root: &Path, node: &TestNode, who: &[(&str, &str, &str)]) -> Vec<PathBuf> {
    let op = node.dir.join(OPERATOR_CRED);
    let mut out = Vec::new();
    for (name, role, file) in who {
        let path = root.join(file);
        trm_tests::bins::enrol(&op, name, role, &path).await;
        out.push(path);
    }
    out
}

/// A console for `cred`, signed in: the console and its session cookie.
async fn console(cred: &Path) -> (Console, String) {
    let c = Console::start(cred, &[]).await;
    let cookie = sign_in(&c).await;
    (c, cookie)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_directory_pages_show_what_the_cli_prints() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let people = [
        ("Olivia Example", "officer", "olivia.cred"),
        ("Sam Example", "supervisor", "sam.cred"),
    ];
    let creds = enrol(root, &it, &people).await;
    let (olivia, sam) = (&creds[0], &creds[1]);
    // Six labour cases, two of them also sexual exploitation: labour 6 is shown, sexual 2 is
    // suppressed.
    for i in 1..=6 {
        let forms: &[&str] = if i <= 2 {
            &["labour", "sexual"]
        } else {
            &["labour"]
        };
        let file = forms_case(root, &format!("IT-PG-{i}"), forms);
        admin(olivia, &["case", "create", "--file", &file]).await;
    }
    stats_page(olivia, sam).await;
    directory_page(root, &it, &al).await;
    it.finish().await;
    al.finish().await;
}

/// The supervisor's `/stats` against `stats --json`; the officer refused; a bad date.
async fn stats_page(olivia: &Path, sam: &Path) {
    let doc = json(&admin(sam, &["--json", "stats"]).await);
    let (c, cookie) = console(sam).await;
    let page = get(&c.addr, "/stats", Some(&cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<svg"), "an SVG chart: {}", page.body);
    assert!(!page.body.contains("<script"), "no script");
    let tables = doc["tables"].as_array().expect("tables");
    assert!(tables.len() >= 5, "{doc}");
    for table in tables {
        for row in table["rows"].as_array().expect("rows") {
            let label = row["label"].as_str().expect("label");
            let count = match &row["count"] {
                Value::String(s) => s.clone(),
                n => n.to_string(),
            };
            let bar = format!("<title>{}: {}</title>", esc(label), esc(&count));
            assert!(page.body.contains(&bar), "{bar} in the chart");
            let cell = format!("<td>{}</td>", esc(label));
            assert!(page.body.contains(&cell), "{cell} in the table");
        }
    }
    // The suppressed cell: as the node reports it, no bar, never the real count.
    let forms = &tables[0];
    assert_eq!(forms["by"], "exploitation_form");
    let sexual = forms["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["label"] == "sexual")
        .expect("sexual row");
    assert_eq!(sexual["count"], "<5", "{forms}");
    let at = page.body.find("<title>sexual: &lt;5</title>").unwrap();
    let bar = &page.body[at..at + page.body[at..].find("</g>").unwrap()];
    assert!(
        bar.contains("width=\"0\""),
        "no bar for a suppressed cell: {bar}"
    );
    assert!(page.body.contains("&lt;5 (suppressed)"), "table cell");
    assert!(!page.body.contains("sexual: 2"), "never computed back");
    assert!(page.body.contains("<title>labour: 6</title>"));

    let later = get(&c.addr, "/stats?from=2999-01-01", Some(&cookie)).await;
    assert_eq!(later.status, 200);
    assert!(later.body.contains("<title>labour: 0</title>"), "a period");
    let bad = get(&c.addr, "/stats?from=yesterday", Some(&cookie)).await;
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert!(bad.body.contains("YYYY-MM-DD"), "{}", bad.body);

    let (c, cookie) = console(olivia).await;
    let refused = get(&c.addr, "/stats", Some(&cookie)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused.body.contains("needs role supervisor or auditor"),
        "the node's refusal: {}",
        refused.body
    );
}

/// Italy publishes three focal points (one recent, one confirmed long ago, one never); an
/// Albanian officer's `/directory` lists them as `directory list --json` does, flagged.
async fn directory_page(root: &Path, it: &TestNode, al: &TestNode) {
    let otto = enrol(root, al, &[("Otto Example", "officer", "otto.cred")]).await;
    let it_op = it.dir.join(OPERATOR_CRED);
    let file = root.join("directory.json");
    let contacts = serde_json::json!({"contacts": [
        {"institution": "Synthetic NRU", "role": "national_referral_unit",
         "channels": ["mailto:nru@example.org"], "languages": ["it", "en"],
         "last_confirmed": trm_tests::date_in_days(-3)},
        {"institution": "Synthetic Labour Inspectorate", "role": "labour_inspectorate",
         "channels": ["mailto:desk@example.org"], "languages": ["it"],
         "last_confirmed": trm_tests::date_in_days(-3000)},
        {"institution": "Synthetic Police Desk", "role": "police",
         "channels": ["tel:+00 0000"], "languages": ["sq"]},
    ]});
    std::fs::write(&file, contacts.to_string()).unwrap();
    let path = file.display().to_string();
    admin(&it_op, &["directory", "edit", "--file", &path]).await;
    admin(&it_op, &["directory", "publish"]).await;
    let arrived = || {
        al.ctx()
            .store
            .inbox()
            .map(|r| r.iter().any(|m| m.kind == "directory_update"))
            .unwrap_or(false)
    };
    assert!(wait_until(60, arrived).await, "the directory arrived");

    let doc = json(&admin(&otto[0], &["--json", "directory", "list"]).await);
    let (c, cookie) = console(&otto[0]).await;
    let page = get(&c.addr, "/directory", Some(&cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let entries = doc["entries"].as_array().expect("entries");
    assert!(entries.len() >= 3, "{doc}");
    for e in entries.iter().filter(|e| e["country"] == "IT") {
        let role = e["role"].as_str().unwrap();
        let row_at = page
            .body
            .find(&format!("<td>IT</td><td>{}</td>", esc(role)))
            .unwrap_or_else(|| panic!("{role} listed: {}", page.body));
        let row = &page.body[row_at..row_at + page.body[row_at..].find("</tr>").unwrap()];
        assert!(
            row.contains(&esc(e["institution"].as_str().unwrap())),
            "{row}"
        );
        let want = match (e["last_confirmed"].as_str().unwrap(), e["stale"].as_bool()) {
            ("", _) => Some("UNCONFIRMED"),
            (_, Some(true)) => Some("STALE"),
            _ => None,
        };
        match want {
            Some(flag) => assert!(row.contains(&format!(">{flag}</span>")), "{row}"),
            None => assert!(!row.contains("class=\"flag"), "{row}"),
        }
    }
    let it_version = doc["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["country"] == "IT")
        .expect("IT's version");
    let published = it_version["published"].as_str().unwrap();
    assert!(!published.is_empty(), "{it_version}");
    assert!(page.body.contains(published), "published {published}");
    let only_al = get(&c.addr, "/directory?country=AL", Some(&cookie)).await;
    assert!(!only_al.body.contains("Synthetic NRU"), "filtered");
    let bad = get(&c.addr, "/directory?country=ITALY", Some(&cookie)).await;
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_exports_and_verifies_a_bundle_through_the_console() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = tmp.path();
    let (it, al) = trm_tests::open_pair(root).await;
    let people = [
        ("Olivia Example", "officer", "olivia.cred"),
        ("Dora Example", "auditor", "dora.cred"),
    ];
    let creds = enrol(root, &it, &people).await;
    let (olivia, dora) = (&creds[0], &creds[1]);
    let file = forms_case(root, "IT-AU-1", &["labour"]);
    admin(olivia, &["case", "create", "--file", &file]).await;

    let (c, cookie) = console(dora).await;
    let home = get(&c.addr, "/", Some(&cookie)).await;
    assert_eq!(home.status, 200, "{}", home.body);
    assert!(
        home.body.contains("action=\"/audit/export\""),
        "{}",
        home.body
    );
    assert!(home.body.contains("enctype=\"multipart/form-data\""));
    let csrf = csrf_of(&home);
    csrf_is_checked(&c, &cookie).await;

    let form = format!("csrf={csrf}&from=&to=");
    let (reply, bundle) = post_download(&c, &cookie, "/audit/export", &form).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/octet-stream")
    );
    let disposition = reply.header("content-disposition").unwrap_or_default();
    assert!(disposition.starts_with("attachment;"), "{disposition}");
    assert!(disposition.contains("trm-audit-IT.bundle"), "{disposition}");
    let saved = root.join("console.bundle");
    std::fs::write(&saved, &bundle).unwrap();
    let path = saved.display().to_string();
    let cli = run("trm-admin", &["--json", "audit", "verify", &path]);
    assert_eq!(cli.code, Some(0), "the download verifies: {}", cli.stderr);
    let facts = json(&cli.stdout);

    let upload = [
        Field {
            name: "csrf",
            filename: None,
            data: csrf.as_bytes(),
        },
        Field {
            name: "bundle",
            filename: Some("console.bundle"),
            data: &bundle,
        },
    ];
    let page = post_multipart(&c, &cookie, "/audit/verify", &upload).await;
    assert_eq!(page.status, 200, "{}", page.body);
    shows_the_facts(&page, &facts);

    tampered_fails_naming_the_entry(root, &c, &cookie, &csrf, &bundle).await;
    bad_witness_is_named(root, &c, &cookie, &csrf, &bundle).await;
    let bad = format!("csrf={csrf}&from=yesterday");
    let (r, _) = post_download(&c, &cookie, "/audit/export", &bad).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("is not a time"), "{}", r.body);

    let (c, cookie) = console(olivia).await;
    let page = get(&c.addr, "/audit", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    let refused = post(&c, &cookie, "/audit/export", &format!("csrf={csrf}")).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(
        refused
            .body
            .contains("needs role auditor (you are officer)"),
        "the node's refusal: {}",
        refused.body
    );
    it.finish().await;
    al.finish().await;
}

/// Without the session's CSRF token (missing or another), both audit POSTs are refused
/// before the page: urlencoded and multipart.
async fn csrf_is_checked(c: &Console, cookie: &str) {
    let other = "0".repeat(64);
    for form in [String::new(), "from=".to_string(), format!("csrf={other}")] {
        let r = post(c, cookie, "/audit/export", &form).await;
        assert_eq!(r.status, 403, "{form}: {}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
    let bundle = Field {
        name: "bundle",
        filename: Some("b.bundle"),
        data: b"x",
    };
    let wrong = Field {
        name: "csrf",
        filename: None,
        data: other.as_bytes(),
    };
    for fields in [
        vec![bundle],
        vec![
            wrong,
            Field {
                name: "bundle",
                filename: Some("b"),
                data: b"x",
            },
        ],
    ] {
        let r = post_multipart(c, cookie, "/audit/verify", &fields).await;
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("CSRF"), "{}", r.body);
    }
}

/// The verified page shows what `audit verify --json` states: entries, checkpoints,
/// signatures, coverage, and every key fingerprint.
fn shows_the_facts(page: &Reply, facts: &Value) {
    let body = &page.body;
    assert!(body.contains("VERIFIED"), "{body}");
    assert!(!body.contains("NOT VERIFIED"), "{body}");
    for (what, key) in [("entries", "entries"), ("signatures", "signatures")] {
        let n = &facts[key];
        assert!(body.contains(&format!("<td>{n} (")), "{what} {n}: {body}");
    }
    let checkpoints = format!("<td>{}, chained", facts["checkpoints"]);
    assert!(body.contains(&checkpoints), "{checkpoints}");
    assert!(
        body.contains(facts["coverage"].as_str().unwrap()),
        "coverage"
    );
    let mut fps: Vec<&str> = facts["key_fingerprints"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for peer in facts["peer_keys"].as_object().unwrap().values() {
        fps.extend(peer.as_array().unwrap().iter().filter_map(Value::as_str));
    }
    assert!(!fps.is_empty());
    for fp in fps {
        assert!(body.contains(&format!("<code>{fp}</code>")), "{fp}: {body}");
    }
}

/// One entry changed: the command line and the page both fail at that entry.
async fn tampered_fails_naming_the_entry(
    root: &Path,
    c: &Console,
    cookie: &str,
    csrf: &str,
    bundle: &[u8],
) {
    let mut b = trm_proto::auditpb::AuditBundle::decode(bundle).expect("bundle");
    let at = b.entries.len() / 2;
    let mut entry = trm_proto::auditpb::AuditEntry::decode(b.entries[at].entry.as_slice()).unwrap();
    entry.result = format!("{} (altered)", entry.result);
    b.entries[at].entry = entry.encode_to_vec();
    let tampered = b.encode_to_vec();
    let file = root.join("tampered.bundle");
    std::fs::write(&file, &tampered).unwrap();
    let cli = run(
        "trm-admin",
        &["audit", "verify", &file.display().to_string()],
    );
    assert_ne!(cli.code, Some(0), "{}", cli.stdout);
    let failure = cli
        .stderr
        .split("verification FAILED at ")
        .nth(1)
        .unwrap_or_else(|| panic!("{}", cli.stderr))
        .trim()
        .to_string();
    assert!(
        failure.starts_with(&format!("entry {}:", entry.index)),
        "{failure}"
    );
    let upload = [
        Field {
            name: "csrf",
            filename: None,
            data: csrf.as_bytes(),
        },
        Field {
            name: "bundle",
            filename: Some("tampered.bundle"),
            data: &tampered,
        },
    ];
    let page = post_multipart(c, cookie, "/audit/verify", &upload).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("NOT VERIFIED"), "{}", page.body);
    assert!(
        page.body.contains(&esc(&failure)),
        "{failure}: {}",
        page.body
    );
}

/// A witness bundle that is not one: the command line (`--witness`) and the page both fail
/// at that witness, naming its file.
async fn bad_witness_is_named(root: &Path, c: &Console, cookie: &str, csrf: &str, bundle: &[u8]) {
    let junk = root.join("junk.bundle");
    std::fs::write(&junk, b"not a bundle").unwrap();
    let (it_file, junk_file) = (root.join("console.bundle"), junk.display().to_string());
    let args = [
        "audit",
        "verify",
        &it_file.display().to_string(),
        "--witness",
        &junk_file,
    ];
    let cli = run("trm-admin", &args);
    assert_ne!(cli.code, Some(0), "{}", cli.stdout);
    let failure = cli
        .stderr
        .split("verification FAILED at ")
        .nth(1)
        .unwrap()
        .trim();
    assert!(failure.starts_with("witness bundle 0"), "{failure}");
    let upload = [
        Field {
            name: "csrf",
            filename: None,
            data: csrf.as_bytes(),
        },
        Field {
            name: "bundle",
            filename: Some("console.bundle"),
            data: bundle,
        },
        Field {
            name: "witness",
            filename: Some("junk.bundle"),
            data: b"not a bundle",
        },
    ];
    let page = post_multipart(c, cookie, "/audit/verify", &upload).await;
    assert!(page.body.contains("NOT VERIFIED"), "{}", page.body);
    let line = failure.replace(&junk_file, "junk.bundle");
    assert!(page.body.contains(&esc(&line)), "{line}: {}", page.body);
}
