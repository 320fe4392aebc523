//! A UDP proxy on loopback that stands between two nodes and can drop, delay, reorder and
//! duplicate datagrams, for partition tests. One client (the sending node) at a time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::net::UdpSocket;

/// What the proxy does with each datagram, in both directions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Forward at once.
    Pass,
    /// Drop everything (a partition).
    Drop,
    /// Lose `loss` of the datagrams, duplicate `dup` of them, and delay each by a random
    /// 0..=`max_delay_ms` (so they arrive out of order).
    Chaos {
        loss: f64,
        dup: f64,
        max_delay_ms: u64,
    },
}

/// A running proxy.
pub struct Proxy {
    /// The address the client must use.
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Datagrams forwarded: [client to target, target to client].
    forwarded: Arc<[AtomicU64; 2]>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Binds a front socket on 127.0.0.1 and forwards to `target`; the chaos mode draws its
    /// losses, duplicates and delays from `rng` (a test's [`crate::seeded_rng`]).
    pub async fn start(target: SocketAddr, rng: rand::rngs::StdRng) -> Self {
        let rng = Arc::new(Mutex::new(rng));
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind front"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind back"));
        back.connect(target).await.expect("connect back");
        let addr = front.local_addr().expect("front addr");
        let mode = Arc::new(Mutex::new(Mode::Pass));
        let m = mode.clone();
        let forwarded: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let fw = forwarded.clone();
        let task = tokio::spawn(async move {
            let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
            let mut a = vec![0u8; 65536];
            let mut b = vec![0u8; 65536];
            loop {
                tokio::select! {
                    r = front.recv_from(&mut a) => {
                        let Ok((n, from)) = r else { continue };
                        *client.lock().unwrap() = Some(from);
                        let mode = *m.lock().unwrap();
                        forward(mode, a[..n].to_vec(), back.clone(), None, fw.clone(), &rng);
                    }
                    r = back.recv(&mut b) => {
                        let Ok(n) = r else { continue };
                        let to = *client.lock().unwrap();
                        if let Some(to) = to {
                            let mode = *m.lock().unwrap();
                            forward(mode, b[..n].to_vec(), front.clone(), Some(to), fw.clone(), &rng);
                        }
                    }
                }
            }
        });
        Self {
            addr,
            mode,
            forwarded,
            task,
        }
    }

    /// Datagrams forwarded so far: (client to target, target to client).
    pub fn forwarded(&self) -> (u64, u64) {
        (
            self.forwarded[0].load(Ordering::Relaxed),
            self.forwarded[1].load(Ordering::Relaxed),
        )
    }

    /// Changes what happens to the next datagrams.
    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn forward(
    mode: Mode,
    data: Vec<u8>,
    sock: Arc<UdpSocket>,
    to: Option<SocketAddr>,
    counts: Arc<[AtomicU64; 2]>,
    rng: &Mutex<rand::rngs::StdRng>,
) {
    let send = |data: Vec<u8>, sock: Arc<UdpSocket>, delay: Duration| {
        let counts = counts.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let sent = match to {
                Some(to) => sock.send_to(&data, to).await,
                None => sock.send(&data).await,
            };
            if sent.is_ok() {
                counts[usize::from(to.is_some())].fetch_add(1, Ordering::Relaxed);
            }
        });
    };
    match mode {
        Mode::Pass => send(data, sock, Duration::ZERO),
        Mode::Drop => {}
        Mode::Chaos {
            loss,
            dup,
            max_delay_ms,
        } => {
            let mut rng = rng.lock().unwrap_or_else(|p| p.into_inner());
            if rng.gen_bool(loss) {
                return;
            }
            let copies = if rng.gen_bool(dup) { 2 } else { 1 };
            for _ in 0..copies {
                let d = Duration::from_millis(rng.gen_range(0..=max_delay_ms));
                send(data.clone(), sock.clone(), d);
            }
        }
    }
}
