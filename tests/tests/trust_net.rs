//! Issue 10, transport and handshakes (items 8, 10, 18): a pin is not outlived by a TLS
//! session, a live connection or a cached one; Initials that never complete do not block a
//! legitimate peer; refused handshakes are logged, rate-limited.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use trm_proto::admin::{self as api, admin_request::Call};
use trm_tests::net::{self, Handshake};
use trm_tests::proc::{self, NodeProc};
use trm_tests::raw::{self, TlsId};
use trm_tests::*;

const DAY: i64 = 86_400_000;

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn peer_add(node: &TestNode, card: &[u8]) {
    node.op(Call::PeerAdd(api::PeerAdd {
        card: card.to_vec(),
        ..Default::default()
    }))
    .await;
}

/// A TLS session from before a revocation cannot be resumed to get in afterwards: the
/// listener issues no session tickets and keeps no session cache, so every handshake is a
/// full one and the revoked certificate is refused at the TLS level. Also: no QUIC datagrams
/// are offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_peer_cannot_resume_a_tls_session_and_no_tickets_are_issued() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let now = trm_node::base::time::now_ms();
    let fr = net::made_up_peer("FR", &[], now - DAY, now + DAY);
    peer_add(&al, &fr.card).await;
    let al_cert = al.keys().tls_cert.to_vec();
    let (cfg, store) = net::resuming_client(&fr.id(), &al_cert);
    let ep = net::client_endpoint(loopback(1));

    // Pinned: the connection works (positive control with the very same client).
    let conn = match net::try_handshake(&ep, cfg.clone(), al.peer_addr).await {
        Handshake::Open(c) => c,
        other => panic!("the pinned peer did not get in: {other:?}"),
    };
    let answer = raw::exchange(&conn, &net::referral_frame(&fr, "AL")).await;
    assert!(answer.is_ok(), "the pinned peer is served: {answer:?}");
    let datagrams = conn.max_datagram_size();
    conn.close(0u32.into(), b"bye");

    // Revoked: the same client, offering whatever session it kept, is refused by TLS.
    al.op(Call::PeerRevoke(api::PeerRevoke {
        country: "FR".into(),
    }))
    .await;
    let received = al.ctx().store.received_count();
    let again = net::try_handshake(&ep, cfg, al.peer_addr).await;
    assert!(
        again.is_tls_refusal(),
        "a revoked peer must be refused by the TLS handshake, not let in by a resumed session: {again:?}"
    );
    assert_eq!(
        store.tickets(),
        0,
        "the listener issued TLS session tickets"
    );
    assert_eq!(al.ctx().store.received_count(), received);
    assert_eq!(datagrams, None, "the listener offers no QUIC datagrams");
    ep.close(0u32.into(), b"");
    it.finish().await;
    al.finish().await;
}

