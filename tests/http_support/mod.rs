//! The harness of the HTTP tests (`tests/http*.rs`): a small programme imported with the CLI,
//! one token of each kind, and `carelog serve` started on a loopback port the OS picks, with a
//! real client. Each test file uses some of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_carelog");

// ---- the programme every test starts from -------------------------------------------------------

/// Two counties under a city bureau; in each a township with one cadre and one recipient, paired.
pub struct Programme {
    pub city: Uuid,
    pub county_a: Uuid,
    pub county_b: Uuid,
    pub cadre_a: Uuid,
    pub cadre_b: Uuid,
    pub pairing_a: Uuid,
    pub pairing_b: Uuid,
    pub claim_a: Uuid,
    pub claim_b: Uuid,
}

pub fn event(event_type: &str, time: &str, data: Value) -> Value {
    json!({"specversion": "1.0", "id": Uuid::now_v7(), "type": event_type, "source": "/test",
           "time": time, "data": data})
}

pub const SETUP_TIME: &str = "2024-01-10T10:00:00+08:00";
pub const CONTACT_TIME: &str = "2024-02-01T10:00:00+08:00";

impl Programme {
    pub fn new() -> Self {
        Self {
            city: Uuid::now_v7(),
            county_a: Uuid::now_v7(),
            county_b: Uuid::now_v7(),
            cadre_a: Uuid::now_v7(),
            cadre_b: Uuid::now_v7(),
            pairing_a: Uuid::now_v7(),
            pairing_b: Uuid::now_v7(),
            claim_a: Uuid::now_v7(),
            claim_b: Uuid::now_v7(),
        }
    }

    pub fn events(&self) -> Vec<Value> {
        let unit = |id: Uuid, name: &str, kind: &str, parent: Option<Uuid>| {
            event(
                "carelog.unit.registered",
                SETUP_TIME,
                json!({"unit_id": id, "name": name, "kind": kind, "parent_id": parent, "official_code": null}),
            )
        };
        let (township_a, township_b) = (Uuid::now_v7(), Uuid::now_v7());
        let (recipient_a, recipient_b) = (Uuid::now_v7(), Uuid::now_v7());
        let mut out = vec![
            unit(self.city, "庆阳市", "city_bureau", None),
            unit(self.county_a, "环县", "county", Some(self.city)),
            unit(self.county_b, "华池县", "county", Some(self.city)),
            unit(township_a, "毛井乡", "township", Some(self.county_a)),
            unit(township_b, "乔河乡", "township", Some(self.county_b)),
        ];
        for (cadre, name, township, recipient, pairing) in [
            (
                self.cadre_a,
                "张明",
                township_a,
                recipient_a,
                self.pairing_a,
            ),
            (
                self.cadre_b,
                "王芳",
                township_b,
                recipient_b,
                self.pairing_b,
            ),
        ] {
            out.push(event(
                "carelog.staff.registered",
                SETUP_TIME,
                json!({"person_id": cadre, "name": name, "role": "cadre", "unit_id": township, "since": "2024-01-01"}),
            ));
            out.push(event(
                "carelog.recipient.registered",
                SETUP_TIME,
                json!({"recipient_id": recipient, "kind": "person", "name": "李华", "unit_id": township, "birth_date": null}),
            ));
            out.push(event(
                "carelog.pairing.established",
                SETUP_TIME,
                json!({"pairing_id": pairing, "cadre_id": cadre, "recipient_id": recipient, "on": "2024-01-10"}),
            ));
        }
        for (claim, county) in [(self.claim_a, self.county_a), (self.claim_b, self.county_b)] {
            out.push(event(
                "carelog.claim.filed",
                SETUP_TIME,
                json!({"claim_id": claim, "metric": "contacts", "scope_unit_id": county,
                       "period_from": "2024-01-01", "period_to": "2024-12-31", "value": 0,
                       "comparison": "at_least", "source_document": "test report", "reported_on": "2024-01-10"}),
            ));
        }
        out
    }
}

pub fn contact(pairing: Uuid) -> Value {
    event(
        "carelog.contact.recorded",
        CONTACT_TIME,
        json!({"pairing_id": pairing, "channel": "phone", "summary": "called about the winter coal", "duration_minutes": 5}),
    )
}

// ---- the CLI and the server ---------------------------------------------------------------------

