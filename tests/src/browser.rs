//! Tests in a real browser (issue 13): Debian's Chromium, headless, driven through
//! `chromedriver` with a small W3C WebDriver client (JSON over HTTP/1.1 on loopback).
//!
//! - [`Driver`]: one `chromedriver --port=0` process (the port it chose is read from its first
//!   lines, so no port is ever guessed), in its own process group; dropping it ends its
//!   sessions and kills the group: no chromium is left behind.
//! - [`Browser`]: one WebDriver session, a headless Chromium with the flags of [`FLAGS`], a
//!   fresh `--user-data-dir` (a temporary folder) and a fixed window ([`WINDOW`]), so that
//!   screenshots are stable. Each person of a scenario gets their own browser: cookies are per
//!   host, not per port, so two consoles on 127.0.0.1 cannot share one browser.
//! - Screenshots ([`Browser::screenshot`]) go to `target/console-screens/NAME.png` on every
//!   run, and also to `docs/console/NAME.png` with `TRM_SCREENSHOTS_RECORD=1` (never under CI).
//!
//! Every wait is bounded; a WebDriver error fails the test with the driver's message.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

/// The Chromium flags every session gets (a fresh `--user-data-dir` is added).
pub const FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// The window size of every session (CSS pixels): the screenshots' size.
pub const WINDOW: (u32, u32) = (1024, 800);

/// What to install when a program is missing.
const INSTALL: &str = "apt-get install -y chromium chromium-driver";

/// W3C WebDriver's key of an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The W3C WebDriver key values used here.
pub const TAB: &str = "\u{E004}";
pub const ENTER: &str = "\u{E007}";

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
}

/// Fails (never skips) when `chromium` or `chromedriver` is missing, with one line saying what
/// to install.
pub fn require_programs() {
    for program in ["chromium", "chromedriver"] {
        assert!(
            on_path(program),
            "the browser suite needs {program}: install Debian's packages ({INSTALL})"
        );
    }
}

/// A running `chromedriver`.
pub struct Driver {
    child: Child,
    /// `127.0.0.1:PORT`.
    addr: String,
}

impl Driver {
    /// Starts `chromedriver --port=0` and waits (10 s at most each) for the port it printed
    /// and for `/status` to say it is ready.
    pub async fn start() -> Driver {
        use std::os::unix::process::CommandExt;
        require_programs();
        let mut child = Command::new("chromedriver")
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: dropping the driver ends chromium with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver ({INSTALL}): {e}"));
        let out = child.stdout.take().expect("stdout");
        let (tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            // Read to the end, so that chromedriver never blocks on a full pipe.
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let mut driver = Driver {
            child,
            addr: String::new(),
        };
        let port = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.recv().await {
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    return rest.trim_end_matches('.').parse::<u16>().ok();
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
        .expect("chromedriver printed the port it listens on within 10 s");
        driver.addr = format!("127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let ready = wd(&driver.addr, "GET", "/status", None, 5).await;
            if ready.is_ok_and(|v| v["ready"] == true) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver not ready within 10 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        driver
    }

    /// A new browser (a WebDriver session) for `who` (a name for messages only).
    pub async fn browser(&self, who: &str) -> Browser<'_> {
        let profile = tempfile::tempdir().expect("a profile folder");
        let mut args: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": { "implicit": 0, "pageLoad": 20_000, "script": 5_000 },
                "goog:chromeOptions": { "args": args },
            } }
        });
        let v = wd(&self.addr, "POST", "/session", Some(&caps), 30)
            .await
            .unwrap_or_else(|e| panic!("{who}: no browser session: {e}"));
        let id = v["sessionId"].as_str().expect("a session id").to_string();
        let b = Browser {
            driver: self,
            session: format!("/session/{id}"),
            who: who.to_string(),
            _profile: profile,
        };
        let rect = json!({ "width": WINDOW.0, "height": WINDOW.1 });
        b.cmd("POST", "/window/rect", Some(&rect)).await;
        b
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The driver's whole group (chromedriver and any chromium left), by its id, before the
        // driver is reaped (the group id is the driver's process id).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One WebDriver call: the answer's `value`, or the driver's error as one line.
async fn wd(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    secs: u64,
) -> Result<Value, String> {
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    let exchange = async {
        let s = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut s = tokio::io::BufReader::new(s);
        s.get_mut()
            .write_all(format!("{head}{body}").as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let (mut status, mut length) = (0u16, 0usize);
        loop {
            let mut line = String::new();
            if s.read_line(&mut line).await.map_err(|e| e.to_string())? == 0 {
                return Err("the answer ended early".to_string());
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some(code) = line.strip_prefix("HTTP/1.1 ") {
                status = code.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            } else if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut raw = vec![0u8; length];
        s.read_exact(&mut raw).await.map_err(|e| e.to_string())?;
        Ok((status, raw))
    };
    let (status, raw) = tokio::time::timeout(Duration::from_secs(secs), exchange)
        .await
        .map_err(|_| format!("{method} {path}: no answer within {secs} s"))??;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| format!("{method} {path}: {e}"))?;
    let value = v["value"].clone();
    if status == 200 {
        Ok(value)
    } else {
        Err(format!(
            "{method} {path}: {status} {}: {}",
            value["error"].as_str().unwrap_or("?"),
            value["message"].as_str().unwrap_or("?")
        ))
    }
}

/// The same call, blocking (for `Drop`): ends a session.
fn end_session(addr: &str, session: &str) {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "DELETE {session} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_ok() {
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
    }
}

/// One browser: a WebDriver session on a [`Driver`].
pub struct Browser<'d> {
    driver: &'d Driver,
    /// `/session/ID`.
    session: String,
    who: String,
    _profile: tempfile::TempDir,
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        end_session(&self.driver.addr, &self.session);
    }
}

