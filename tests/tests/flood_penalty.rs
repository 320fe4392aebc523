//! The penalty for failed authentication (issue 14, target 4): a source address whose peer
//! handshakes failed `limits.failed_handshakes_per_address` times is refused at `Incoming`,
//! before any TLS, for a backoff that doubles per offence; a pinned peer from another address
//! keeps delivering meanwhile. Real `trm-node` processes on loopback; the attacker binds
//! 127.0.0.2, the pinned peer 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use trm_proto::admin::{self as api, admin_request::Call};
use trm_tests::net::{self, Handshake};
use trm_tests::proc::NodeProc;
use trm_tests::raw::TlsId;
use trm_tests::*;

const ATTACKER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const NOT_PINNED: &str = r#"trm_handshakes_refused_total{peer="",reason="not_pinned"}"#;
const PENALISED: &str = r#"trm_handshakes_limited_total{peer="",limit="failed_before"}"#;
/// Failures before the first penalty, and the first penalty (doubled per offence).
const THRESHOLD: u64 = 3;
const FIRST_SECS: u64 = 6;

fn metric(node: &NodeProc, series: &str) -> u64 {
    trm_tests::proc::metric_value(&node.metrics().expect("metrics answer"), series)
}

/// Waits (bounded) until the receiver has counted `n` refusals of unpinned certificates.
async fn counted_not_pinned(al: &NodeProc, n: u64) {
    let ok = wait_until(5, || metric(al, NOT_PINNED) == n).await;
    assert!(
        ok,
        "{n} not-pinned refusals counted, got {}",
        metric(al, NOT_PINNED)
    );
}

async fn delivered(c: &trm_node::admin::client::AdminClient, id: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let v = c
            .call(Call::MessageShow(api::MessageShow { id: id.into() }))
            .await
            .expect("message show");
        if v["delivery"]["state"] == "delivered" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_fails_authentication_is_refused_before_tls_while_a_pinned_peer_delivers() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = bins::bin("trm-node");
    let mut it = NodeProc::init(tmp.path(), "IT", &bin).unwrap();
    let mut al = NodeProc::init(tmp.path(), "AL", &bin).unwrap();
    for (key, value) in [
        ("failed_handshakes_per_address", THRESHOLD),
        ("failed_handshake_backoff_secs", FIRST_SECS),
        ("failed_handshake_backoff_max_secs", 4 * FIRST_SECS),
    ] {
        al.set_in_table("limits", key, &value.to_string()).unwrap();
    }
    it.set_in_table("delivery", "backoff_max_ms", "500")
        .unwrap();
    it.start().await.unwrap();
    al.start().await.unwrap();
    it.pin_card(al.card()).await.unwrap();
    al.pin_card(it.card()).await.unwrap();
    let officer = it.officer("Officer Example", "officer").await.unwrap();
    let c = trm_node::admin::client::AdminClient::connect(&officer)
        .await
        .unwrap();
    let al_cert = al.keys().unwrap().tls_cert.to_vec();
    let stranger = TlsId::new("trm-node-XX");
    let ep = net::client_endpoint(ATTACKER);
    let attempt = || net::try_handshake(&ep, net::peer_client(&stranger, &al_cert), al.peer_addr);

    // THRESHOLD failures, each a full TLS handshake refused by the pin check.
    for i in 0..THRESHOLD {
        let h = attempt().await;
        assert!(h.is_tls_refusal(), "attempt {i} before the penalty: {h:?}");
        counted_not_pinned(&al, i + 1).await;
    }
    let penalised_at = Instant::now();
    assert_eq!(metric(&al, PENALISED), 0);

    // Now refused at Incoming: no TLS handshake, no answer at all; meanwhile Italy (pinned,
    // 127.0.0.1) connects and delivers.
    let ids = send_referrals_on(&c, "IT-PEN", 1, "AL").await;
    let h = attempt().await;
    assert!(
        matches!(&h, Handshake::Other(e) if e.contains("timed out")),
        "a penalised address gets no handshake: {h:?}"
    );
    assert!(delivered(&c, &ids[0]).await, "{}", al.log_tail());
    assert!(
        penalised_at.elapsed() < Duration::from_secs(FIRST_SECS),
        "the delivery happened during the penalty"
    );
    assert!(metric(&al, PENALISED) >= 1, "the refusal is counted");
    assert_eq!(
        metric(&al, NOT_PINNED),
        THRESHOLD,
        "the TLS handshake was not run"
    );

    // After the backoff the address may try again (a full handshake, refused by the pin);
    // that failure is its next offence at once, so the attempt after it is refused again.
    let ends = penalised_at + Duration::from_secs(FIRST_SECS) + Duration::from_millis(200);
    tokio::time::sleep_until(ends.into()).await;
    let h = attempt().await;
    assert!(h.is_tls_refusal(), "after the backoff: {h:?}");
    counted_not_pinned(&al, THRESHOLD + 1).await;
    let before = metric(&al, PENALISED);
    let h = attempt().await;
    assert!(
        matches!(&h, Handshake::Other(_)),
        "the second offence is penalised at once: {h:?}"
    );
    assert!(metric(&al, PENALISED) > before);
    assert_eq!(metric(&al, NOT_PINNED), THRESHOLD + 1);

    // One warn line per address per 10 s, address and reason only; none about Italy.
    let log = std::fs::read_to_string(al.dir.join("node.log")).unwrap();
    let lines = net::log_lines(
        &log,
        &["WARN", "failed authentication too often", "127.0.0.2:"],
    );
    let windows = 1 + penalised_at.elapsed().as_secs() as usize / 10;
    assert!(
        !lines.is_empty() && lines.len() <= windows,
        "{} lines in {windows} 10-s windows:\n{log}",
        lines.len()
    );
    assert!(
        net::log_lines(&log, &["failed authentication too often", "127.0.0.1:"]).is_empty(),
        "the pinned peer's address was never penalised:\n{log}"
    );
    c.close().await;
    ep.close(0u32.into(), b"");
    it.terminate();
    al.terminate();
}

/// Nonsense penalty settings stop the node at start with one line naming the key.
#[test]
fn nonsense_penalty_settings_are_refused_at_start_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = bins::bin("trm-node");
    for (key, value) in [
        ("failed_handshakes_per_address", "1001"),
        ("failed_handshake_backoff_secs", "0"),
        ("failed_handshake_backoff_max_secs", "0"),
    ] {
        let root = tmp.path().join(key);
        std::fs::create_dir_all(&root).unwrap();
        let al = NodeProc::init(&root, "AL", &bin).unwrap();
        al.set_in_table("limits", key, value).unwrap();
        let out = std::process::Command::new(&bin)
            .arg("run")
            .arg("--dir")
            .arg(&al.dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{key} = {value}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{key} = {value}: {err}");
        assert!(err.contains(&format!("`limits.{key}`")), "{err}");
    }
}
