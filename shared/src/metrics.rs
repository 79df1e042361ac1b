//! Metric names and the counter seam.
//!
//! Every Palisade metric is a counter named `palisade_<filter>_<what>_total`. Envoy exports wasm
//! metrics on `/stats/prometheus` under that exact name (no `envoy_` prefix). The core only names
//! metrics and says when to count; the filter crate defines them once per VM through the host.

/// The full name of a Palisade counter: `palisade_<filter>_<what>_total`.
pub fn counter_name(filter: &str, what: &str) -> String {
    format!(
        "palisade_{}_{}_total",
        filter.replace('-', "_"),
        what.replace(['-', '.'], "_")
    )
}

/// A counter the core can increment; the filter backs it with the host's metrics.
pub trait Counter {
    fn add(&self, delta: u64);
    fn inc(&self) {
        self.add(1)
    }
}