/// An element reference.
#[derive(Clone, Debug)]
pub struct Element(String);

impl Browser<'_> {
    /// A session command (`path` under `/session/ID`); panics with the driver's message.
    pub async fn cmd(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.try_cmd(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", self.who))
    }

    async fn try_cmd(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, String> {
        let full = format!("{}{path}", self.session);
        wd(&self.driver.addr, method, &full, body, 30).await
    }

    /// Opens `url` (waits for the page to load).
    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(&json!({ "url": url }))).await;
    }

    /// Loads the page again.
    pub async fn reload(&self) {
        self.cmd("POST", "/refresh", Some(&json!({}))).await;
    }

    /// The address in the address bar.
    pub async fn url(&self) -> String {
        let v = self.cmd("GET", "/url", None).await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The elements matching the CSS selector `css` (none: empty).
    pub async fn all(&self, css: &str) -> Vec<Element> {
        let q = json!({ "using": "css selector", "value": css });
        let v = self.cmd("POST", "/elements", Some(&q)).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e[ELEMENT].as_str())
                    .map(|s| Element(s.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The first element matching `css`; panics if there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.all(css).await.into_iter().next() {
            Some(e) => e,
            None => panic!("{}: no element {css} on {}", self.who, self.page().await),
        }
    }

    /// The address and source of the page (for a failure's message).
    pub async fn page(&self) -> String {
        let source = self.try_cmd("GET", "/source", None).await;
        let source = source.ok().and_then(|v| v.as_str().map(String::from));
        format!("{}: {}", self.url().await, source.unwrap_or_default())
    }

    /// The link whose visible text is exactly `text`.
    pub async fn link(&self, text: &str) -> Element {
        let q = json!({ "using": "link text", "value": text });
        let v = self.cmd("POST", "/element", Some(&q)).await;
        Element(v[ELEMENT].as_str().expect("an element").to_string())
    }

    /// The visible text of `e` (what a person sees, as rendered).
    pub async fn text_of(&self, e: &Element) -> String {
        let v = self
            .cmd("GET", &format!("/element/{}/text", e.0), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The visible text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> String {
        let e = self.find(css).await;
        self.text_of(&e).await
    }

    /// The visible text of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.all(css).await {
            out.push(self.text_of(&e).await);
        }
        out
    }

    /// Clicks `e` (a check box, a field: nothing is loaded; see [`Browser::follow`]).
    pub async fn click(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/click", e.0), Some(&json!({})))
            .await;
    }

    /// Clicks `e` (a link or a submit button) and waits for the page it leads to.
    pub async fn follow(&self, e: &Element) {
        self.mark_page().await;
        self.click(e).await;
        self.wait_new_page().await;
    }

    /// Presses `keys` (see [`Browser::keys`]) and waits for the page they lead to.
    pub async fn keys_to_page(&self, keys: &str) {
        self.mark_page().await;
        self.keys(keys).await;
        self.wait_new_page().await;
    }

    /// Marks the page shown, so that [`Browser::wait_new_page`] can tell the next one.
    async fn mark_page(&self) {
        self.script("window.trmTestOldPage = true; return null;")
            .await;
    }

    /// Waits (20 s at most) until another page than the marked one is loaded.
    async fn wait_new_page(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let js = "return document.readyState === 'complete' && !window.trmTestOldPage;";
        loop {
            let body = json!({ "script": js, "args": [] });
            // During the navigation the script may fail: look again.
            if let Ok(Value::Bool(true)) = self.try_cmd("POST", "/execute/sync", Some(&body)).await
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: no new page within 20 s",
                self.who
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Types `text` into `e` (after the text it already holds).
    pub async fn type_into(&self, e: &Element, text: &str) {
        let body = json!({ "text": text });
        self.cmd("POST", &format!("/element/{}/value", e.0), Some(&body))
            .await;
    }

    /// Empties the field `e` (a text input or a text area).
    pub async fn clear(&self, e: &Element) {
        self.cmd("POST", &format!("/element/{}/clear", e.0), Some(&json!({})))
            .await;
    }

    /// The current value of the form control `e` (what the person sees in it).
    pub async fn value_of(&self, e: &Element) -> String {
        let v = self
            .cmd("GET", &format!("/element/{}/property/value", e.0), None)
            .await;
        v.as_str().unwrap_or_default().to_string()
    }

    /// The control named `name` as `tag|type` (`select|select-one`, `input|date`,
    /// `textarea|textarea`, `input|checkbox`…); empty when the page has none.
    pub async fn control_kind(&self, name: &str) -> String {
        let js = format!(
            "const e = document.getElementsByName({}); \
             return e.length ? e[0].tagName.toLowerCase() + '|' + (e[0].type || '') : '';",
            Value::String(name.into())
        );
        self.script(&js)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs `script` in the page (tests only: the console itself has no script).
    pub async fn script(&self, script: &str) -> Value {
        let body = json!({ "script": script, "args": [] });
        self.cmd("POST", "/execute/sync", Some(&body)).await
    }

    /// Presses the keys of `keys` one after the other on the keyboard (W3C actions): a
    /// character types it, [`TAB`] and [`ENTER`] are those keys.
    pub async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for k in keys.chars() {
            actions.push(json!({ "type": "keyDown", "value": k.to_string() }));
            actions.push(json!({ "type": "keyUp", "value": k.to_string() }));
        }
        let body = json!({ "actions": [
            { "type": "key", "id": "keyboard", "actions": actions }
        ] });
        self.cmd("POST", "/actions", Some(&body)).await;
        self.cmd("DELETE", "/actions", None).await;
    }

    /// The focused element, described as `tag|name|button text` (see [`describe_js`]).
    pub async fn focused(&self) -> String {
        let js = format!("{} return d(document.activeElement);", describe_js());
        self.script(&js)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The controls a person can reach in the form holding the element `css` (hidden inputs
    /// excluded), in document order, described as [`Browser::focused`] does.
    pub async fn form_controls(&self, css: &str) -> Vec<String> {
        let js = format!(
            "{} const f = document.querySelector({}).form; \
             return Array.from(f.elements).filter(e => e.type !== 'hidden' && e.tagName !== 'FIELDSET').map(d);",
            describe_js(),
            Value::String(css.into())
        );
        let v = self.script(&js).await;
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Presses Tab until the focused element is `want` (as [`Browser::focused`] describes
    /// it), `max` presses at most; the elements focused on the way, `want` last.
    pub async fn tab_to(&self, want: &str, max: usize) -> Vec<String> {
        let mut seen = Vec::new();
        for _ in 0..max {
            self.keys(TAB).await;
            let now = self.focused().await;
            seen.push(now.clone());
            if now == want {
                return seen;
            }
        }
        panic!(
            "{}: Tab never reached {want}; focus went {seen:?}",
            self.who
        );
    }

    /// Waits (`secs` at most) until the first element matching `css` shows `needle`, reloading
    /// the page between looks if `reload`; its visible text.
    pub async fn wait_text(&self, css: &str, needle: &str, secs: u64, reload: bool) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut last = String::new();
        loop {
            let q = json!({ "using": "css selector", "value": css });
            if let Ok(v) = self.try_cmd("POST", "/element", Some(&q)).await {
                if let Some(id) = v[ELEMENT].as_str() {
                    let t = self
                        .try_cmd("GET", &format!("/element/{id}/text"), None)
                        .await;
                    last = t
                        .ok()
                        .and_then(|t| t.as_str().map(String::from))
                        .unwrap_or_default();
                    if last.contains(needle) {
                        return last;
                    }
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: {css} never showed {needle:?} within {secs} s; last: {last}",
                self.who
            );
            if reload {
                self.reload().await;
            } else {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// [`Browser::screenshot`] with the first element matching `css` scrolled to the top of
    /// the window (a form at the foot of a long page).
    pub async fn screenshot_at(&self, name: &str, css: &str) {
        let js = format!(
            "document.querySelector({}).scrollIntoView({{block: 'start'}}); return null;",
            Value::String(css.into())
        );
        self.script(&js).await;
        self.screenshot(name).await;
    }

    /// Saves the visible page as `target/console-screens/NAME.png`, and as
    /// `docs/console/NAME.png` when recording ([`recording`]).
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let v = self.cmd("GET", "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("a base64 screenshot"))
            .expect("base64 PNG");
        let mut dirs = vec![screens_dir()];
        if recording() {
            dirs.push(docs_dir());
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).expect("screenshot folder");
            std::fs::write(dir.join(format!("{name}.png")), &png).expect("write screenshot");
        }
    }
}

/// A script function `d(e)`: an element as `tag|name|text of a button` (`a|` plus the link
/// text for a link).
fn describe_js() -> &'static str {
    "const d = e => { if (!e) return ''; const t = e.tagName.toLowerCase(); \
     const text = (t === 'button' || t === 'a') ? e.textContent.trim() : ''; \
     return t + '|' + (e.getAttribute('name') || '') + '|' + text; };"
}

/// Whether screenshots are also written into `docs/console/`: `TRM_SCREENSHOTS_RECORD=1`,
/// never under CI (`CI` set).
pub fn recording() -> bool {
    std::env::var("TRM_SCREENSHOTS_RECORD").is_ok_and(|v| v == "1")
        && std::env::var_os("CI").is_none()
}

/// `target/console-screens` (under `CARGO_TARGET_DIR` if set).
pub fn screens_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    target.join("console-screens")
}

/// `docs/console` of the workspace.
pub fn docs_dir() -> PathBuf {
    workspace().join("docs/console")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}
