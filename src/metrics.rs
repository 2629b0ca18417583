//! The counters `/metrics` shows, written in the Prometheus text format (0.0.4) by
//! `prometheus-client`.
//!
//! The crate owns the exposition: names, `_total` suffixes, label and HELP escaping, bucket
//! bounds written as Go clients write them, the `+Inf` bucket. The plain counters and the gauge
//! are its own lock-free types. The two updated on every frame and every request (the delivery
//! histogram, once per message per socket, and the responses by status) are small atomic types
//! of ours that the crate encodes: its `Histogram` takes a mutex per observation and its
//! `Family` hashes the labels under a read lock per increment. Measured in release builds on
//! two cores: an observation here costs ~6 ns (~13 ns on two contending threads) against
//! ~10-15 ns (~21-27 ns) for the crate's histogram, and a response ~3 ns against ~50 ns.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering::Relaxed},
    },
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeMetric, MetricEncoder, NoLabelSet, prometheus_text},
    metrics::{MetricType, counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// The `Content-Type` of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the latency histograms' buckets (post→delivery, commits).
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// HTTP status codes counted: 100 to 599.
const STATUSES: usize = 500;

/// This instance's counters. Updating one is a relaxed atomic add: no lock, no allocation.
///
/// Each handle below shares its value with the copy registered in `registry`; the crate
/// appends `_total` to counters, so `natter_deliveries` is exported as
/// `natter_deliveries_total`.
pub struct Metrics {
    /// `natter_sockets_open`
    sockets_open: Gauge,
    /// `natter_streams_open`: streamed rooms (pages without JavaScript) and event streams.
    streams_open: Gauge,
    /// `natter_socket_upgrades_total`
    socket_upgrades: Counter,
    /// `natter_messages_posted_total`
    messages_posted: Counter,
    /// `natter_resyncs_total`: sockets that fell behind their hub and caught up from the store.
    resyncs: Counter,
    /// `natter_fanout_writes_total`: frames a room's writer wrote to a socket without waking
    /// its task (`chat::fanout`).
    fanout_writes: Counter,
    /// `natter_fanout_handbacks_total`: sockets a room's writer handed back to their task (the
    /// connection did not take a frame whole, a gap, the task was busy, the writer lagged).
    fanout_handbacks: Counter,
    /// `natter_gap_fills_total`: a later message arrived before an earlier one, which was read
    /// from the store.
    gap_fills: Counter,
    /// `natter_notifications_received_total`: notifications from other instances received by
    /// this one (PostgreSQL NOTIFY or NATS).
    notifications: Counter,
    /// `natter_listener_reconnects_total`: times the listener lost its connection and listened
    /// again (each followed by a full resync: what was notified meanwhile is gone).
    listener_reconnects: Counter,
    /// `natter_bus_messages_sent_total`: messages this instance sent to the others (either bus).
    bus_sent: Counter,
    /// `natter_bus_messages_received_total`: messages from the others (either bus).
    bus_received: Counter,
    /// `natter_bus_fallbacks_total`: times NATS went away and this instance fell back to the
    /// database poll until it came back.
    bus_fallbacks: Counter,
    /// `natter_hub_catch_ups_total`: times a hub read from the store events it was not handed
    /// (other instances' posts under NOTIFY, gaps, the poll): database reads per post.
    hub_catch_ups: Counter,
    /// `natter_bus_up`: 1 while a bus carries news between instances (NOTIFY: always; NATS:
    /// while connected), 0 while NATS is away (and on SQLite, which has no bus).
    bus_up: Gauge,
    /// `natter_http_responses_total{status}`
    http: HttpResponses,
    /// `natter_pushes_sent_total`, `natter_pushes_failed_total`, `natter_pushes_dropped_total`:
    /// Web Push requests a push service accepted, those it refused or that did not reach it,
    /// and messages not pushed because the push queue was full.
    pushes: [Counter; 3],
    /// `natter_delivery_latency_seconds`, and `natter_deliveries_total` (its count).
    latency: Latency,
    /// `natter_store_commit_seconds`: how long each batch of posts took to commit.
    commits: Latency,
    /// What `render` encodes: a second handle on each of the above.
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            sockets_open: Gauge::default(),
            streams_open: Gauge::default(),
            socket_upgrades: Counter::default(),
            messages_posted: Counter::default(),
            resyncs: Counter::default(),
            fanout_writes: Counter::default(),
            fanout_handbacks: Counter::default(),
            gap_fills: Counter::default(),
            notifications: Counter::default(),
            listener_reconnects: Counter::default(),
            bus_sent: Counter::default(),
            bus_received: Counter::default(),
            bus_fallbacks: Counter::default(),
            hub_catch_ups: Counter::default(),
            bus_up: Gauge::default(),
            http: HttpResponses::default(),
            pushes: Default::default(),
            latency: Latency::default(),
            commits: Latency::default(),
            registry: Registry::default(),
        };
        // The crate adds each HELP text's final period.
        let r = &mut m.registry;
        r.register(
            "natter_sockets_open",
            "Open live sockets",
            m.sockets_open.clone(),
        );
        r.register(
            "natter_streams_open",
            "Open live streams (pages without JavaScript, Server-Sent Events)",
            m.streams_open.clone(),
        );
        r.register(
            "natter_socket_upgrades",
            "Live sockets opened",
            m.socket_upgrades.clone(),
        );
        r.register(
            "natter_messages_posted",
            "Messages committed by this instance",
            m.messages_posted.clone(),
        );
        r.register(
            "natter_deliveries",
            "Message frames sent to sockets",
            Deliveries(m.latency.clone()),
        );
        r.register(
            "natter_resyncs",
            "Sockets that overflowed their queue and resynced from the store",
            m.resyncs.clone(),
        );
        r.register(
            "natter_fanout_writes",
            "Frames a room's writer wrote to a socket without waking its task",
            m.fanout_writes.clone(),
        );
        r.register(
            "natter_fanout_handbacks",
            "Sockets a room's writer handed back to their task",
            m.fanout_handbacks.clone(),
        );
        r.register(
            "natter_gap_fills",
            "Message gaps filled from the store",
            m.gap_fills.clone(),
        );
        r.register(
            "natter_notifications_received",
            "Notifications from other instances received (PostgreSQL NOTIFY or NATS)",
            m.notifications.clone(),
        );
        r.register(
            "natter_listener_reconnects",
            "Times the notification listener reconnected after losing its connection",
            m.listener_reconnects.clone(),
        );
        r.register(
            "natter_bus_messages_sent",
            "Messages sent to other instances (PostgreSQL NOTIFY or NATS)",
            m.bus_sent.clone(),
        );
        r.register(
            "natter_bus_messages_received",
            "Messages received from other instances (PostgreSQL NOTIFY or NATS)",
            m.bus_received.clone(),
        );
        r.register(
            "natter_bus_fallbacks",
            "Times NATS went away and live updates between instances fell back to the database poll",
            m.bus_fallbacks.clone(),
        );
        r.register(
            "natter_hub_catch_ups",
            "Times a hub read events from the store that it was not handed",
            m.hub_catch_ups.clone(),
        );
        r.register(
            "natter_bus_up",
            "Whether a bus carries live updates between instances (1) or only the poll does (0)",
            m.bus_up.clone(),
        );
        r.register(
            "natter_http_responses",
            "HTTP responses by status code",
            m.http.clone(),
        );
        r.register(
            "natter_pushes_sent",
            "Web Push messages accepted by a push service",
            m.pushes[0].clone(),
        );
        r.register(
            "natter_pushes_failed",
            "Web Push messages a push service refused or that did not reach it",
            m.pushes[1].clone(),
        );
        r.register(
            "natter_pushes_dropped",
            "Messages not pushed because the push queue was full",
            m.pushes[2].clone(),
        );
        r.register(
            "natter_delivery_latency_seconds",
            "Time from a post's commit to its frame being written to a socket",
            m.latency.clone(),
        );
        // A post reaches nobody before its commit, so this is the floor under the delivery
        // latency; on SQLite (`synchronous=FULL`) it includes the disk's fsync.
        r.register(
            "natter_store_commit_seconds",
            "Time the post writer took to commit a batch of posts, its fsync included",
            m.commits.clone(),
        );
        m
    }
}

