//! `GET /v1/openapi.json` against the router, through a real client: the document is public
//! JSON with the bearer scheme; it names every route of `carelog::api::ROUTES` (the list the
//! router is built from) and nothing else; every path it documents is routed (answers other
//! than the router's own 404 `no_route` or 405), and every operation it says needs the token
//! answers 401 without one, and documents that 401.

mod http_support;

use std::collections::BTreeSet;

use carelog::api::ROUTES;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

use http_support::*;

/// The document, fetched without a token.
async fn document(server: &Server) -> Value {
    let resp = server
        .client
        .get(server.url("/v1/openapi.json"))
        .send()
        .await
        .expect("GET /v1/openapi.json");
    assert_eq!(resp.status(), StatusCode::OK, "the document is public");
    let content_type = resp.headers()["content-type"]
        .to_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).expect("the document is JSON")
}

/// Every (METHOD, path) the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    let mut out = BTreeSet::new();
    for (path, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            out.insert((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// A path template with each `{param}` given a value its schema allows (the first of an enum, a
/// fresh UUID, or a short name).
fn concrete(doc: &Value, method: &str, path: &str) -> String {
    let op = &doc["paths"][path][method.to_lowercase()];
    let mut out = path.to_string();
    for p in op["parameters"].as_array().into_iter().flatten() {
        if p["in"] != "path" {
            continue;
        }
        let name = p["name"].as_str().expect("name");
        let schema = &p["schema"];
        let value = if let Some(first) = schema["enum"].get(0) {
            first.as_str().expect("a string enum").to_string()
        } else if schema["format"] == "uuid" {
            Uuid::now_v7().to_string()
        } else {
            "pairing-x".to_string()
        };
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    assert!(
        !out.contains('{'),
        "{path}: a path parameter is not documented"
    );
    out
}

async fn call(
    server: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, Value) {
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let mut req = server.client.request(method.clone(), server.url(path));
    if method == Method::POST {
        req = req.header("content-type", "application/json").body("{}");
    }
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status();
    let streamed = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if streamed {
        // A subscription never ends by itself: its head is the answer.
        return (status, Value::Null);
    }
    let text = resp.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

fn is_unrouted(status: StatusCode, body: &Value) -> bool {
    status == StatusCode::METHOD_NOT_ALLOWED
        || (status == StatusCode::NOT_FOUND && body["error"]["rule"] == "no_route")
}

#[tokio::test]
async fn the_document_and_the_router_agree() {
    let store = Store::new();
    let server = store.start();
    let doc = document(&server).await;

    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "an OpenAPI 3 document: {}",
        doc["openapi"]
    );
    let scheme = &doc["components"]["securitySchemes"]["bearerAuth"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    assert!(
        doc["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearerAuth").is_some())),
        "the bearer scheme applies by default: {}",
        doc["security"]
    );

    let routed: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(routed.len(), ROUTES.len(), "ROUTES names a route twice");
    let described = documented(&doc);
    let undocumented: Vec<_> = routed.difference(&described).collect();
    assert!(
        undocumented.is_empty(),
        "routed, not in the document: {undocumented:?}"
    );
    let unrouted: Vec<_> = described.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "in the document, not in ROUTES: {unrouted:?}"
    );

    // The test's own yardstick: a path no route has, and a method a route lacks, are seen as
    // unrouted.
    let (status, body) = call(&server, "GET", "/v1/no-such-route", Some(&store.admin)).await;
    assert!(is_unrouted(status, &body), "{status} {body}");
    let (status, body) = call(&server, "POST", "/v1/report", Some(&store.admin)).await;
    assert!(is_unrouted(status, &body), "{status} {body}");

    for (method, path) in &described {
        let url = concrete(&doc, method, path);
        let (status, body) = call(&server, method, &url, Some(&store.admin)).await;
        assert!(
            !is_unrouted(status, &body),
            "{method} {url} is documented but not routed: {status} {body}"
        );
        assert!(!status.is_server_error(), "{method} {url}: {status} {body}");
    }
}

#[tokio::test]
async fn what_the_document_says_needs_a_token_refuses_without_one() {
    let store = Store::new();
    let server = store.start();
    let doc = document(&server).await;
    let mut public = Vec::new();
    for (method, path) in documented(&doc) {
        let op = &doc["paths"][&path][method.to_lowercase()];
        let is_public = op["security"].as_array().is_some_and(Vec::is_empty);
        let url = concrete(&doc, &method, &path);
        let (status, body) = call(&server, &method, &url, None).await;
        if is_public {
            public.push(path.clone());
            assert_eq!(status, StatusCode::OK, "{method} {url} is public: {body}");
        } else {
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {url} without a token: {body}"
            );
            let (field, rule) = error_of(&body);
            assert_eq!(field.as_deref(), Some("authorization"), "{body}");
            assert_eq!(rule, "missing_token", "{body}");
            let documented_401 = &op["responses"]["401"];
            assert!(
                documented_401.is_object(),
                "{method} {path}: 401 is not documented"
            );
        }
    }
    public.sort();
    assert_eq!(public, ["/healthz", "/v1/openapi.json"]);
}

#[tokio::test]
async fn the_documented_bounds_are_the_servers() {
    let store = Store::new();
    let server = store.start();
    let doc = document(&server).await;
    let limit = &doc["components"]["parameters"]["limit"]["schema"];
    let max = limit["maximum"].as_u64().expect("limit has a maximum");
    let (status, _) = server
        .get(&format!("/v1/events?limit={max}"), Some(&store.admin))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "limit={max} is documented as allowed"
    );
    let (status, body) = server
        .get(&format!("/v1/events?limit={}", max + 1), Some(&store.admin))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_of(&body),
        (Some("limit".into()), "out_of_range".into())
    );

    // The event types the body may name are the ones the server takes.
    let types = doc["components"]["schemas"]["CloudEvent"]["properties"]["type"]["enum"]
        .as_array()
        .expect("an enum of event types");
    assert!(types.iter().any(|t| t == "carelog.contact.recorded"));
    let (status, body) = server
        .post(
            "/v1/events",
            &store.admin,
            &event("carelog.no.such", CONTACT_TIME, serde_json::json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!types.iter().any(|t| t == "carelog.no.such"));
    // The error body has the documented shape.
    let required = &doc["components"]["schemas"]["Error"]["properties"]["error"]["required"];
    for key in required.as_array().expect("required") {
        let key = key.as_str().expect("a name");
        assert!(body["error"].get(key).is_some(), "{key} missing: {body}");
    }
}
