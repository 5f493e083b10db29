//! Automatic capture: the DOM listeners, each an owned `EventListener` that is removed when
//! dropped. Listeners read only what they record: element id, class and short text, never an
//! input's value; anything inside `[data-maidian-ignore]` is skipped.

use gloo_events::{EventListener, EventListenerOptions};
use wasm_bindgen::JsCast;
use web_sys::{Element, Event, EventTarget, HtmlFormElement, MouseEvent, PageTransitionEvent};

use crate::browser;
use crate::policy::clean_text;
use crate::tracker::{Shared, Tracker};

const INTERESTING: &str =
    "a,button,input,select,textarea,label,summary,[role=button],[data-maidian]";
const IGNORE: &str = "[data-maidian-ignore]";
/// Above this, an element's text is a whole region of the page, not a label.
const MAX_TEXT_SCAN: usize = 5_000;

fn listen(
    target: &EventTarget,
    name: &'static str,
    shared: &Shared,
    f: impl Fn(&mut Tracker, &Event) + 'static,
) -> EventListener {
    let weak = std::rc::Rc::downgrade(shared);
    let options = EventListenerOptions::run_in_capture_phase();
    EventListener::new_with_options(target, name, options, move |event| {
        if let Some(shared) = weak.upgrade() {
            if let Ok(mut t) = shared.try_borrow_mut() {
                f(&mut t, event);
            }
        }
    })
}

fn element_target(event: &Event) -> Option<Element> {
    let el: Element = event.target()?.dyn_into().ok()?;
    match el.closest(IGNORE) {
        Ok(Some(_)) => None,
        _ => Some(el),
    }
}

fn click(t: &mut Tracker, event: &Event) {
    let Some(target) = element_target(event) else {
        return;
    };
    let el = target.closest(INTERESTING).ok().flatten().unwrap_or(target);
    let tag = el.tag_name();
    let text = match tag.as_str() {
        "INPUT" | "TEXTAREA" | "SELECT" => None,
        _ => el
            .text_content()
            .filter(|s| s.len() <= MAX_TEXT_SCAN)
            .map(|s| clean_text(&s, 100)),
    };
    let (x, y) = event
        .dyn_ref::<MouseEvent>()
        .map_or((0, 0), |m| (m.page_x(), m.page_y()));
    let id = el.id();
    let class = el.get_attribute("class");
    t.record("click", |o| {
        o.opt_str("element_id", Some(&id))
            .opt_str("element_class", class.as_deref())
            .opt_str("element_text", text.as_deref())
            .int("x_position", i64::from(x))
            .int("y_position", i64::from(y));
    });
}

fn submit(t: &mut Tracker, event: &Event) {
    let Some(form) = element_target(event).and_then(|e| e.dyn_into::<HtmlFormElement>().ok())
    else {
        return;
    };
    let (id, name, action) = (form.id(), form.name(), form.action());
    t.record("form_submit", |o| {
        o.opt_str("element_id", Some(&id));
        let mut data = crate::json::Obj::new();
        data.opt_str("form_name", Some(&name))
            .opt_str("form_action", Some(&action));
        o.raw("custom_data", &data.finish());
    });
}

/// Registers every automatic listener; they live as long as the returned handles.
pub fn install(shared: &Shared) -> Vec<EventListener> {
    let (Some(window), Some(document)) = (browser::window(), browser::document()) else {
        return Vec::new();
    };
    let w: &EventTarget = window.as_ref();
    let d: &EventTarget = document.as_ref();
    let mut out = vec![
        listen(d, "click", shared, click),
        listen(d, "submit", shared, submit),
        listen(w, "scroll", shared, |t, _| t.scrolled()),
        listen(d, "visibilitychange", shared, |t, _| {
            if browser::is_hidden() {
                t.hidden()
            } else {
                t.shown()
            }
        }),
        listen(w, "pagehide", shared, |t, _| t.hidden()),
        listen(w, "pageshow", shared, |t, e| {
            let persisted = e
                .dyn_ref::<PageTransitionEvent>()
                .is_some_and(PageTransitionEvent::persisted);
            if persisted {
                t.shown();
                t.restored();
            }
        }),
        listen(w, "popstate", shared, |t, _| t.navigated()),
        listen(w, "hashchange", shared, |t, _| t.navigated()),
    ];
    if !browser::is_loaded() {
        let weak = std::rc::Rc::downgrade(shared);
        out.push(EventListener::once(w, "load", move |_| {
            // loadEventEnd is set only after the load handlers return.
            gloo_timers::callback::Timeout::new(0, move || {
                if let Some(shared) = weak.upgrade() {
                    shared.borrow_mut().initial_view();
                }
            })
            .forget();
        }));
    }
    out
}