impl Metrics {
    /// Counts a socket upgrade, whether or not the socket then stays open.
    pub fn socket_upgraded(&self) {
        self.socket_upgrades.inc();
    }

    /// Counts an open socket until the returned guard is dropped, however its task ends.
    pub fn socket_opened(&self) -> OpenSocket<'_> {
        self.sockets_open.inc();
        OpenSocket(&self.sockets_open)
    }

    /// Counts an open stream until the returned guard is dropped.
    pub fn stream_opened(&self) -> OpenSocket<'_> {
        self.streams_open.inc();
        OpenSocket(&self.streams_open)
    }

    /// Counts messages this instance committed.
    pub fn posted(&self, messages: u64) {
        self.messages_posted.inc_by(messages);
    }

    /// Records the time from a post's commit to its frame leaving for one socket.
    pub fn delivered(&self, latency: Duration) {
        self.latency.observe(latency);
    }

    /// Records how long a batch of posts took to commit (its transaction, from the first
    /// statement to the end of the commit).
    pub fn committed(&self, took: Duration) {
        self.commits.observe(took);
    }

    /// Counts a socket that fell behind its hub and resynced from the store.
    pub fn resynced(&self) {
        self.resyncs.inc();
    }

    /// Counts frames a room's writer wrote, and sockets it handed back to their task.
    pub fn fanned_out(&self, writes: u64, handbacks: u64) {
        self.fanout_writes.inc_by(writes);
        self.fanout_handbacks.inc_by(handbacks);
    }

    /// Counts a gap in a socket's messages filled from the store.
    pub fn gap_filled(&self) {
        self.gap_fills.inc();
    }

    /// Counts a notification from another instance.
    pub fn notified(&self) {
        self.notifications.inc();
    }

    /// Counts a message sent to the other instances.
    pub fn bus_sent(&self) {
        self.bus_sent.inc();
    }

    /// Counts a message received from the other instances.
    pub fn bus_received(&self) {
        self.bus_received.inc();
    }

    /// Counts a hub's read of events it was not handed.
    pub fn hub_caught_up(&self) {
        self.hub_catch_ups.inc();
    }

    /// Whether the bus carries news between instances now.
    pub fn bus_up(&self, up: bool) {
        self.bus_up.set(i64::from(up));
    }

    /// NATS went away: counts a fallback to the poll.
    pub fn bus_fell_back(&self) {
        self.bus_up(false);
        self.bus_fallbacks.inc();
    }

    /// Counts a reconnect of the notification listener.
    pub fn listener_reconnected(&self) {
        self.listener_reconnects.inc();
    }

    /// Counts a push a push service accepted.
    pub fn push_sent(&self) {
        self.pushes[0].inc();
    }

    /// Counts a push that failed (refused, or no answer).
    pub fn push_failed(&self) {
        self.pushes[1].inc();
    }

    /// Counts a message not pushed because the push queue was full.
    pub fn push_dropped(&self) {
        self.pushes[2].inc();
    }

    /// Counts a response by its status code.
    pub fn http_response(&self, status: u16) {
        self.http.count(status);
    }

    /// The Prometheus text exposition ([`CONTENT_TYPE`]).
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::with_capacity(4096);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Keeps a socket counted in `natter_sockets_open` while it lives.
pub struct OpenSocket<'a>(&'a Gauge);