/// A live connection ends with its pin: when the peer is removed and re-pinned with another
/// certificate, the connection made with the old certificate is closed and no stream on it
/// is served; when the card's validity ends, the connection is closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_connections_close_when_their_pin_is_replaced_or_expires() {
    let (_tmp, it, al) = started_pair("IT", "AL").await;
    let al_cert = al.keys().tls_cert.to_vec();
    let now = trm_node::base::time::now_ms();
    let expires = now + 8_000;
    let fr = net::made_up_peer("FR", &[], now - DAY, expires);
    let de = net::made_up_peer("DE", &[], now - DAY, now + DAY);
    peer_add(&al, &fr.card).await;
    peer_add(&al, &de.card).await;
    let ep = net::client_endpoint(loopback(1));
    let open = |h: Handshake| match h {
        Handshake::Open(c) => c,
        other => panic!("a pinned peer did not get in: {other:?}"),
    };
    let conn_fr =
        open(net::try_handshake(&ep, net::peer_client(&fr.id(), &al_cert), al.peer_addr).await);
    let conn_de =
        open(net::try_handshake(&ep, net::peer_client(&de.id(), &al_cert), al.peer_addr).await);
    for (conn, p) in [(&conn_fr, &fr), (&conn_de, &de)] {
        let r = raw::exchange(conn, &net::referral_frame(p, "AL")).await;
        assert!(r.is_ok(), "{} is served while pinned: {r:?}", p.country);
    }

    // Germany is removed and pinned again with another certificate.
    al.op(Call::PeerRemove(api::PeerRemove {
        country: "DE".into(),
    }))
    .await;
    let de2 = net::made_up_peer("DE", &[], now - DAY, now + DAY);
    peer_add(&al, &de2.card).await;
    let received = al.ctx().store.received_count();
    let late = raw::exchange(&conn_de, &net::referral_frame(&de, "AL")).await;
    assert!(
        late.is_err(),
        "a stream on a connection whose pin was replaced was served: {late:?}"
    );
    assert!(
        wait_until(2, || conn_de.close_reason().is_some()).await,
        "the connection of the replaced pin is still open"
    );
    assert!(
        matches!(
            conn_de.close_reason(),
            Some(quinn::ConnectionError::ApplicationClosed(_))
        ),
        "closed by the listener: {:?}",
        conn_de.close_reason()
    );
    assert_eq!(al.ctx().store.received_count(), received);

    // France's card expires while connected.
    assert!(conn_fr.close_reason().is_none(), "France is still valid");
    let deadline = Duration::from_millis((expires - trm_node::base::time::now_ms()).max(0) as u64);
    tokio::time::sleep(deadline.saturating_sub(Duration::from_millis(500))).await;
    if trm_node::base::time::now_ms() < expires - 200 {
        assert!(
            conn_fr.close_reason().is_none(),
            "closed before the card expired: {:?}",
            conn_fr.close_reason()
        );
    }
    assert!(
        wait_until(3, || conn_fr.close_reason().is_some()).await,
        "the connection outlived its card's validity"
    );
    let closed_at = trm_node::base::time::now_ms();
    assert!(
        closed_at <= expires + 2_500,
        "closed {} ms after expiry",
        closed_at - expires
    );
    // And France cannot come back.
    let back = net::try_handshake(&ep, net::peer_client(&fr.id(), &al_cert), al.peer_addr).await;
    assert!(back.is_tls_refusal(), "{back:?}");
    ep.close(0u32.into(), b"");
    it.finish().await;
    al.finish().await;
}

/// The delivery worker does not keep using a connection to a server whose pin changed: after
/// Italy re-pins Albania with another card (another certificate), the next message does not
/// leave on the connection made to the old certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_drops_its_cached_connection_when_the_peer_is_re_pinned() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.configure(|c| {
        c.delivery.backoff_initial_ms = 100;
        c.delivery.backoff_max_ms = 300;
    });
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let officer = it.officer("Officer Example", "officer").await;
    let first = create_and_send(&it, &officer, "IT-NET-0001", "AL").await;
    assert!(
        wait_until(20, || it.delivered(&first)).await,
        "first referral delivered"
    );
    assert_eq!(al.ctx().store.received_count(), 1);

    // Albania's pin changes at Italy: another card for AL, at the same address.
    it.op(Call::PeerRemove(api::PeerRemove {
        country: "AL".into(),
    }))
    .await;
    let now = trm_node::base::time::now_ms();
    let other = net::made_up_peer("AL", &[al.peer_addr], now - DAY, now + DAY);
    peer_add(&it, &other.card).await;
    let attempts = it.ctx().peers.health("AL").attempts;
    let _second = create_and_send(&it, &officer, "IT-NET-0002", "AL").await;
    assert!(
        wait_until(20, || it.ctx().peers.health("AL").attempts >= attempts + 2).await,
        "Italy tried to deliver the second referral"
    );
    assert_eq!(
        al.ctx().store.received_count(),
        1,
        "the second referral left on the connection made to the old certificate"
    );
    it.finish().await;
    al.finish().await;
}

/// An idle connection the delivery worker keeps to a peer is closed when the peer's card
/// expires, even if nothing else happens (the receiver, whose own pin of Italy is still valid,
/// would keep it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_closes_an_idle_cached_connection_when_the_card_expires() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.start().await;
    al.start().await;
    al.pin(&it).await;
    // Albania's own card, re-signed by Albania with a validity ending in 6 s.
    let now = trm_node::base::time::now_ms();
    let expires = now + 6_000;
    let mut card = trm_proto::card::verify_card(&al.card()).unwrap().card;
    card.valid_until_ms = expires;
    peer_add(&it, &trm_proto::card::sign_card(&card, &al.keys().signing)).await;
    let officer = it.officer("Officer Example", "officer").await;
    let id = create_and_send(&it, &officer, "IT-NET-0301", "AL").await;
    assert!(wait_until(15, || it.delivered(&id)).await, "delivered");
    assert_eq!(
        it.ctx().endpoint.open_connections(),
        1,
        "the delivery connection is kept"
    );
    let left = (expires - trm_node::base::time::now_ms()).max(0) as u64;
    tokio::time::sleep(Duration::from_millis(left)).await;
    assert!(
        wait_until(3, || it.ctx().endpoint.open_connections() == 0).await,
        "the idle connection outlived the card's validity"
    );
    it.finish().await;
    al.finish().await;
}

