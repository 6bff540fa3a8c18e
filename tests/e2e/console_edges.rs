//! The console's edges, in a real headless Chromium on the shipped `hub.toml`: a row the live
//! tail adds shows a bidi control as the server-rendered rows do (`⟨U+202E⟩`, so `…gnp.exe`
//! cannot display as `…exe.png`), and a record whose key holds `/`, `?`, `#`, `%`, a space or
//! non-ASCII is linked to its own page from the delivery and from the records list.

use serde_json::json;

use crate::browser::Browser;
use crate::chain::shipped_hub;
use crate::console::{ADMIN, call, log_in, refusing_stand_in, send_call};
use crate::util::*;

#[tokio::test]
async fn live_tail_rows_show_bidi_controls_and_records_with_any_key_are_linked() {
    let hub = shipped_hub(refusing_stand_in().await.0).await;
    let base = hub.base();

    // The live tail: the row arrives through the page's script, not the server's template.
    let b = Browser::start("edges").await;
    log_in(&b, &base, ADMIN).await;
    b.wait_for("table#log", 10).await;
    b.client
        .goto(&format!("{base}/console/deliveries?live=1"))
        .await
        .unwrap();
    b.text_containing("#live-state", "following").await;
    let reversed = "invoice\u{202E}gnp.exe";
    send_call(&hub, &call(reversed, json!({}))).await;
    let rows = b.text_containing("#log-rows", "gnp.exe").await;
    assert!(
        rows.contains("invoice⟨U+202E⟩gnp.exe"),
        "the tail's row shows the control: {rows}"
    );
    assert!(!rows.contains('\u{202E}'), "{rows}");
    b.shot("tail-bidi").await;
    // The same row, rendered by the server, reads the same.
    b.client
        .goto(&format!("{base}/console/deliveries"))
        .await
        .unwrap();
    assert!(b.text("#log-rows").await.contains("invoice⟨U+202E⟩gnp.exe"));

    // Records whose keys a URL would misread, each linked to its own page.
    let keys = ["a/b", "q?x=1&y", "h#1", "p%41", "s p", "é-ü/ß", "</script>"];
    let mut deliveries = Vec::new();
    for key in keys {
        deliveries.push(send_call(&hub, &call(key, json!({}))).await);
    }
    wait_for(30, "the calls recorded", || async {
        let calls = hub.records("abc-healthcare", "call").await;
        keys.iter()
            .all(|k| calls.iter().any(|c| c["key"] == *k))
            .then_some(())
    })
    .await;
    for (key, delivery) in keys.iter().zip(&deliveries) {
        b.client
            .goto(&format!("{base}/console/deliveries/{delivery}"))
            .await
            .unwrap();
        let link = b
            .wait_for(
                "a[href^='/console/tenants/abc-healthcare/records/call/']",
                10,
            )
            .await;
        link.click().await.unwrap();
        let shown = b.text_containing("h1", key).await;
        assert!(
            shown.contains(key),
            "the delivery's record link for `{key}` opens its record: {shown}"
        );
    }
    b.client
        .goto(&format!(
            "{base}/console/tenants/abc-healthcare/records?kind=call"
        ))
        .await
        .unwrap();
    b.wait_for("table", 10).await;
    let hrefs = b
        .client
        .execute(
            "return [...document.querySelectorAll('td.ident a')].map(a => a.href)",
            vec![],
        )
        .await
        .unwrap();
    let hrefs: Vec<String> = serde_json::from_value(hrefs).unwrap();
    assert!(hrefs.len() >= keys.len(), "{hrefs:?}");
    for href in &hrefs {
        b.client.goto(href).await.unwrap();
        let title = b.text("h1").await;
        assert!(
            !title.contains("404"),
            "{href} is the record's page: {title}"
        );
    }
    b.close().await;
}
