//! The wasm floor, and the cost of each host operation.
//!
//! With an empty configuration this HTTP filter lets everything through untouched: the cost any
//! proxy-wasm filter pays. Its configuration can switch on single host operations (a plain list
//! of words, e.g. `"request_headers metric"`), so `make bench` can show what each one adds:
//! `request_headers` (read the whole map into strings), `request_headers_raw` (read the whole
//! map and keep the host's buffer as it is), `request_header` (read one), `property`
//! (`source.address`), `shared_get`, `shared_cas` (read + compare-and-swap write), `metric`
//! (one counter increment), `response_headers` (read the whole map), `set_response_headers`
//! (replace the whole map), `set_response_header` (set one header), `time` (host clock),
//! `add11_each` (eleven security headers set one call each, `server` removed) and `add11_map`
//! (the same in one read and one replacement of the whole map), `remove_request_header`
//! (remove `authorization`, as the token filter does), `local_reply` (answer 429 with a JSON
//! body and three headers, as a rate-limit refusal does), `read_authorization` (read the
//! `authorization` header alone) and `add11_add` (the eleven headers added, not replaced, one
//! call each, and `server` removed: the cheapest way through the ABI to do what the native
//! `response_headers_to_add` twin does).
//!
//! Combinations of these are a lower bound: the host calls a filter doing a given job cannot do
//! without, with none of the filter's own work (`make bench` rows "host calls alone").

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType, MetricType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

#[derive(Default, Clone, Copy)]
struct Probes {
    request_headers: bool,
    request_headers_raw: bool,
    request_header: bool,
    property: bool,
    shared_get: bool,
    shared_cas: bool,
    metric: Option<u32>,
    response_headers: bool,
    set_response_headers: bool,
    set_response_header: bool,
    time: bool,
    add11_each: bool,
    add11_map: bool,
    remove_request_header: bool,
    local_reply: bool,
    read_authorization: bool,
    add11_add: bool,
}

#[derive(Default)]
struct Root {
    probes: Rc<Probes>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
            .ok()
            .flatten()
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&config);
        let has = |w: &str| {
            text.split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .any(|t| t == w)
        };
        self.probes = Rc::new(Probes {
            request_headers: has("request_headers"),
            request_headers_raw: has("request_headers_raw"),
            request_header: has("request_header"),
            property: has("property"),
            shared_get: has("shared_get"),
            shared_cas: has("shared_cas"),
            metric: if has("metric") {
                hostcalls::define_metric(MetricType::Counter, "palisade_bench_noop_total").ok()
            } else {
                None
            },
            response_headers: has("response_headers"),
            set_response_headers: has("set_response_headers"),
            set_response_header: has("set_response_header"),
            time: has("time"),
            add11_each: has("add11_each"),
            add11_map: has("add11_map"),
            remove_request_header: has("remove_request_header"),
            local_reply: has("local_reply"),
            read_authorization: has("read_authorization"),
            add11_add: has("add11_add"),
        });
        if self.probes.shared_cas {
            let _ = hostcalls::set_shared_data("palisade.bench", Some(&[0u8; 16]), None);
        }
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Noop(Rc::clone(&self.probes))))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map_type: u32, data: *mut *mut u8, size: *mut usize) -> u32;
}

/// The request header map as the host serializes it, without decoding it.
fn raw_request_headers() -> Option<Box<[u8]>> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes the address and size of a buffer it allocated in this module's
    // memory through the SDK's `proxy_on_memory_allocate` (a boxed `[u8]`), or leaves it null.
    let status = unsafe {
        proxy_get_header_map_pairs(MapType::HttpRequestHeaders as u32, &mut data, &mut size)
    };
    if status != 0 || data.is_null() {
        return None;
    }
    // SAFETY: as above; the buffer now belongs to this function's caller.
    Some(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(data, size)) })
}

struct Noop(Rc<Probes>);

impl Context for Noop {}

impl HttpContext for Noop {
    fn on_http_request_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let p = &self.0;
        if p.request_headers {
            let _ = hostcalls::get_map(MapType::HttpRequestHeaders);
        }
        if p.request_headers_raw {
            std::hint::black_box(raw_request_headers());
        }
        if p.request_header {
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, ":path");
        }
        if p.read_authorization {
            let _ = hostcalls::get_map_value(MapType::HttpRequestHeaders, "authorization");
        }
        if p.property {
            let _ = hostcalls::get_property(vec!["source", "address"]);
        }
        if p.time {
            let _ = hostcalls::get_current_time();
        }
        if p.shared_get || p.shared_cas {
            if let Ok((Some(v), cas)) = hostcalls::get_shared_data("palisade.bench") {
                if p.shared_cas {
                    let _ = hostcalls::set_shared_data("palisade.bench", Some(&v), cas);
                }
            }
        }
        if let Some(id) = p.metric {
            let _ = hostcalls::increment_metric(id, 1);
        }
        if p.remove_request_header {
            let _ = hostcalls::remove_map_value(MapType::HttpRequestHeaders, "authorization");
        }
        if p.local_reply {
            let body = br#"{"error":"rate_limited","message":"too many requests","status":429}"#;
            let headers = vec![
                ("content-type", "application/json"),
                ("cache-control", "no-store"),
                ("retry-after", "1"),
            ];
            if hostcalls::send_http_response(429, headers, Some(body)).is_ok() {
                return Action::Pause;
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _n: usize, _eos: bool) -> Action {
        let p = &self.0;
        if p.response_headers || p.set_response_headers {
            if let Ok(headers) = hostcalls::get_map(MapType::HttpResponseHeaders) {
                if p.set_response_headers {
                    let pairs: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let _ = hostcalls::set_map(MapType::HttpResponseHeaders, pairs);
                }
            }
        }
        if p.add11_each {
            for (k, v) in ELEVEN {
                let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, k, Some(v));
            }
            let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "server");
        }
        if p.add11_add {
            for (k, v) in ELEVEN {
                let _ = hostcalls::add_map_value(MapType::HttpResponseHeaders, k, v);
            }
            let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, "server");
        }
        if p.add11_map {
            if let Ok(headers) = hostcalls::get_map(MapType::HttpResponseHeaders) {
                let mut pairs: Vec<(&str, &str)> = headers
                    .iter()
                    .filter(|(k, _)| k != "server")
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                pairs.extend(ELEVEN);
                let _ = hostcalls::set_map(MapType::HttpResponseHeaders, pairs);
            }
        }
        if p.set_response_header {
            let _ = hostcalls::set_map_value(MapType::HttpResponseHeaders, "x-bench", Some("1"));
        }
        Action::Continue
    }
}

/// Eleven header writes, as a security-headers preset makes.
const ELEVEN: [(&str, &str); 11] = [
    ("cache-control", "no-store, max-age=0"),
    (
        "content-security-policy",
        "default-src 'self'; frame-ancestors 'none'",
    ),
    ("cross-origin-embedder-policy", "require-corp"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=()"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-frame-options", "deny"),
    ("x-permitted-cross-domain-policies", "none"),
];