/// The sending side checks the validity of the receiver's card in the TLS handshake: once
/// the card has expired, Italy completes no handshake with a server presenting its pinned
/// certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_never_connects_to_a_server_whose_card_has_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    it.configure(|c| {
        c.delivery.backoff_initial_ms = 100;
        c.delivery.backoff_max_ms = 300;
    });
    it.start().await;
    let fr_tls = TlsId::new("trm-node-FR");
    let server = net::RawServer::start(&fr_tls, &[it.keys().tls_cert.clone()]);
    let now = trm_node::base::time::now_ms();
    let expires = now + 4_000;
    let fr = net::made_up_peer_with(
        "FR",
        &[server.addr],
        now - DAY,
        expires,
        TlsId {
            cert: fr_tls.cert.clone(),
            key_pem: fr_tls.key_pem.clone(),
        },
    );
    peer_add(&it, &fr.card).await;
    let officer = it.officer("Officer Example", "officer").await;

    // Positive control: while the card is valid, Italy connects to the server.
    let _first = create_and_send(&it, &officer, "IT-NET-0101", "FR").await;
    assert!(
        wait_until(10, || server.handshakes.load(Ordering::SeqCst) >= 1).await,
        "Italy connects while the card is valid"
    );
    // After the expiry, no new handshake completes, however often Italy retries.
    let wait = (expires - trm_node::base::time::now_ms()).max(0) as u64 + 500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    let at_expiry = server.handshakes.load(Ordering::SeqCst);
    let streams_at_expiry = server.streams.load(Ordering::SeqCst);
    let attempts = it.ctx().peers.health("FR").attempts;
    assert!(
        wait_until(20, || it.ctx().peers.health("FR").attempts >= attempts + 3).await,
        "Italy keeps retrying"
    );
    assert_eq!(
        server.handshakes.load(Ordering::SeqCst),
        at_expiry,
        "Italy completed a handshake with a server whose card expired"
    );
    assert_eq!(
        server.streams.load(Ordering::SeqCst),
        streams_at_expiry,
        "Italy sent a message to a server whose card expired"
    );
    server.stop();
    it.finish().await;
}

/// With no keep-alive from the listener, an idle client that does not keep the connection
/// alive itself loses it after the idle timeout: the server holds no idle connection forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_keeps_no_idle_connection_alive() {
    let tmp = tempfile::tempdir().unwrap();
    let mut al = TestNode::init(tmp.path(), "AL");
    al.configure(|c| c.limits.idle_timeout_secs = 3);
    al.start().await;
    let now = trm_node::base::time::now_ms();
    let fr = net::made_up_peer("FR", &[], now - DAY, now + DAY);
    peer_add(&al, &fr.card).await;
    let mut cfg = net::peer_client(&fr.id(), &al.keys().tls_cert);
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(3).try_into().unwrap()));
    transport.keep_alive_interval(None);
    cfg.transport_config(Arc::new(transport));
    let ep = net::client_endpoint(loopback(1));
    let conn = match net::try_handshake(&ep, cfg, al.peer_addr).await {
        Handshake::Open(c) => c,
        other => panic!("the pinned peer did not get in: {other:?}"),
    };
    assert!(
        wait_until(8, || conn.close_reason().is_some()).await,
        "an idle connection was kept alive by the listener"
    );
    assert!(
        matches!(conn.close_reason(), Some(quinn::ConnectionError::TimedOut)),
        "{:?}",
        conn.close_reason()
    );
    ep.close(0u32.into(), b"");
    al.finish().await;
}