pub fn cli(data: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("run carelog");
    assert!(
        out.status.success(),
        "carelog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A store with the programme and one token of each kind.
pub struct Store {
    pub _dir: tempfile::TempDir,
    pub data: PathBuf,
    pub log: PathBuf,
    pub p: Programme,
    pub admin: String,
    pub auditor: String,
    pub supervisor: String,
    pub scoped_supervisor: String,
    pub recorder_a: String,
    pub recorder_b: String,
}

impl Store {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("store");
        let p = Programme::new();
        let file = dir.path().join("programme.jsonl");
        let mut f = std::fs::File::create(&file).expect("create");
        for e in p.events() {
            writeln!(f, "{e}").expect("write");
        }
        drop(f);
        cli(&data, &["import", file.to_str().expect("utf-8 path")]);
        let token = |args: &[&str]| cli(&data, &[&["token", "create"], args].concat());
        let admin = token(&["--role", "admin"]);
        let auditor = token(&["--role", "auditor"]);
        let supervisor = token(&["--role", "supervisor"]);
        let county_a = p.county_a.to_string();
        let scoped_supervisor = token(&["--role", "supervisor", "--unit", &county_a]);
        let recorder_a = token(&["--role", "recorder", "--cadre", &p.cadre_a.to_string()]);
        let recorder_b = token(&["--role", "recorder", "--cadre", &p.cadre_b.to_string()]);
        Self {
            log: dir.path().join("server.log"),
            _dir: dir,
            data,
            p,
            admin,
            auditor,
            supervisor,
            scoped_supervisor,
            recorder_a,
            recorder_b,
        }
    }

    pub fn start(&self) -> Server {
        Server::start(&self.data, &self.log)
    }

    pub fn start_with(&self, args: &[&str]) -> Server {
        Server::start_with(&self.data, &self.log, args)
    }
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
    pub log: PathBuf,
}

impl Server {
    pub fn start(data: &Path, log: &Path) -> Server {
        Self::start_with(data, log, &[])
    }

    /// `carelog serve` with further arguments (`--header-timeout-seconds 1`, …).
    pub fn start_with(data: &Path, log: &Path, args: &[&str]) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log");
        let mut child = Command::new(BIN)
            .arg("--data")
            .arg(data)
            .args(["serve", "--addr", "127.0.0.1:0"])
            // The programme here is dated 2024, long past the late-entry window: no window
            // unless a test asks for one (`tests/http.rs` checks the default).
            .args(if args.contains(&"--late-entry-days") {
                &[][..]
            } else {
                &["--late-entry-days", "0"][..]
            })
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("start carelog serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its address");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", read(log)))
            .to_string();
        Server {
            child,
            base: addr,
            client: reqwest::Client::new(),
            log: log.to_path_buf(),
        }
    }

    /// HOST:PORT, for a plain socket.
    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut req = self.client.get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("GET");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post_raw(
        &self,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.expect("POST");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.post_raw(path, Some(token), body.to_string().into_bytes())
            .await
    }

    pub async fn head(&self, token: &str) -> u64 {
        let (status, digest) = self.get("/v1/digest", Some(token)).await;
        assert_eq!(status, StatusCode::OK, "{digest}");
        digest["position"].as_u64().expect("position")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log_text(&self) -> String {
        read(&self.log)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// A POST /v1/events over a plain socket: the head with `extra_headers`, then `body`, then the
/// answer read to the end. (status, JSON body)
pub async fn raw_post(base: &str, token: &str, extra_headers: &str, body: Vec<u8>) -> (u16, Value) {
    use std::io::Read;
    let addr = base.trim_start_matches("http://").to_string();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nConnection: close\r\n{extra_headers}\r\n"
    );
    tokio::task::spawn_blocking(move || {
        let mut socket = std::net::TcpStream::connect(&addr).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        socket.write_all(head.as_bytes()).expect("write head");
        socket.write_all(&body).expect("write body");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
        let text = String::from_utf8_lossy(&answer).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = text
            .split_once("\r\n\r\n")
            .and_then(|(_, b)| serde_json::from_str(b).ok())
            .unwrap_or(Value::String(text));
        (status, json)
    })
    .await
    .expect("raw post")
}

/// Asserts the JSON error shape and returns (field, rule).
pub fn error_of(body: &Value) -> (Option<String>, String) {
    let e = &body["error"];
    assert!(e.is_object(), "not an error body: {body}");
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (
        e["field"].as_str().map(str::to_string),
        e["rule"].as_str().expect("rule").to_string(),
    )
}

/// Reads Server-Sent Events until `count` events came or the deadline passed: (id, data).
pub async fn read_sse(
    resp: reqwest::Response,
    count: usize,
    timeout: Duration,
) -> Vec<(u64, Value)> {
    let mut stream = resp.bytes_stream();
    let mut buffer = String::new();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    while out.len() < count {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(c))) => c,
            _ => break,
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = v.trim().parse().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let Some(id) = id {
                out.push((id, serde_json::from_str(&data).expect("event data is JSON")));
            }
        }
    }
    out
}
