//! Counters for `/metrics` (Prometheus text format). Plain atomics: updating one costs a few
//! nanoseconds and no lock, so they can sit on the delivery hot path.

use std::{
    fmt::Write,
    sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed},
    time::Duration,
};

/// Upper bounds (seconds) of the post→delivery latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
pub struct Metrics {
    sockets_open: AtomicI64,
    socket_upgrades: AtomicU64,
    messages_posted: AtomicU64,
    /// Message frames written to sockets (one per message per socket).
    deliveries: AtomicU64,
    /// Sockets that fell behind their hub and caught up from the store.
    resyncs: AtomicU64,
    /// Gaps filled from the store (a later message arrived before an earlier one).
    gap_fills: AtomicU64,
    /// Notifications from other instances received by this one's listener (PostgreSQL).
    notifications: AtomicU64,
    /// Times the listener lost its connection and listened again (each followed by a full
    /// resync: what was notified meanwhile is gone).
    listener_reconnects: AtomicU64,
    /// HTTP responses by status code (index = code - 100).
    http: HttpCounts,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_micros: AtomicU64,
}

struct HttpCounts([AtomicU64; 500]);

impl Default for HttpCounts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl Metrics {
    /// Counts a socket upgrade, whether or not the socket then stays open.
    pub fn socket_upgraded(&self) {
        self.socket_upgrades.fetch_add(1, Relaxed);
    }

    /// Counts an open socket until the returned guard is dropped, however its task ends.
    pub fn socket_opened(&self) -> OpenSocket<'_> {
        self.sockets_open.fetch_add(1, Relaxed);
        OpenSocket(&self.sockets_open)
    }

    /// Counts messages this instance committed.
    pub fn posted(&self, messages: u64) {
        self.messages_posted.fetch_add(messages, Relaxed);
    }

    /// Counts a socket that fell behind its hub and resynced from the store.
    pub fn resynced(&self) {
        self.resyncs.fetch_add(1, Relaxed);
    }

    /// Counts a gap in a socket's messages filled from the store.
    pub fn gap_filled(&self) {
        self.gap_fills.fetch_add(1, Relaxed);
    }

    /// Counts a notification from another instance.
    pub fn notified(&self) {
        self.notifications.fetch_add(1, Relaxed);
    }

    /// Counts a reconnect of the notification listener.
    pub fn listener_reconnected(&self) {
        self.listener_reconnects.fetch_add(1, Relaxed);
    }

    /// Counts a response by its status code.
    pub fn http_response(&self, status: u16) {
        if let Some(slot) = self.http.0.get(usize::from(status).wrapping_sub(100)) {
            slot.fetch_add(1, Relaxed);
        }
    }

    /// Records the time from a post's commit to its frame leaving for one socket.
    pub fn delivered(&self, latency: Duration) {
        self.deliveries.fetch_add(1, Relaxed);
        let secs = latency.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|b| secs <= *b) {
            self.latency_buckets[i].fetch_add(1, Relaxed);
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_sum_micros
            .fetch_add(latency.as_micros() as u64, Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut counter = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        counter(
            "natter_sockets_open",
            "Open live sockets.",
            "gauge",
            self.sockets_open.load(Relaxed).to_string(),
        );
        counter(
            "natter_socket_upgrades_total",
            "Live sockets opened.",
            "counter",
            self.socket_upgrades.load(Relaxed).to_string(),
        );
        counter(
            "natter_messages_posted_total",
            "Messages committed by this instance.",
            "counter",
            self.messages_posted.load(Relaxed).to_string(),
        );
        counter(
            "natter_deliveries_total",
            "Message frames sent to sockets.",
            "counter",
            self.deliveries.load(Relaxed).to_string(),
        );
        counter(
            "natter_resyncs_total",
            "Sockets that overflowed their queue and resynced from the store.",
            "counter",
            self.resyncs.load(Relaxed).to_string(),
        );
        counter(
            "natter_gap_fills_total",
            "Message gaps filled from the store.",
            "counter",
            self.gap_fills.load(Relaxed).to_string(),
        );
        counter(
            "natter_notifications_received_total",
            "Notifications from other instances received (PostgreSQL).",
            "counter",
            self.notifications.load(Relaxed).to_string(),
        );
        counter(
            "natter_listener_reconnects_total",
            "Times the notification listener reconnected after losing its connection.",
            "counter",
            self.listener_reconnects.load(Relaxed).to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP natter_http_responses_total HTTP responses by status code.\n# TYPE natter_http_responses_total counter"
        );
        for (i, n) in self.http.0.iter().enumerate() {
            let n = n.load(Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "natter_http_responses_total{{status=\"{}\"}} {n}",
                    i + 100
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP natter_delivery_latency_seconds Time from a post's commit to its frame being written to a socket.\n# TYPE natter_delivery_latency_seconds histogram"
        );
        let mut cumulative = 0;
        for (bound, n) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            cumulative += n.load(Relaxed);
            let _ = writeln!(
                out,
                "natter_delivery_latency_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(
            out,
            "natter_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "natter_delivery_latency_seconds_sum {}",
            self.latency_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "natter_delivery_latency_seconds_count {count}");
        out
    }
}

/// Keeps a socket counted in `natter_sockets_open` while it lives.
pub struct OpenSocket<'a>(&'a AtomicI64);

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.http_response(200);
        m.http_response(200);
        m.http_response(404);
        m.delivered(Duration::from_micros(700));
        m.delivered(Duration::from_secs(10));
        let text = m.render();
        assert!(
            text.contains("natter_http_responses_total{status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("natter_http_responses_total{status=\"404\"} 1"));
        assert!(text.contains("natter_delivery_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("natter_delivery_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("natter_deliveries_total 2"));
    }

    #[test]
    fn an_open_socket_is_counted_until_its_guard_drops() {
        let m = Metrics::default();
        let first = m.socket_opened();
        let second = m.socket_opened();
        assert!(m.render().contains("\nnatter_sockets_open 2\n"));
        drop(first);
        drop(second);
        assert!(m.render().contains("\nnatter_sockets_open 0\n"));
    }
}
