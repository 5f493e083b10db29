//! Thin, infallible wrappers over the browser: every call that can throw (storage in private
//! mode, missing APIs) degrades to `None` instead of reaching the host page.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Storage, Window};

pub fn window() -> Option<Window> {
    web_sys::window()
}

pub fn document() -> Option<Document> {
    window()?.document()
}

pub fn now() -> f64 {
    js_sys::Date::now()
}

fn storage() -> Option<Storage> {
    window()?.local_storage().ok().flatten()
}

pub fn load(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

pub fn save(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

pub fn forget(key: &str) {
    if let Some(s) = storage() {
        let _ = s.remove_item(key);
    }
}

/// A random (version 4) UUID. `Math.random` is enough here: ids only need to be unique, and
/// a collision would merge two events, never expose anything.
pub fn uuid4() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        let r = (js_sys::Math::random() * 16.0) as usize & 15;
        let nibble = match i {
            12 => 4,
            16 => 8 | (r & 3),
            _ => r,
        };
        out.push(HEX[nibble] as char);
    }
    out
}

pub fn log(msg: &str) {
    web_sys::console::log_2(&JsValue::from_str("[maidian]"), &JsValue::from_str(msg));
}

pub fn href() -> String {
    window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default()
}

pub fn title() -> String {
    document().map(|d| d.title()).unwrap_or_default()
}

pub fn referrer() -> String {
    document().map(|d| d.referrer()).unwrap_or_default()
}

pub fn user_agent() -> String {
    window()
        .and_then(|w| w.navigator().user_agent().ok())
        .unwrap_or_default()
}

pub fn do_not_track() -> bool {
    window()
        .map(|w| w.navigator().do_not_track() == "1")
        .unwrap_or(false)
}

fn size(w: f64, h: f64) -> String {
    let mut s = String::new();
    crate::json::push_int(&mut s, w as i64);
    s.push('x');
    crate::json::push_int(&mut s, h as i64);
    s
}

pub fn screen_size() -> Option<String> {
    let screen = window()?.screen().ok()?;
    Some(size(
        f64::from(screen.width().ok()?),
        f64::from(screen.height().ok()?),
    ))
}

pub fn viewport_height() -> f64 {
    window()
        .and_then(|w| w.inner_height().ok())
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0)
}

pub fn viewport_size() -> Option<String> {
    let w = window()?;
    Some(size(w.inner_width().ok()?.as_f64()?, viewport_height()))
}

pub fn scroll_y() -> f64 {
    window().and_then(|w| w.scroll_y().ok()).unwrap_or(0.0)
}

pub fn document_height() -> f64 {
    document()
        .and_then(|d| d.document_element())
        .map(|e| f64::from(e.scroll_height()))
        .unwrap_or(0.0)
}

pub fn is_hidden() -> bool {
    document()
        .map(|d| d.visibility_state() == web_sys::VisibilityState::Hidden)
        .unwrap_or(false)
}

pub fn is_loaded() -> bool {
    document()
        .map(|d| d.ready_state() == "complete")
        .unwrap_or(true)
}

/// Page load time from Navigation Timing (`loadEventEnd - startTime`), in ms.
pub fn load_time() -> Option<i64> {
    let perf = window()?.performance()?;
    let entry = perf.get_entries_by_type("navigation").get(0);
    if entry.is_undefined() {
        return None;
    }
    let num = |k: &str| {
        js_sys::Reflect::get(&entry, &JsValue::from_str(k))
            .ok()?
            .as_f64()
    };
    let end = num("loadEventEnd")?;
    (end > 0.0).then(|| (end - num("startTime").unwrap_or(0.0)) as i64)
}

/// `JSON.stringify(v)`, or `None` for values it cannot or will not write.
pub fn stringify(v: &JsValue) -> Option<String> {
    js_sys::JSON::stringify(v).ok()?.as_string()
}

/// Reads an option: `obj[key]` when it is set.
pub fn get(obj: &JsValue, key: &str) -> Option<JsValue> {
    let v = js_sys::Reflect::get(obj, &JsValue::from_str(key)).ok()?;
    (!v.is_undefined() && !v.is_null()).then_some(v)
}

pub fn get_str(obj: &JsValue, key: &str) -> Option<String> {
    get(obj, key)?.as_string()
}

pub fn get_f64(obj: &JsValue, key: &str) -> Option<f64> {
    get(obj, key)?.as_f64()
}

pub fn get_bool(obj: &JsValue, key: &str) -> Option<bool> {
    get(obj, key)?.as_bool()
}

/// The object's own enumerable `[key, value]` pairs.
pub fn entries(obj: &JsValue) -> Vec<(String, JsValue)> {
    let Some(o) = obj.dyn_ref::<js_sys::Object>() else {
        return Vec::new();
    };
    js_sys::Object::entries(o)
        .iter()
        .filter_map(|pair| {
            let pair: js_sys::Array = pair.dyn_into().ok()?;
            Some((pair.get(0).as_string()?, pair.get(1)))
        })
        .collect()
}
