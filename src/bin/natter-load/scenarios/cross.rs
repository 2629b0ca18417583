//! Cross-instance: two natter instances on one PostgreSQL database. `--posts` messages
//! (3,000) are posted on A (HTTP form post, committed on PostgreSQL) one at a time, each
//! waited for on a socket on B, and the post→delivery p50 and p99 are reported with each
//! server's CPU (PostgreSQL's own CPU is in neither).
//!
//! There is no target. A message that does not arrive on B within 10 s ends the run with an
//! error.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use crate::{
    Options,
    client::{self, STAMP},
    report::{Cpu, Report, percentile},
    server::{Meter, Server},
};

pub(super) async fn cross(o: &Options) -> Result<Report, String> {
    let mut options = o.clone();
    options.db = "postgres".into();
    let a = Server::start(&options).await?;
    let b = a.another(o.pin).await?;
    let mut report = Report::new("cross", "postgres");
    let http = client::http();
    let poster = client::sign_up(&http, &a.base, "poster@bench.example", "poster").await?;
    let code = poster.create_room(&http, &a.base, "Cross").await?;
    let reader = client::sign_up(&http, &b.base, "reader@bench.example", "reader").await?;
    reader.join(&http, &b.base, &code).await?;
    let mut ws = client::connect(&b.base, &reader, &code, 0).await?;
    let n = o.posts.unwrap_or(3000);
    let mut lat: Vec<u32> = Vec::with_capacity(n);
    let (meter_a, meter_b) = (Meter::start(&a), Meter::start(&b));
    for i in 0..n {
        let sent = Instant::now();
        poster
            .say(
                &http,
                &a.base,
                &code,
                &format!("{STAMP}{} #{i}", client::now_us()),
            )
            .await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(t))))
                    if t.contains(&format!("#{i}<")) =>
                {
                    break;
                }
                Ok(Some(Ok(_))) => continue,
                _ => return Err(format!("message {i} did not arrive on B")),
            }
        }
        lat.push(sent.elapsed().as_micros() as u32);
    }
    let (on_a, on_b) = (meter_a.read(), meter_b.read());
    lat.sort_unstable();
    report.figure(
        "cross-instance post→delivery p50",
        percentile(&lat, 0.5) / 1000.0,
        "ms",
    );
    report.figure(
        "cross-instance post→delivery p99",
        percentile(&lat, 0.99) / 1000.0,
        "ms",
    );
    // Server A takes the posts, server B delivers them; the generator's CPU is read once.
    report.cpu("posting on A", &on_a, Some((n as u64, "message")));
    let on_b = Cpu {
        generator: None,
        ..on_b
    };
    report.cpu("delivering on B", &on_b, Some((n as u64, "message")));
    report.note(format!("{n} messages posted on A (HTTP form post, committed on PostgreSQL), received by a socket on B, one at a time"));
    report.note("PostgreSQL's own CPU is in neither server's figure");
    Ok(report)
}
