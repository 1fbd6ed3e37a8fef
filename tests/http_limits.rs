//! `carelog serve` against abusive and careless clients, through plain sockets and a real
//! client: a stranger's body is never read; a half-sent head and an idle keep-alive are closed
//! after their timeouts; slow clients do not starve `/healthz`; a shed request is logged once at
//! WARN; a revoked token's open stream ends at once.
//!
//! The memory of the server under 500 slow clients (README's serve section):
//! `cargo test --release --test http_limits -- --ignored --nocapture rss_under_500_slow_clients`.

mod http_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use http_support::*;

/// Connects, sends `bytes`, and waits (at most `wait`) for the server to answer or close: the
/// text it sent, and how long until the connection closed (None: still open after `wait`).
fn send_and_wait(addr: &str, bytes: &[u8], wait: Duration) -> (String, Option<Duration>) {
    let mut socket = TcpStream::connect(addr).expect("connect");
    socket.write_all(bytes).expect("write");
    let started = Instant::now();
    socket.set_read_timeout(Some(wait)).expect("timeout");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) => {
                return (
                    String::from_utf8_lossy(&answer).to_string(),
                    Some(started.elapsed()),
                );
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (
                    String::from_utf8_lossy(&answer).to_string(),
                    Some(started.elapsed()),
                );
            }
            Err(_) => return (String::from_utf8_lossy(&answer).to_string(), None),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_is_refused_before_its_body_is_read() {
    let store = Store::new();
    // A body timeout far longer than the test waits: a server that read the body first would
    // answer nothing within the wait.
    let server = store.start_with(&["--body-timeout-seconds", "120"]);
    let addr = server.addr();
    for token in ["", "Authorization: Bearer clg1_bogus\r\n"] {
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {addr}\r\n{token}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            4 * 1024 * 1024
        );
        let a = addr.clone();
        let (answer, _) = tokio::task::spawn_blocking(move || {
            send_and_wait(&a, head.as_bytes(), Duration::from_secs(10))
        })
        .await
        .expect("socket");
        assert!(answer.starts_with("HTTP/1.1 401"), "{token:?}: {answer:?}");
        assert!(answer.contains("_token"), "{answer}");
    }
    // A real token's post still works.
    let (status, body) = server
        .post("/v1/events", &store.recorder_a, &contact(store.p.pairing_a))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_and_an_idle_keep_alive_are_closed_after_their_timeouts() {
    let store = Store::new();
    let server = store.start_with(&[
        "--header-timeout-seconds",
        "1",
        "--idle-timeout-seconds",
        "3",
    ]);
    let addr = server.addr();

    // Half a request line: closed after the header timeout (1 s), long before the idle one.
    let a = addr.clone();
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        send_and_wait(&a, b"GET /heal", Duration::from_secs(20))
    })
    .await
    .expect("socket");
    let closed = closed.unwrap_or_else(|| panic!("a half-sent head stayed open: {answer:?}"));
    assert!(closed >= Duration::from_millis(900), "{closed:?}");
    assert!(
        closed < Duration::from_secs(3),
        "closed by the header timeout, not the idle one: {closed:?}"
    );

    // A whole request on a keep-alive connection, then nothing: answered, then closed after the
    // idle timeout (3 s), not the header timeout.
    let a = addr.clone();
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let (answer, closed) = tokio::task::spawn_blocking(move || {
        send_and_wait(&a, request.as_bytes(), Duration::from_secs(20))
    })
    .await
    .expect("socket");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let closed = closed.unwrap_or_else(|| panic!("an idle keep-alive stayed open: {answer:?}"));
    assert!(
        closed >= Duration::from_millis(2_500),
        "closed by the idle timeout: {closed:?}"
    );

    // A connection that sends nothing at all is closed after the header timeout.
    let a = addr.clone();
    let (_, closed) =
        tokio::task::spawn_blocking(move || send_and_wait(&a, b"", Duration::from_secs(20)))
            .await
            .expect("socket");
    assert!(
        closed.is_some_and(|c| c < Duration::from_secs(3)),
        "{closed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_while_slow_clients_hang() {
    let store = Store::new();
    let server = store.start_with(&["--header-timeout-seconds", "30", "--max-connections", "400"]);
    let addr = server.addr();
    // 300 clients each with half a head, and 50 with a token and half a body.
    let mut slow = Vec::new();
    for i in 0..350 {
        let mut socket = TcpStream::connect(&addr).expect("connect");
        if i < 300 {
            socket
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\n")
                .expect("write");
        } else {
            let head = format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n[",
                store.recorder_a
            );
            socket.write_all(head.as_bytes()).expect("write");
        }
        slow.push(socket);
    }
    for _ in 0..5 {
        let started = Instant::now();
        let (status, body) = server.get("/healthz", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let (status, body) = server
            .post("/v1/events", &store.recorder_a, &contact(store.p.pairing_a))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // Past the connection bound: answered 503 at once, not left hanging.
    for _ in 0..60 {
        slow.push(TcpStream::connect(&addr).expect("connect"));
    }
    let a = addr.clone();
    let (answer, closed) =
        tokio::task::spawn_blocking(move || send_and_wait(&a, b"", Duration::from_secs(10)))
            .await
            .expect("socket");
    assert!(closed.is_some(), "{answer:?}");
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 503"),
        "{answer:?}"
    );
    drop(slow);
    // Once they are gone, the service answers again.
    let mut answered = false;
    for _ in 0..50 {
        if let Ok(resp) = server.client.get(server.url("/healthz")).send().await
            && resp.status() == StatusCode::OK
        {
            answered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shed_request_is_logged_once_at_warn() {
    let store = Store::new();
    let server = store.start_with(&["--max-requests", "1"]);
    // One authenticated upload that holds the only request slot: its body never comes.
    let mut holder = TcpStream::connect(server.addr()).expect("connect");
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: 1000\r\n\r\n[",
        store.recorder_a
    );
    holder.write_all(head.as_bytes()).expect("write");
    let mut shed = None;
    for _ in 0..50 {
        let (status, body) = server.get("/healthz", None).await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            shed = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = shed.expect("a request past the limit is shed");
    assert_eq!(error_of(&body).1, "overloaded");
    drop(holder);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = server.log_text();
    let shed_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("requests at once"))
        .collect();
    assert_eq!(shed_lines.len(), 1, "{log}");
    assert!(shed_lines[0].contains("WARN"), "{}", shed_lines[0]);
    assert!(!log.lines().any(|l| l.contains("ERROR")), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_token_s_stream_ends_at_once_and_gets_nothing_recorded_after() {
    let store = Store::new();
    let server = store.start();
    let (status, created) = server
        .post("/v1/tokens", &store.admin, &json!({"role": "auditor"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().expect("secret").to_string();
    let token_id = created["token_id"].as_str().expect("id").to_string();
    let head = server.head(&store.admin).await;
    let resp = server
        .client
        .get(server.url(&format!("/v1/subscribe?from={}", head + 1)))
        .bearer_auth(&secret)
        .send()
        .await
        .expect("subscribe");
    assert_eq!(resp.status(), StatusCode::OK);
    let mut stream = resp.bytes_stream();
    let (status, body) = server
        .post("/v1/events", &store.recorder_a, &contact(store.p.pairing_a))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = body["acks"][0]["position"].as_u64().expect("position");

    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut text = String::new();
        let mut ended_at = None;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(Ok(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
                Ok(_) => {
                    ended_at = Some(Instant::now());
                    break;
                }
                Err(_) => break,
            }
        }
        (text, ended_at)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, revoked) = server
        .post(
            &format!("/v1/tokens/{token_id}/revoke"),
            &store.admin,
            &json!({"reason": "left"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let revoked_at = Instant::now();
    let revocation = revoked["position"].as_u64().expect("position");
    let (status, body) = server
        .post("/v1/events", &store.recorder_a, &contact(store.p.pairing_a))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let after = body["acks"][0]["position"].as_u64().expect("position");

    let (text, ended_at) = reader.await.expect("reader");
    let ended_at = ended_at.unwrap_or_else(|| panic!("the stream did not end: {text}"));
    assert!(
        ended_at.saturating_duration_since(revoked_at) < Duration::from_secs(1),
        "{text}"
    );
    let ids: Vec<u64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id:"))
        .filter_map(|v| v.trim().parse().ok())
        .collect();
    assert_eq!(ids, [before], "{text}");
    assert!(!ids.contains(&revocation) && !ids.contains(&after));
    assert!(
        text.contains("revoked_token"),
        "the stream says why it ended: {text}"
    );
}

/// Resident memory of a process, from /proc (KiB).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: builds the demo store (~220,000 events)"]
async fn rss_under_500_slow_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("store");
    cli(&data, &["demo"]);
    let admin = cli(&data, &["token", "create", "--role", "admin"]);
    let server = Server::start(&data, &dir.path().join("server.log"));
    let pid = server.child.id();
    let (status, _) = server.get("/healthz", None).await;
    assert_eq!(status, StatusCode::OK);
    let idle = rss_kib(pid);
    // 250 slow heads, 250 authenticated uploads that announce 4 MiB and send 64 KiB of it.
    let mut slow = Vec::new();
    let chunk = vec![b' '; 64 * 1024];
    for i in 0..500 {
        let mut socket = TcpStream::connect(server.addr()).expect("connect");
        if i % 2 == 0 {
            socket
                .write_all(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
        } else {
            let head = format!(
                "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {admin}\r\nContent-Length: {}\r\n\r\n",
                4 * 1024 * 1024
            );
            socket.write_all(head.as_bytes()).expect("write");
            let _ = socket.write_all(&chunk);
        }
        slow.push(socket);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (status, _) = server.get("/healthz", None).await;
    let loaded = rss_kib(pid);
    println!(
        "RSS of carelog serve on the demo store: {} MiB idle, {} MiB with 500 slow clients (healthz {status})",
        idle / 1024,
        loaded / 1024
    );
    drop(slow);
}
