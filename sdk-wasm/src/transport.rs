//! Getting a batch body to the collector: `fetch` with `keepalive` (so a send survives the page
//! closing), and `navigator.sendBeacon` when the page is being hidden or left. Both send
//! `text/plain` with no custom header, so no CORS preflight is needed.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestCredentials, RequestInit, Response};

use crate::browser;
use crate::policy::parse_retry_after;

/// Posts `body`; returns the HTTP status (0 when no answer came) and `Retry-After` in ms.
pub async fn post(url: &str, body: &str) -> (u16, Option<u32>) {
    let Some(window) = browser::window() else {
        return (0, None);
    };
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_body(&body.into());
    // `keepalive` is not in web-sys's stable API; set it as a plain property.
    let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &true.into());
    init.set_credentials(RequestCredentials::Omit);
    let Ok(answer) = JsFuture::from(window.fetch_with_str_and_init(url, &init)).await else {
        return (0, None);
    };
    let Ok(response) = answer.dyn_into::<Response>() else {
        return (0, None);
    };
    let retry_after = response
        .headers()
        .get("retry-after")
        .ok()
        .flatten()
        .and_then(|v| parse_retry_after(&v));
    (response.status(), retry_after)
}

/// Queues `body` with the browser's beacon; `false` when the browser refused it.
pub fn beacon(url: &str, body: &str) -> bool {
    browser::window()
        .and_then(|w| w.navigator().send_beacon_with_opt_str(url, Some(body)).ok())
        .unwrap_or(false)
}
