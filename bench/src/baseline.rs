//! The raw baselines the product is held against, measured on the same machine in the same
//! run: quinn round trips on one mutually authenticated connection, Ed25519 sign +
//! `verify_strict` pairs, and sled inserts with grouped flushes.

use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};
use ed25519_dalek::{Signer, SigningKey};
use rand::RngCore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use trm_node::net::tls::{self, Pin, Pins, QuicLimits};

fn limits() -> QuicLimits {
    QuicLimits {
        max_streams: 64,
        window: (1 << 20) + (64 << 10),
        idle_timeout: Duration::from_secs(30),
    }
}

fn cert(name: &str) -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>)> {
    let s = trm_node::identity::self_signed(name, "node")?;
    let key =
        PrivateKeyDer::from_pem_slice(s.key_pem.as_bytes()).map_err(|e| anyhow!("key: {e}"))?;
    Ok((CertificateDer::from(s.cert_der), key))
}

/// Round trips per second of `size`-byte requests answered by `size`-byte responses, one
/// bidirectional stream each, `concurrency` streams at a time, on one QUIC connection with
/// the node's own TLS configuration (TLS 1.3, pinned certificates on both sides). The server
/// runs on its own runtime thread, as the other process would.
pub fn quinn_round_trips(n: usize, concurrency: usize, size: usize) -> Result<f64> {
    trm_tests::setup();
    let (server_cert, server_key) = cert("baseline-server")?;
    let (client_cert, client_key) = cert("baseline-client")?;
    let pins = Pins::new();
    pins.insert(
        &client_cert,
        Pin {
            who: "client".into(),
            not_before_ms: i64::MIN,
            not_after_ms: i64::MAX,
        },
    );
    let server_fp = trm_proto::signing::sha256(&server_cert);
    let server_cfg = tls::server_config(
        server_cert,
        server_key,
        pins,
        trm_proto::ALPN_PEER,
        limits(),
    )?;
    let client_cfg = tls::client_config(
        client_cert,
        client_key,
        server_fp,
        trm_proto::ALPN_PEER,
        limits(),
    )?;
    let server_sock = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let server_addr = server_sock.local_addr()?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let server = std::thread::spawn(move || -> Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let ep = trm_node::net::transport::endpoint(server_sock, Some(server_cfg))?;
            let ep2 = ep.clone();
            tokio::spawn(async move {
                while let Some(inc) = ep2.accept().await {
                    tokio::spawn(async move {
                        let Ok(conn) = inc.await else { return };
                        while let Ok((mut send, mut recv)) = conn.accept_bi().await {
                            tokio::spawn(async move {
                                if let Ok(req) = recv.read_to_end(size + 16).await {
                                    let _ = send.write_all(&vec![1u8; req.len()]).await;
                                    let _ = send.finish();
                                    let _ = send.stopped().await;
                                }
                            });
                        }
                    });
                }
            });
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .ok();
            ep.close(0u32.into(), b"done");
            Ok::<_, anyhow::Error>(())
        })
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let rate = rt.block_on(async move {
        let ep =
            trm_node::net::transport::endpoint(std::net::UdpSocket::bind("127.0.0.1:0")?, None)?;
        let conn = ep
            .connect_with(client_cfg, server_addr, tls::SERVER_NAME)?
            .await?;
        let one = move |conn: quinn::Connection| async move {
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(&vec![7u8; size]).await?;
            send.finish()?;
            let resp = recv.read_to_end(size + 16).await?;
            anyhow::ensure!(resp.len() == size, "short answer");
            Ok::<_, anyhow::Error>(())
        };
        // Warm up.
        for _ in 0..50 {
            one(conn.clone()).await?;
        }
        let per_task = n.div_ceil(concurrency);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..concurrency {
            let conn = conn.clone();
            tasks.spawn(async move {
                for _ in 0..per_task {
                    one(conn.clone()).await?;
                }
                Ok::<_, anyhow::Error>(())
            });
        }
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let secs = started.elapsed().as_secs_f64();
        conn.close(0u32.into(), b"done");
        ep.wait_idle().await;
        Ok::<_, anyhow::Error>((per_task * concurrency) as f64 / secs)
    });
    let _ = stop_tx.send(());
    server
        .join()
        .map_err(|_| anyhow!("baseline server panicked"))??;
    rate
}

/// Ed25519 sign + `verify_strict` pairs per second over `size`-byte messages, one thread.
pub fn ed25519_pairs(n: usize, size: usize) -> f64 {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let vk = key.verifying_key();
    let mut msg = vec![0u8; size];
    rand::rngs::OsRng.fill_bytes(&mut msg);
    let started = Instant::now();
    let mut ok = 0usize;
    for i in 0..n {
        msg[i % size] ^= 1;
        let sig = key.sign(&msg);
        ok += usize::from(vk.verify_strict(&msg, &sig).is_ok());
    }
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(ok, n, "every baseline signature verifies");
    n as f64 / secs
}

/// sled inserts per second of `size`-byte values under 16-byte random keys, with one flush
/// (fsync) per `group` inserts, in the mode the node's store uses.
pub fn sled_inserts(dir: &std::path::Path, n: usize, group: usize, size: usize) -> Result<f64> {
    let db = sled::Config::new()
        .path(dir)
        .mode(sled::Mode::HighThroughput)
        .open()?;
    let tree = db.open_tree("baseline")?;
    let mut value = vec![0u8; size];
    rand::rngs::OsRng.fill_bytes(&mut value);
    let mut key = [0u8; 16];
    let started = Instant::now();
    for i in 0..n {
        rand::rngs::OsRng.fill_bytes(&mut key);
        tree.insert(key, value.as_slice())?;
        if (i + 1) % group == 0 || i + 1 == n {
            db.flush()?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(n as f64 / secs)
}