impl Drop for OpenSocket<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A latency histogram (post→delivery; the post writer's commits): one relaxed add to a bucket and one to the sum per
/// observation, where the crate's `Histogram` would lock a mutex.
#[derive(Clone, Debug, Default)]
struct Latency(Arc<LatencyCounts>);

#[derive(Debug, Default)]
struct LatencyCounts {
    /// Observations per bucket (not cumulative: the encoder adds them up); the last is +Inf.
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Latency {
    fn observe(&self, latency: Duration) {
        let secs = latency.as_secs_f64();
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.0.buckets[slot].fetch_add(1, Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.0.sum_micros.fetch_add(micros, Relaxed);
    }

    /// Observations so far: the sum of the buckets, so there is no count to add to on the hot
    /// path and the `+Inf` bucket always equals `_count`.
    fn count(&self) -> u64 {
        self.0.buckets.iter().map(|n| n.load(Relaxed)).sum()
    }
}

impl EncodeMetric for Latency {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        let counts: [u64; LATENCY_BUCKETS.len() + 1] =
            std::array::from_fn(|i| self.0.buckets[i].load(Relaxed));
        let buckets: [(f64, u64); LATENCY_BUCKETS.len()] =
            std::array::from_fn(|i| (LATENCY_BUCKETS[i], counts[i]));
        let sum = self.0.sum_micros.load(Relaxed) as f64 / 1e6;
        encoder.encode_histogram::<NoLabelSet>(sum, counts.iter().sum(), &buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// `natter_deliveries_total`: every delivery is observed once by the latency histogram, so its
/// count is the number of frames sent, with no counter of its own to add to.
#[derive(Debug)]
struct Deliveries(Latency);

impl EncodeMetric for Deliveries {
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        encoder.encode_counter::<NoLabelSet, _, u64>(&self.0.count(), None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

/// HTTP responses by status: a fixed slot per code (index = code - 100), so counting one is an
/// add, with no lock or lookup (the crate's `Family` would hash the labels under a read lock).
#[derive(Clone, Debug)]
struct HttpResponses(Arc<[AtomicU64; STATUSES]>);

impl Default for HttpResponses {
    fn default() -> Self {
        Self(Arc::new(std::array::from_fn(|_| AtomicU64::new(0))))
    }
}

impl HttpResponses {
    fn count(&self, status: u16) {
        if let Some(slot) = self.0.get(usize::from(status).wrapping_sub(100)) {
            slot.fetch_add(1, Relaxed);
        }
    }
}

impl EncodeMetric for HttpResponses {
    /// One series per status seen, as a counter family labelled `status`.
    fn encode(&self, mut encoder: MetricEncoder) -> fmt::Result {
        for (status, n) in (100u16..).zip(self.0.iter()) {
            let n = n.load(Relaxed);
            if n > 0 {
                encoder
                    .encode_family(&[("status", status)])?
                    .encode_counter::<NoLabelSet, _, u64>(&n, None)?;
            }
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
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
        m.committed(Duration::from_millis(3));
        let text = m.render().unwrap();
        assert!(
            text.contains("natter_http_responses_total{status=\"200\"} 2"),
            "{text}"
        );
        assert!(text.contains("natter_http_responses_total{status=\"404\"} 1"));
        assert!(text.contains("natter_delivery_latency_seconds_bucket{le=\"0.001\"} 1"));
        assert!(text.contains("natter_delivery_latency_seconds_bucket{le=\"+Inf\"} 2"));
        assert!(text.contains("natter_deliveries_total 2"));
        assert!(text.contains("natter_store_commit_seconds_bucket{le=\"0.002\"} 0"));
        assert!(text.contains("natter_store_commit_seconds_bucket{le=\"0.005\"} 1"));
        assert!(text.contains("natter_store_commit_seconds_count 1"));
    }

    #[test]
    fn an_open_socket_is_counted_until_its_guard_drops() {
        let m = Metrics::default();
        let first = m.socket_opened();
        let second = m.socket_opened();
        assert!(m.render().unwrap().contains("\nnatter_sockets_open 2\n"));
        drop(first);
        drop(second);
        assert!(m.render().unwrap().contains("\nnatter_sockets_open 0\n"));
    }

    /// Dashboards and alerts query these exact names, types, labels and bounds: a change here
    /// (a crate upgrade included) must be deliberate.
    #[test]
    fn the_exposition_keeps_every_series_dashboards_use() {
        let m = Metrics::default();
        m.socket_upgraded();
        let _open = m.socket_opened();
        m.posted(3);
        m.resynced();
        m.gap_filled();
        m.notified();
        m.listener_reconnected();
        m.bus_sent();
        m.bus_received();
        m.bus_fell_back();
        m.hub_caught_up();
        m.http_response(101);
        m.http_response(303);
        m.http_response(600);
        m.delivered(Duration::from_micros(300));
        m.delivered(Duration::from_millis(3));
        m.delivered(Duration::from_millis(4));
        m.delivered(Duration::from_secs(3));
        let expected = r#"# HELP natter_sockets_open Open live sockets.
# TYPE natter_sockets_open gauge
natter_sockets_open 1
# HELP natter_streams_open Open live streams (pages without JavaScript, Server-Sent Events).
# TYPE natter_streams_open gauge
natter_streams_open 0
# HELP natter_socket_upgrades_total Live sockets opened.
# TYPE natter_socket_upgrades_total counter
natter_socket_upgrades_total 1
# HELP natter_messages_posted_total Messages committed by this instance.
# TYPE natter_messages_posted_total counter
natter_messages_posted_total 3
# HELP natter_deliveries_total Message frames sent to sockets.
# TYPE natter_deliveries_total counter
natter_deliveries_total 4
# HELP natter_resyncs_total Sockets that overflowed their queue and resynced from the store.
# TYPE natter_resyncs_total counter
natter_resyncs_total 1
# HELP natter_fanout_writes_total Frames a room's writer wrote to a socket without waking its task.
# TYPE natter_fanout_writes_total counter
natter_fanout_writes_total 0
# HELP natter_fanout_handbacks_total Sockets a room's writer handed back to their task.
# TYPE natter_fanout_handbacks_total counter
natter_fanout_handbacks_total 0
# HELP natter_gap_fills_total Message gaps filled from the store.
# TYPE natter_gap_fills_total counter
natter_gap_fills_total 1
# HELP natter_notifications_received_total Notifications from other instances received (PostgreSQL NOTIFY or NATS).
# TYPE natter_notifications_received_total counter
natter_notifications_received_total 1
# HELP natter_listener_reconnects_total Times the notification listener reconnected after losing its connection.
# TYPE natter_listener_reconnects_total counter
natter_listener_reconnects_total 1
# HELP natter_bus_messages_sent_total Messages sent to other instances (PostgreSQL NOTIFY or NATS).
# TYPE natter_bus_messages_sent_total counter
natter_bus_messages_sent_total 1
# HELP natter_bus_messages_received_total Messages received from other instances (PostgreSQL NOTIFY or NATS).
# TYPE natter_bus_messages_received_total counter
natter_bus_messages_received_total 1
# HELP natter_bus_fallbacks_total Times NATS went away and live updates between instances fell back to the database poll.
# TYPE natter_bus_fallbacks_total counter
natter_bus_fallbacks_total 1
# HELP natter_hub_catch_ups_total Times a hub read events from the store that it was not handed.
# TYPE natter_hub_catch_ups_total counter
natter_hub_catch_ups_total 1
# HELP natter_bus_up Whether a bus carries live updates between instances (1) or only the poll does (0).
# TYPE natter_bus_up gauge
natter_bus_up 0
# HELP natter_http_responses_total HTTP responses by status code.
# TYPE natter_http_responses_total counter
natter_http_responses_total{status="101"} 1
natter_http_responses_total{status="303"} 1
# HELP natter_pushes_sent_total Web Push messages accepted by a push service.
# TYPE natter_pushes_sent_total counter
natter_pushes_sent_total 0
# HELP natter_pushes_failed_total Web Push messages a push service refused or that did not reach it.
# TYPE natter_pushes_failed_total counter
natter_pushes_failed_total 0
# HELP natter_pushes_dropped_total Messages not pushed because the push queue was full.
# TYPE natter_pushes_dropped_total counter
natter_pushes_dropped_total 0
# HELP natter_delivery_latency_seconds Time from a post's commit to its frame being written to a socket.
# TYPE natter_delivery_latency_seconds histogram
natter_delivery_latency_seconds_bucket{le="0.0005"} 1
natter_delivery_latency_seconds_bucket{le="0.001"} 1
natter_delivery_latency_seconds_bucket{le="0.002"} 1
natter_delivery_latency_seconds_bucket{le="0.005"} 3
natter_delivery_latency_seconds_bucket{le="0.01"} 3
natter_delivery_latency_seconds_bucket{le="0.025"} 3
natter_delivery_latency_seconds_bucket{le="0.05"} 3
natter_delivery_latency_seconds_bucket{le="0.1"} 3
natter_delivery_latency_seconds_bucket{le="0.25"} 3
natter_delivery_latency_seconds_bucket{le="0.5"} 3
natter_delivery_latency_seconds_bucket{le="1"} 3
natter_delivery_latency_seconds_bucket{le="2.5"} 3
natter_delivery_latency_seconds_bucket{le="+Inf"} 4
natter_delivery_latency_seconds_sum 3.0073
natter_delivery_latency_seconds_count 4
# HELP natter_store_commit_seconds Time the post writer took to commit a batch of posts, its fsync included.
# TYPE natter_store_commit_seconds histogram
natter_store_commit_seconds_bucket{le="0.0005"} 0
natter_store_commit_seconds_bucket{le="0.001"} 0
natter_store_commit_seconds_bucket{le="0.002"} 0
natter_store_commit_seconds_bucket{le="0.005"} 0
natter_store_commit_seconds_bucket{le="0.01"} 0
natter_store_commit_seconds_bucket{le="0.025"} 0
natter_store_commit_seconds_bucket{le="0.05"} 0
natter_store_commit_seconds_bucket{le="0.1"} 0
natter_store_commit_seconds_bucket{le="0.25"} 0
natter_store_commit_seconds_bucket{le="0.5"} 0
natter_store_commit_seconds_bucket{le="1"} 0
natter_store_commit_seconds_bucket{le="2.5"} 0
natter_store_commit_seconds_bucket{le="+Inf"} 0
natter_store_commit_seconds_sum 0.0
natter_store_commit_seconds_count 0
"#;
        assert_eq!(m.render().unwrap(), expected);
    }
}
