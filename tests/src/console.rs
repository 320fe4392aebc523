//! The officer console (`trm-admin console`) as a process, and a tiny HTTP/1.1 client over a
//! plain TCP stream to talk to it as a browser would (every wait bounded).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A running `trm-admin console`: its link, its stdout lines, its stdin (closing it stops it).
pub struct Console {
    child: Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    /// The first line it printed: `http://127.0.0.1:PORT/?token=…`.
    pub link: String,
    /// `127.0.0.1:PORT`.
    pub addr: String,
}

impl Console {
    /// Starts `trm-admin --cred CRED console` with `envs`; waits (10 s at most) for its link.
    pub async fn start(cred: &Path, envs: &[(&str, &str)]) -> Console {
        let mut child = Command::new(crate::bins::bin("trm-admin"))
            .arg("--cred")
            .arg(cred)
            .arg("console")
            .envs(envs.iter().copied())
            .env_remove("TRM_CRED")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn trm-admin console");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut c = Console {
            child,
            lines,
            link: String::new(),
            addr: String::new(),
        };
        c.link = c.next_line(10).await.expect("the console printed its link");
        let rest = c.link.strip_prefix("http://").expect("an http link");
        c.addr = rest.split('/').next().unwrap_or_default().to_string();
        c
    }

    /// The next line on its stdout, waiting `secs` at most.
    pub async fn next_line(&mut self, secs: u64) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(secs), self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// The path and query of a link it printed (`/?token=…`).
    pub fn path_of(&self, link: &str) -> String {
        let at = link
            .find(&self.addr)
            .expect("link on this console's address");
        link[at + self.addr.len()..].to_string()
    }

    /// Closes its stdin (as when its terminal goes away).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Sends it SIGTERM.
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Waits `secs` at most for it to exit; its exit code.
    pub async fn exited(&mut self, secs: u64) -> Option<i32> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while tokio::time::Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().expect("wait") {
                return Some(s.code().unwrap_or(-1));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        None
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP response.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request as a browser would make it.
pub struct Req<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// The `Host` header.
    pub host: &'a str,
    /// The session cookie's `name=value`, if any.
    pub cookie: Option<&'a str>,
    /// A form body (`application/x-www-form-urlencoded`), if any.
    pub form: Option<&'a str>,
}

/// Sends `req` to `addr` over a new connection and reads the whole answer (10 s at most).
pub async fn send(addr: &str, req: &Req<'_>) -> Reply {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        req.method, req.path, req.host
    );
    if let Some(c) = req.cookie {
        head.push_str(&format!("Cookie: {c}\r\n"));
    }
    let body = req.form.unwrap_or("");
    if req.form.is_some() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head.as_bytes()).await.expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .expect("the console answered within 10 s");
    parse(&raw)
}

/// A GET with the right `Host`.
pub async fn get(addr: &str, path: &str, cookie: Option<&str>) -> Reply {
    let req = Req {
        method: "GET",
        path,
        host: addr,
        cookie,
        form: None,
    };
    send(addr, &req).await
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]);
    let body = &raw[split + 4..];
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).trim().to_string();
        let n = usize::from_str_radix(&size, 16).unwrap_or(0);
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// Spends the console's printed token: the session cookie (`name=value`).
pub async fn sign_in(c: &Console) -> String {
    let r = get(&c.addr, &c.path_of(&c.link), None).await;
    assert_eq!(r.status, 303, "token exchange: {r:?}");
    let cookie = r.header("set-cookie").expect("a session cookie");
    cookie.split(';').next().unwrap_or_default().to_string()
}

/// The CSRF token a page's forms carry.
pub fn csrf_of(page: &Reply) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = page.body.find(marker).expect("a CSRF field") + marker.len();
    page.body[at..at + 64].to_string()
}

/// A form POST with the right `Host` and the session cookie.
pub async fn post(c: &Console, cookie: &str, path: &str, form: &str) -> Reply {
    let req = Req {
        method: "POST",
        path,
        host: &c.addr,
        cookie: Some(cookie),
        form: Some(form),
    };
    send(&c.addr, &req).await
}

/// One field of a multipart form: its name, a file name for a file, its bytes.
pub struct Field<'a> {
    pub name: &'a str,
    pub filename: Option<&'a str>,
    pub data: &'a [u8],
}

/// A `multipart/form-data` POST (a file upload form, as a browser sends it) with the right
/// `Host` and the session cookie.
pub async fn post_multipart(c: &Console, cookie: &str, path: &str, fields: &[Field<'_>]) -> Reply {
    let boundary = "----trmtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for f in fields {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let disposition = match f.filename {
            Some(file) => format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file}\"\r\nContent-Type: application/octet-stream\r\n\r\n",
                f.name
            ),
            None => format!("Content-Disposition: form-data; name=\"{}\"\r\n\r\n", f.name),
        };
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(f.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        c.addr,
        body.len()
    );
    parse(&exchange_raw(&c.addr, head.as_bytes(), &body).await)
}

/// A form POST whose answer is a download: the reply and the body's exact bytes.
pub async fn post_download(c: &Console, cookie: &str, path: &str, form: &str) -> (Reply, Vec<u8>) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nCookie: {cookie}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        c.addr,
        form.len()
    );
    let raw = exchange_raw(&c.addr, head.as_bytes(), form.as_bytes()).await;
    let reply = parse(&raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole HTTP answer");
    let body = &raw[split + 4..];
    let chunked = reply
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    let bytes = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    (reply, bytes)
}

/// Writes `head` and `body` on a new connection to `addr`; the whole raw answer (30 s at
/// most: an upload or a download may be larger than a page).
async fn exchange_raw(addr: &str, head: &[u8], body: &[u8]) -> Vec<u8> {
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
        s.write_all(head).await.expect("write");
        s.write_all(body).await.expect("write");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read");
        raw
    };
    tokio::time::timeout(Duration::from_secs(30), exchange)
        .await
        .expect("the console answered within 30 s")
}
