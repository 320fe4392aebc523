//! `trm-admin console`: a local web console on the officer's own machine, a view over the
//! typed admin API with the officer's own credential (the node enforces roles and audits every
//! call exactly as for the command line). Loopback only; a one-time token printed on stdout
//! becomes a session cookie; every response carries the security headers; see docs/CONSOLE.md.

mod audit;
mod directory;
mod fields;
mod form;
mod guard;
mod i18n;
mod pages;
mod referral;
mod stats;
mod thread;
mod upload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::cmd::Session;
use crate::failure::Failure;
use guard::Guard;

/// The idle time after which a session locks.
const IDLE: Duration = Duration::from_secs(15 * 60);

/// `--listen`: a loopback address (`127.0.0.1:PORT`, `[::1]:PORT`; port 0: the OS chooses);
/// anything else is refused (exit 64) before the credential is read.
pub(crate) fn check_listen(listen: &str) -> Result<SocketAddr, Failure> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Failure::usage(format!(
            "--listen {listen:?} is not an address: use 127.0.0.1:PORT"
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Failure::usage(format!(
            "--listen {listen}: the console binds loopback only (127.0.0.1 or ::1), never a network address"
        )));
    }
    Ok(addr)
}

/// The idle limit: 15 minutes; debug builds (tests) honour `TRM_CONSOLE_IDLE_SECS`.
fn idle_limit() -> Duration {
    if cfg!(debug_assertions) {
        if let Some(secs) = std::env::var("TRM_CONSOLE_IDLE_SECS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        {
            return Duration::from_secs(secs);
        }
    }
    IDLE
}

/// Serves the console on `addr` until SIGINT, SIGTERM or the end of stdin.
pub(crate) async fn run(session: Session, addr: SocketAddr) -> Result<(), Failure> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Failure::new(1, format!("console: cannot listen on {addr}: {e}")))?;
    let bound = listener
        .local_addr()
        .map_err(|e| Failure::new(1, format!("console: {e}")))?;
    let guard = Arc::new(Guard::new(bound, idle_limit()));
    guard.print_new_link();
    let state = pages::App {
        session: Arc::new(session),
    };
    let app = Router::new()
        .route("/", get(pages::home))
        .route("/inbox", get(pages::inbox))
        .route("/cases", get(pages::cases))
        .route("/cases/new", get(form::new_page).post(form::new_post))
        .route("/cases/{id}", get(pages::case))
        .route(
            "/cases/{id}/edit",
            get(form::edit_page).post(form::edit_post),
        )
        .route("/cases/{id}/referral", get(referral::pick))
        .route("/cases/{id}/referral/{to}", get(referral::page))
        .route("/cases/{id}/referral/{to}/send", post(referral::send))
        .route("/cases/{id}/referral/{to}/approve", post(referral::approve))
        .route(
            "/cases/{id}/referral/{to}/followup",
            post(referral::follow_up),
        )
        .route("/cases/{id}/referral/{to}/{what}", post(thread::post))
        .route("/cases/{id}/consent", post(thread::consent))
        .route("/messages/{id}", get(pages::message))
        .route("/messages/{id}/answer", post(pages::answer))
        .route("/stats", get(stats::page))
        .route("/directory", get(directory::page))
        .route("/audit", get(audit::page))
        .route("/audit/export", post(audit::export))
        .route("/audit/verify", post(audit::verify))
        .route("/messages/{id}/reply", post(form::answer::reply))
        .route("/language/{code}", get(pages::language))
        .route("/style.css", get(pages::style))
        .fallback(pages::not_found)
        .layer(axum::middleware::from_fn_with_state(guard, guard::guard))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(stopped())
        .await
        .map_err(|e| Failure::new(1, format!("console: {e}")))?;
    eprintln!("trm-admin: console stopped");
    Ok(())
}

/// Resolves on SIGINT, SIGTERM, or when stdin reaches its end (the terminal is gone).
async fn stopped() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: a blocking read must not hold up the runtime's shutdown.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
        let _ = tx.send(());
    });
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = rx => {}
    }
}

#[cfg(test)]
mod tests {
    use super::check_listen;

    #[test]
    fn only_loopback_addresses_are_accepted() {
        let cases = [
            ("127.0.0.1:0", true),
            ("127.0.0.1:8080", true),
            ("[::1]:0", true),
            ("0.0.0.0:8080", false),
            ("192.168.1.10:8080", false),
            ("[::]:8080", false),
            ("localhost:8080", false),
            ("127.0.0.1", false),
        ];
        for (listen, ok) in cases {
            assert_eq!(check_listen(listen).is_ok(), ok, "{listen}");
        }
    }
}