/// A flood of QUIC Initials that never complete (raw datagrams, fresh connection IDs, 400 a
/// second from the same host as the legitimate peer) does not stop Italy from connecting and
/// delivering: unvalidated handshakes hold a few places at most and the rest must answer a
/// Retry, which Italy's QUIC stack does and the flood does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initials_that_never_complete_do_not_stop_a_legitimate_peer() {
    let tmp = tempfile::tempdir().unwrap();
    let mut it = TestNode::init(tmp.path(), "IT");
    let mut al = TestNode::init(tmp.path(), "AL");
    it.configure(|c| {
        c.delivery.backoff_initial_ms = 100;
        c.delivery.backoff_max_ms = 500;
    });
    al.configure(|c| c.limits.max_connections = 32);
    it.start().await;
    al.start().await;
    pin_all(&[&it, &al]).await;
    let officer = it.officer("Officer Example", "officer").await;

    let initials = net::initials(al.peer_addr, 2_000);
    let sent = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn(net::flood_initials(
        al.peer_addr,
        loopback(1),
        initials,
        20,
        sent.clone(),
        stop.clone(),
    ));
    assert!(
        wait_until(10, || sent.load(Ordering::Relaxed) >= 400).await,
        "the flood is under way"
    );
    let started = Instant::now();
    let id = create_and_send(&it, &officer, "IT-NET-0201", "AL").await;
    let delivered = wait_until(12, || it.delivered(&id)).await;
    let took = started.elapsed();
    let flooding = !flood.is_finished();
    stop.store(true, Ordering::Relaxed);
    flood.await.unwrap();
    eprintln!(
        "handshake flood: {} Initials sent; legitimate referral delivered: {delivered} after {took:?}; \
         retried {}, limited {}",
        sent.load(Ordering::Relaxed),
        al.ctx().metrics.total(trm_node::base::metrics::Counter::HandshakesRetried),
        al.ctx().metrics.total(trm_node::base::metrics::Counter::HandshakesLimited),
    );
    assert!(delivered, "the legitimate peer was blocked by the flood");
    assert!(flooding, "the flood lasted until the delivery");
    assert!(
        al.ctx()
            .metrics
            .total(trm_node::base::metrics::Counter::HandshakesRetried)
            > 0,
        "the flood was met with Retry"
    );
    it.finish().await;
    al.finish().await;
}

fn metric(body: &str, series: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(series)
            .and_then(|r| r.strip_prefix(' '))
            .and_then(|v| v.parse().ok())
    })
}

fn scrape(node: &NodeProc) -> String {
    node.metrics().expect("metrics answer")
}

/// Refused handshakes (a certificate that is not pinned, no certificate) are logged at warn
/// with the certificate's SHA-256 and the remote address, at most one line per source
/// address per 10 s, and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_logged_once_per_address_with_fingerprint_and_address() {
    let tmp = tempfile::tempdir().unwrap();
    let mut al = NodeProc::init(tmp.path(), "AL", &bins::bin("trm-node")).unwrap();
    // All ten attempts must reach the pin check (the penalty, flood_penalty.rs, is off here).
    al.set_in_table("limits", "failed_handshakes_per_address", "0")
        .unwrap();
    al.start().await.unwrap();
    let al_cert = al.keys().unwrap().tls_cert.to_vec();
    let stranger = TlsId::new("trm-node-XX");
    let fp = hex::encode(trm_proto::signing::sha256(&stranger.cert));
    let ep1 = net::client_endpoint(loopback(1));
    let ep2 = net::client_endpoint(loopback(2));
    let started = Instant::now();
    for i in 0..10 {
        let h = net::try_handshake(&ep1, net::peer_client(&stranger, &al_cert), al.peer_addr).await;
        assert!(h.is_tls_refusal(), "unpinned attempt {i}: {h:?}");
    }
    for i in 0..5 {
        let h = net::try_handshake(&ep2, net::certificateless_client(&al_cert), al.peer_addr).await;
        assert!(h.is_tls_refusal(), "certificateless attempt {i}: {h:?}");
    }
    let not_pinned = r#"trm_handshakes_refused_total{peer="",reason="not_pinned"}"#;
    let no_cert = r#"trm_handshakes_refused_total{peer="",reason="no_certificate"}"#;
    let mut body = String::new();
    let counted = wait_until(5, || {
        body = scrape(&al);
        metric(&body, not_pinned) == Some(10.0) && metric(&body, no_cert) == Some(5.0)
    })
    .await;
    assert!(counted, "every refusal counted:\n{body}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the attempts took longer than the rate-limit window; the line counts below would not hold"
    );
    let log = std::fs::read_to_string(al.dir.join("node.log")).unwrap();
    let a = net::log_lines(&log, &["WARN", "handshake refused", &fp, "127.0.0.1:"]);
    assert_eq!(
        a.len(),
        1,
        "one line for 10 unpinned attempts from one address:\n{log}"
    );
    let b = net::log_lines(&log, &["WARN", "no client certificate", "127.0.0.2:"]);
    assert_eq!(
        b.len(),
        1,
        "one line for 5 certificateless attempts:\n{log}"
    );
    assert!(
        !log.contains("trm-node-XX"),
        "nothing of the certificate but its fingerprint is logged"
    );
    ep1.close(0u32.into(), b"");
    ep2.close(0u32.into(), b"");
    al.terminate();
}

