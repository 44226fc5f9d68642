//! Headless Chromium for the viewer tests: one-shot runs (`--dump-dom`,
//! `--screenshot`) and a DevTools-protocol session to click and type.
//!
//! The CDP client is a few dozen lines over `std::net` (a WebSocket client
//! for one local connection: text frames, no extensions), so the tests need
//! no extra crates. Chromium runs with networking features off and a host
//! resolver that resolves nothing, so a page that tried to fetch anything
//! would fail visibly; the session also records every request the page
//! makes.
//!
//! Chromium comes from Debian (`apt-get install chromium`, done by
//! `.ci/run`); set `CHROMIUM` to use another binary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "osprofiler-viewer-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        // A helper process may still be finishing a write: retry briefly.
        for _ in 0..20 {
            if std::fs::remove_dir_all(&self.0).is_ok() || !self.0.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes `html` to a file in `dir` and returns its `file://` URL.
pub fn write_page(dir: &TempDir, name: &str, html: &str) -> (PathBuf, String) {
    let path = dir.path().join(name);
    std::fs::write(&path, html).expect("write page");
    let url = format!("file://{}", path.display());
    (path, url)
}

fn chromium_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    for candidate in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "Chromium not found: these tests need Debian's chromium \
         (`apt-get install -y chromium`; .ci/run installs it) or CHROMIUM=/path/to/chrome"
    );
}

/// Headless, sandbox-less (root in CI), and offline: no background
/// networking, component updates, sync, or name resolution.
fn command(profile: &TempDir) -> Command {
    let mut cmd = Command::new(chromium_binary());
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--window-size=1400,900",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .stdin(Stdio::null())
    // Its own process group, so that ending it ends its helpers too.
    .process_group(0);
    cmd
}

/// Ends the process group the child leads (Chromium and its zygote, GPU and
/// network helpers), politely first.
fn end_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    for (signal, grace) in [("-TERM", 50), ("-KILL", 50)] {
        let _ = Command::new("kill")
            .args([signal, "--", &group])
            .stderr(Stdio::null())
            .status();
        for _ in 0..grace {
            if matches!(child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // Helpers that outlived the browser: anything left in the group.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &group])
        .stderr(Stdio::null())
        .status();
}

fn run(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run chromium");
    let pid = child.id();
    let out = child.wait_with_output().expect("run chromium");
    // The browser has exited; make sure no helper of its group lingers.
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pid}")])
        .stderr(Stdio::null())
        .status();
    assert!(
        out.status.success(),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The DOM after the page's scripts ran, serialized.
pub fn dump_dom(url: &str) -> String {
    let profile = TempDir::new("profile");
    let mut cmd = command(&profile);
    cmd.args(["--virtual-time-budget=5000", "--dump-dom", url]);
    String::from_utf8(run(cmd).stdout).expect("UTF-8 DOM")
}

/// A 1400x900 screenshot of the page after its scripts ran.
pub fn screenshot(url: &str, png: &Path) {
    let profile = TempDir::new("profile");
    let _ = std::fs::remove_file(png);
    let mut cmd = command(&profile);
    cmd.args(["--virtual-time-budget=5000", "--hide-scrollbars"])
        .arg(format!("--screenshot={}", png.display()))
        .arg(url);
    run(cmd);
    let meta = std::fs::metadata(png).expect("screenshot written");
    assert!(
        meta.len() > 10_000,
        "screenshot too small: {} bytes",
        meta.len()
    );
}

/// A page in headless Chromium driven over the DevTools protocol.
pub struct Session {
    child: Child,
    ws: WebSocket,
    next_id: u64,
    /// Protocol events received while waiting for replies.
    pub events: Vec<Value>,
    _profile: TempDir,
}

impl Session {
    /// Starts Chromium on `about:blank` and attaches to its page, with the
    /// Page, Runtime and Network domains enabled.
    pub fn start() -> Session {
        let profile = TempDir::new("cdp");
        let mut cmd = command(&profile);
        cmd.args(["--remote-debugging-port=0", "about:blank"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start chromium");
        // Chromium writes the port it picked to DevToolsActivePort.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                if let Some(port) = text.lines().next().and_then(|l| l.trim().parse().ok()) {
                    break port;
                }
            }
            assert!(Instant::now() < deadline, "chromium did not open DevTools");
            std::thread::sleep(Duration::from_millis(50));
        };
        let targets = loop {
            match http_get(port, "/json/list") {
                Ok(body) => {
                    let list: Value = serde_json::from_str(&body).expect("target list");
                    if list
                        .as_array()
                        .is_some_and(|l| l.iter().any(|t| t["type"] == "page"))
                    {
                        break list;
                    }
                }
                Err(e) => assert!(Instant::now() < deadline, "DevTools HTTP: {e}"),
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let page = targets
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .unwrap();
        let ws_url = page["webSocketDebuggerUrl"].as_str().expect("page ws url");
        let ws = WebSocket::connect(ws_url).expect("connect to the page");
        let mut session = Session {
            child,
            ws,
            next_id: 0,
            events: Vec::new(),
            _profile: profile,
        };
        for domain in ["Page", "Runtime", "Network"] {
            session.call(&format!("{domain}.enable"), json!({}));
        }
        session
    }

    /// Sends one command and returns its result (panics on a protocol
    /// error).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params});
        self.ws
            .send(&message.to_string())
            .expect("send to chromium");
        loop {
            let text = self.ws.receive().expect("receive from chromium");
            let reply: Value = serde_json::from_str(&text).expect("protocol JSON");
            if reply["id"] == id {
                if let Some(error) = reply.get("error") {
                    panic!("{method} failed: {error}");
                }
                return reply["result"].clone();
            }
            if reply.get("method").is_some() {
                self.events.push(reply);
            }
        }
    }

    /// Evaluates a JS expression in the page (promises awaited) and
    /// returns its value.
    pub fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
        );
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("JS exception in `{expression}`: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy.
    pub fn wait_for(&mut self, expression: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression);
            if !matches!(value, Value::Null | Value::Bool(false)) {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for `{expression}`"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Opens `url` and waits until `ready` (a JS expression) holds.
    pub fn open(&mut self, url: &str, ready: &str, timeout: Duration) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait_for(ready, timeout);
    }

    /// A real left click at viewport coordinates.
    pub fn click(&mut self, x: f64, y: f64) {
        for kind in ["mouseMoved", "mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            );
        }
    }

    /// Clicks the centre of the first element matching the CSS selector.
    pub fn click_selector(&mut self, selector: &str) {
        let expr = format!(
            "(() => {{ const e = document.querySelector({}); if (!e) return null; \
             const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()",
            json!(selector)
        );
        let point = self.eval(&expr);
        let (x, y) = match point.as_array().map(Vec::as_slice) {
            Some([x, y]) => (x.as_f64().unwrap(), y.as_f64().unwrap()),
            _ => panic!("nothing matches {selector}"),
        };
        self.click(x, y);
    }

    /// Types text into the focused element, as an IME commit would.
    pub fn type_text(&mut self, text: &str) {
        self.call("Input.insertText", json!({"text": text}));
    }

    /// Presses and releases one key (`Enter`, `ArrowDown`, ...).
    pub fn press(&mut self, key: &str, code: u32) {
        for kind in ["keyDown", "keyUp"] {
            self.call(
                "Input.dispatchKeyEvent",
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code}),
            );
        }
    }

    /// URLs of every request the page made so far.
    pub fn requested_urls(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_owned))
            .collect()
    }

    /// A PNG of the viewport, saved to `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(shot["data"].as_str().expect("screenshot data"));
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        end_group(&mut self.child);
    }
}

fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    // DevTools keeps the connection open: read exactly Content-Length.
    let mut reader = BufReader::new(stream);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    String::from_utf8(body).map_err(|e| std::io::Error::other(e.to_string()))
}

/// A WebSocket client for one connection to Chromium's DevTools server.
struct WebSocket {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    mask_seed: u32,
}

impl WebSocket {
    fn connect(url: &str) -> std::io::Result<WebSocket> {
        let rest = url.strip_prefix("ws://").expect("ws:// URL");
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let stream = TcpStream::connect(host)?;
        stream.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut writer = stream.try_clone()?;
        // No Origin header: DevTools accepts non-browser clients without one.
        write!(
            writer,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: b3Nwcm9maWxlci12aWV3ZXI=\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )?;
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status)?;
        if !status.contains(" 101 ") {
            return Err(std::io::Error::other(format!("handshake: {status}")));
        }
        loop {
            let mut line = String::new();
            reader.read_line(&mut line)?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        Ok(WebSocket {
            reader,
            writer,
            mask_seed: 0x9e37_79b9,
        })
    }

    /// Sends one masked text frame (clients must mask).
    fn send(&mut self, text: &str) -> std::io::Result<()> {
        self.send_frame(0x1, text.as_bytes())
    }

    fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> std::io::Result<()> {
        let mut frame = vec![0x80 | opcode];
        let len = payload.len();
        if len < 126 {
            frame.push(0x80 | len as u8);
        } else if len <= 0xffff {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
        self.mask_seed = self
            .mask_seed
            .wrapping_mul(1_664_525)
            .wrapping_add(1_013_904_223);
        let mask = self.mask_seed.to_be_bytes();
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.writer.write_all(&frame)
    }

    /// The next complete text message (answering pings on the way).
    fn receive(&mut self) -> std::io::Result<String> {
        let mut message = Vec::new();
        loop {
            let mut head = [0u8; 2];
            self.reader.read_exact(&mut head)?;
            let fin = head[0] & 0x80 != 0;
            let opcode = head[0] & 0x0f;
            let masked = head[1] & 0x80 != 0;
            let mut len = u64::from(head[1] & 0x7f);
            if len == 126 {
                let mut b = [0u8; 2];
                self.reader.read_exact(&mut b)?;
                len = u64::from(u16::from_be_bytes(b));
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.reader.read_exact(&mut b)?;
                len = u64::from_be_bytes(b);
            }
            let mut mask = [0u8; 4];
            if masked {
                self.reader.read_exact(&mut mask)?;
            }
            let mut payload = vec![0u8; len as usize];
            self.reader.read_exact(&mut payload)?;
            if masked {
                for (i, b) in payload.iter_mut().enumerate() {
                    *b ^= mask[i % 4];
                }
            }
            match opcode {
                0x0..=0x2 => {
                    message.extend_from_slice(&payload);
                    if fin {
                        return String::from_utf8(message)
                            .map_err(|e| std::io::Error::other(e.to_string()));
                    }
                }
                0x8 => return Err(std::io::Error::other("connection closed by chromium")),
                0x9 => self.send_frame(0xA, &payload)?,
                _ => {}
            }
        }
    }
}

/// Standard base64 (for screenshots sent over the protocol).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let bytes: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    for chunk in bytes.chunks(4) {
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= u32::from(value(c)) << (18 - 6 * i);
        }
        let n = chunk.len() * 6 / 8;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    out
}
