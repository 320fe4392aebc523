//! Small things that misled (issue 12, item 24), through the real `trm-admin` binary against
//! two nodes (IT and AL) on loopback: every output says what happened.
//!
//! - `peer list` shows the state `status` shows (no contact yet, reachable), not "active";
//! - a directory entry without a confirmation date is shown as never confirmed, languages are
//!   shown, a partner's directory update is listed by `directory list` (its version) and not
//!   put in the officers' inbox; `directory edit | publish` say what they did in words;
//! - `referral accept`, `case close` and `info request` say which message went where, never
//!   `state: pending`; a follow-up without a date reads "undated", never "()".

use std::path::Path;

use serde_json::Value;
use trm_node::identity::OPERATOR_CRED;
use trm_tests::wait_until;

use trm_tests::bins::admin_ok as ok;

async fn json(cred: &Path, args: &[&str]) -> Value {
    let all = [&["--json"][..], args].concat();
    serde_json::from_str(&ok(cred, &all).await).expect("a JSON document")
}

fn assert_has(out: &str, needles: &[&str]) {
    for n in needles {
        assert!(out.contains(n), "{n:?} not in:\n{out}");
    }
}

fn assert_lacks(out: &str, needles: &[&str]) {
    for n in needles {
        assert!(!out.contains(n), "{n:?} in:\n{out}");
    }
}

/// The state column of `peer list` and of `status` for the one peer.
async fn states(op: &Path) -> (String, String) {
    let peers = json(op, &["peer", "list"]).await;
    let status = json(op, &["status"]).await;
    (
        peers["peers"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        status["peers"][0]["state"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_list_and_status_agree_and_the_directory_says_what_it_knows() {
    let p = trm_tests::officer_pair().await;
    let it_op = p.it.dir.join(OPERATOR_CRED);
    let (listed, status) = states(&it_op).await;
    assert_eq!(listed, "no contact yet");
    assert_eq!(listed, status);
    let table = ok(&it_op, &["peer", "list"]).await;
    assert_has(&table, &["no contact yet"]);
    assert_lacks(&table, &["active"]);

    // One entry confirmed on a date, one never confirmed; both with languages.
    let file = p.tmp.path().join("directory.json");
    let contacts = serde_json::json!({"contacts": [
        {"institution": "Synthetic NRU", "role": "national_referral_unit",
         "channels": ["mailto:nru@example.org"], "languages": ["it", "en"],
         "last_confirmed": trm_tests::date_in_days(-3)},
        {"institution": "Synthetic Police Desk", "role": "police",
         "channels": ["tel:+00 0000"], "languages": ["sq"]},
    ]});
    std::fs::write(&file, contacts.to_string()).unwrap();
    let edited = ok(
        &it_op,
        &["directory", "edit", "--file", &file.display().to_string()],
    )
    .await;
    assert_has(
        &edited,
        &[
            "saved 2 entries",
            "not sent yet",
            "trm-admin directory publish",
        ],
    );
    assert_lacks(&edited, &["published: false"]);
    let published = ok(&it_op, &["directory", "publish"]).await;
    assert_has(
        &published,
        &[
            "signed version 1 of this node's directory",
            "in the outbox for AL (message ",
        ],
    );
    assert_lacks(&published, &["[", "{"]);

    // Albania: the directory list names Italy's version, the never-confirmed entry and the
    // languages; the inbox stays for case work.
    let arrived = || {
        p.al.ctx()
            .store
            .inbox()
            .map(|r| r.iter().any(|m| m.kind == "directory_update"))
            .unwrap_or(false)
    };
    assert!(
        wait_until(60, arrived).await,
        "the directory update arrived"
    );
    let listed = ok(&p.otto, &["directory", "list", "--country", "IT"]).await;
    assert_has(
        &listed,
        &[
            "IT: version 1, published ",
            "LANGUAGES",
            "it en",
            "never",
            "UNCONFIRMED",
        ],
    );
    let police = listed
        .lines()
        .find(|l| l.contains("Police Desk"))
        .expect("police row");
    assert_has(police, &["never", "UNCONFIRMED", "sq"]);
    let nru = listed
        .lines()
        .find(|l| l.contains("Synthetic NRU"))
        .expect("NRU row");
    assert_lacks(nru, &["never", "UNCONFIRMED", "STALE"]);
    let inbox = json(&p.otto, &["inbox"]).await;
    assert_eq!(
        inbox["messages"].as_array().map(Vec::len),
        Some(0),
        "{inbox}"
    );

    // After contact both views say reachable.
    let (listed, status) = states(&it_op).await;
    assert_eq!(
        (listed.as_str(), status.as_str()),
        ("reachable", "reachable")
    );
    p.it.finish().await;
    p.al.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_say_which_message_went_where() {
    let p = trm_tests::officer_pair().await;
    let file = p.tmp.path().join("case.json");
    std::fs::write(&file, trm_tests::adult_case("IT-2026-0240", None)).unwrap();
    ok(
        &p.olivia,
        &["case", "create", "--file", &file.display().to_string()],
    )
    .await;
    let sent = json(
        &p.olivia,
        &["referral", "send", "IT-2026-0240", "--to", "AL"],
    )
    .await;
    let referral = sent["message"].as_str().expect("id").to_string();
    assert!(
        wait_until(60, || p.it.delivered(&referral)).await,
        "delivered"
    );

    let accept = [
        "referral",
        "accept",
        &referral,
        "--institution",
        "Synthetic Shelter",
        "--focal-point",
        "duty desk",
    ];
    let out = ok(&p.otto, &accept).await;
    assert_has(
        &out,
        &[
            "acceptance of case IT-2026-0240 to IT is in the outbox: message ",
            "trm-admin message show ",
        ],
    );
    assert_lacks(&out, &["state: pending", "state:"]);

    let follow = [
        "followup",
        "send",
        "IT-2026-0240",
        "--to",
        "IT",
        "--phase",
        "first_assistance",
        "--status",
        "shelter place found",
    ];
    let f = json(&p.otto, &follow).await;
    let f_id = f["message"].as_str().expect("follow-up id").to_string();
    assert!(
        wait_until(60, || p.al.delivered(&f_id)).await,
        "follow-up delivered"
    );
    let shown = ok(&p.olivia, &["message", "show", &f_id]).await;
    assert_has(&shown, &["undated"]);
    let timeline = ok(&p.olivia, &["case", "timeline", "IT-2026-0240"]).await;
    assert_has(&timeline, &["shelter place found (undated)"]);
    assert_lacks(&timeline, &["()"]);

    let ask = [
        "info",
        "request",
        "IT-2026-0240",
        "--to",
        "AL",
        "--categories",
        "risk",
        "--purpose",
        "risk assessment before return",
    ];
    let out = ok(&p.olivia, &ask).await;
    assert_has(
        &out,
        &["information request of case IT-2026-0240 to AL is in the outbox: message "],
    );

    let close = [
        "case",
        "close",
        "IT-2026-0240",
        "--to",
        "AL",
        "--outcome",
        "staying_in_destination",
    ];
    let out = ok(&p.olivia, &close).await;
    assert_has(
        &out,
        &["closure of case IT-2026-0240 to AL is in the outbox: message "],
    );
    assert_lacks(&out, &["state: pending"]);
    p.it.finish().await;
    p.al.finish().await;
}