/// A pinned partner that opens twice its allowed connections, and on every stream it may
/// open announces a cap-sized frame and then trickles a byte every 500 ms: it gets at most
/// `max_connections_per_peer` connections, the receiver's memory stays bounded, and the
/// legitimate peer keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cap_sized_frames_trickled_on_every_allowed_stream_keep_memory_bounded() {
    const PER_PEER: usize = 8;
    const STREAMS: usize = 64;
    const REFERRALS: usize = 10;
    let tmp = tempfile::tempdir().unwrap();
    let (mut it, mut al) = proc::flood_pair(tmp.path(), 4).await.unwrap();
    let now = trm_node::base::time::now_ms();
    let fr = net::made_up_peer("FR", &[], now - DAY, now + DAY);
    al.pin_card(fr.card.clone()).await.unwrap();
    let officer = it.officer("Officer Example", "officer").await.unwrap();
    let al_cert = al.keys().unwrap().tls_cert.to_vec();
    let pid = al.pid().unwrap();
    let baseline = trm_tests::proc::rss_kib(pid).unwrap_or(0);
    let sampler = proc::RssPeak::start(pid, baseline);

    // Twice the allowed connections.
    let ep = net::client_endpoint(loopback(1));
    let mut conns = Vec::new();
    for _ in 0..2 * PER_PEER {
        if let Handshake::Open(c) =
            net::try_handshake(&ep, net::peer_client(&fr.id(), &al_cert), al.peer_addr).await
        {
            conns.push(c);
        }
    }
    let open = conns.iter().filter(|c| c.close_reason().is_none()).count();
    assert!(
        open <= PER_PEER,
        "{open} connections of one peer kept open, more than max_connections_per_peer = {PER_PEER}"
    );
    assert!(open >= 1, "the pinned peer got no connection at all");
    // On every stream: announce the cap (1 MiB), then a byte every 500 ms.
    let mut trickles = tokio::task::JoinSet::new();
    for c in conns.into_iter().filter(|c| c.close_reason().is_none()) {
        for _ in 0..STREAMS {
            let c = c.clone();
            trickles.spawn(async move {
                let Ok((mut send, _recv)) = c.open_bi().await else {
                    return false;
                };
                if send.write_all(&(1u32 << 20).to_be_bytes()).await.is_err() {
                    return false;
                }
                for _ in 0..40 {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if send.write_all(&[0x5a]).await.is_err() {
                        return true;
                    }
                }
                false
            });
        }
    }
    // Meanwhile the legitimate peer sends referrals.
    let c = trm_node::admin::client::AdminClient::connect(&officer)
        .await
        .unwrap();
    let ids = send_referrals_on(&c, "IT-NET", REFERRALS, "AL").await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut done = 0;
        for id in &ids {
            let v = c
                .call(Call::MessageShow(api::MessageShow { id: id.clone() }))
                .await
                .unwrap();
            done += usize::from(v["delivery"]["state"] == "delivered");
        }
        if done == ids.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the legitimate peer kept delivering"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut stopped = 0;
    while let Some(r) = trickles.join_next().await {
        stopped += usize::from(r.unwrap());
    }
    let grew = sampler.stop().await.saturating_sub(baseline) / 1024;
    eprintln!(
        "trickle: {open} connections x {STREAMS} streams announcing 1 MiB, {stopped} stopped by the \
         stream timeout; receiver VmRSS grew by {grew} MiB over {} MiB",
        baseline / 1024
    );
    assert_eq!(
        stopped,
        open * STREAMS,
        "every trickling stream was stopped"
    );
    assert!(grew < 96, "receiver memory grew by {grew} MiB");
    assert!(al.is_running(), "the node survived");
    c.close().await;
    ep.close(0u32.into(), b"");
    it.terminate();
    al.terminate();
}
