//! The console's HTTP contract on `server::router` with `oneshot` (the browser tests in
//! `tests/e2e/console.rs` drive the pages): the login limit per address, who sees which tenant,
//! writes only from the console's own pages, and the security headers of every answer.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::admin::tests::{ACME_READ, ADMIN, hub};

/// One request to `app`, the router of a test's hub, made once per test: the console's sessions
/// live in the router (`server::router_of`), as in a running hub.
async fn send(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn login(token: &str, from: &str) -> Request<Body> {
    let mut req = Request::post("/console/login")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header("sec-fetch-site", "same-origin")
        .body(Body::from(format!("token={token}")))
        .unwrap();
    let addr: SocketAddr = from.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(addr));
    req
}

fn cookie_of(headers: &axum::http::HeaderMap) -> String {
    headers[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::get(path)
        .header(header::COOKIE, cookie)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn failed_logins_lock_out_their_address_even_for_the_right_token() {
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::server::router(hub(dir.path()).await);
    for _ in 0..super::session::MAX_FAILURES {
        let (status, _, body) = send(&hub, login("guess", "192.0.2.7:5000")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(body.contains("not one this hub accepts"));
    }
    let (status, headers, body) = send(&hub, login(ADMIN, "192.0.2.7:5001")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "no session for a locked-out address"
    );
    assert!(body.contains("Too many failed logins"));
    // Another address logs in.
    let (status, headers, _) = send(&hub, login(ADMIN, "198.51.100.1:5000")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test]
async fn a_tenant_token_s_console_shows_its_tenant_alone_and_replays_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::server::router(hub(dir.path()).await);
    let (_, headers, _) = send(&hub, login(ACME_READ, "192.0.2.9:1")).await;
    let cookie = cookie_of(&headers);
    let (status, headers, _) = send(&hub, get("/console/tenants/acme", &cookie)).await;
    assert_eq!(status, StatusCode::OK);
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY");
    let (status, _, body) = send(&hub, get("/console/tenants/beta", &cookie)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, unknown) = send(&hub, get("/console/tenants/nobody", &cookie)).await;
    assert_eq!(
        body.replace("beta", "X"),
        unknown.replace("nobody", "X"),
        "the same 404 as a tenant that does not exist"
    );
    let (_, _, tenants) = send(&hub, get("/console/tenants", &cookie)).await;
    assert!(
        tenants.contains("acme") && !tenants.contains(">beta<"),
        "{tenants}"
    );
    let replay = Request::post("/console/dead/replay")
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("nonce=x&confirm=0"))
        .unwrap();
    let (status, _, _) = send(&hub, replay).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a read token replays nothing"
    );
    let (status, _, _) = send(&hub, get("/console/tenants/acme/credentials", &cookie)).await;
    assert_eq!(status, StatusCode::OK, "it sees which credentials are set");
}

#[tokio::test]
async fn writes_from_elsewhere_and_pages_without_a_session_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::server::router(hub(dir.path()).await);
    let (_, headers, _) = send(&hub, login(ADMIN, "192.0.2.10:1")).await;
    let cookie = cookie_of(&headers);
    for (name, value) in [
        ("sec-fetch-site", "cross-site"),
        ("origin", "https://evil.example"),
    ] {
        let req = Request::post("/console/logout")
            .header(header::COOKIE, &cookie)
            .header(header::HOST, "hub.test")
            .header(name, value)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            send(&hub, req).await.0,
            StatusCode::FORBIDDEN,
            "{name}: {value}"
        );
    }
    // The Origin of the hub itself is fine where a browser sends no Sec-Fetch-Site.
    let req = Request::post("/console/logout")
        .header(header::COOKIE, &cookie)
        .header(header::HOST, "hub.test")
        .header(header::ORIGIN, "http://hub.test")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&hub, req).await.0, StatusCode::SEE_OTHER);
    // Logged out: the session is gone.
    let (status, headers, _) = send(&hub, get("/console/deliveries", &cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers[header::LOCATION], "/console/login");
}

/// An unknown console page, an unknown asset, a method a page does not take and a refused
/// write: each is the console's error page with a way back, under the same security headers as
/// every page.
#[tokio::test]
async fn unknown_pages_and_refusals_are_pages_with_the_security_headers() {
    let dir = tempfile::tempdir().unwrap();
    let hub = crate::server::router(hub(dir.path()).await);
    let (_, headers, _) = send(&hub, login(ADMIN, "192.0.2.11:1")).await;
    let cookie = cookie_of(&headers);
    let cross_site = Request::post("/console/logout")
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    let wrong_method = Request::delete("/console/deliveries")
        .header(header::COOKIE, &cookie)
        .header("sec-fetch-site", "same-origin")
        .body(Body::empty())
        .unwrap();
    for (req, expected) in [
        (get("/console/no-such-page", &cookie), StatusCode::NOT_FOUND),
        (get("/console/no-such-page", ""), StatusCode::NOT_FOUND),
        (
            get("/console/tenants/acme/no/such/page", &cookie),
            StatusCode::NOT_FOUND,
        ),
        (
            get("/console/assets/nope.js", &cookie),
            StatusCode::NOT_FOUND,
        ),
        (wrong_method, StatusCode::METHOD_NOT_ALLOWED),
        (cross_site, StatusCode::FORBIDDEN),
    ] {
        let what = format!("{} {}", req.method(), req.uri());
        let (status, headers, body) = send(&hub, req).await;
        assert_eq!(status, expected, "{what}");
        for h in [
            header::CONTENT_SECURITY_POLICY,
            header::X_FRAME_OPTIONS,
            header::X_CONTENT_TYPE_OPTIONS,
        ] {
            assert!(headers.contains_key(&h), "{what}: {h} missing");
        }
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{what}"
        );
        assert!(
            body.contains("href=\"/console/deliveries\""),
            "{what}: a way back: {body}"
        );
    }
}
