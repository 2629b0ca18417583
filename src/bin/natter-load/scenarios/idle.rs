//! Idle: holds `--sockets` signed-in sockets (19,000) open across `--rooms` rooms (100) for
//! `--duration` (10 s) and measures what holding them costs: how many one process holds
//! (target 19,000), the server's RSS per socket from its RSS before and after opening them
//! (target ≤ 13.5 KiB), and both sides' CPU to open them and to hold them.
//!
//! A missed target is a `MISSED` row; an idle socket closed while held fails the run.

use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};

use super::{Held, drain_all, grid, open_sockets, populate, settle};
use crate::{
    Options,
    client::Tally,
    report::Report,
    server::{Meter, Server},
};

pub(super) async fn idle(o: &Options) -> Result<Report, String> {
    let wanted = o.sockets.unwrap_or(19_000);
    let rooms = o.rooms.unwrap_or(100).min(wanted);
    let hold = o.duration.unwrap_or(Duration::from_secs(10));
    let server = Server::start(o).await?;
    let mut report = Report::new("idle", &o.db);
    let world = populate(&server, wanted.div_ceil(rooms), rooms, true).await?;
    settle().await;
    let before = server.rss();
    let pairs = grid(&world, wanted);
    let meter = Meter::start(&server);
    let concurrency = o.concurrency.unwrap_or(64);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let opening = meter.read();
    let held = sockets.len();
    let tally = Arc::new(Tally::default());
    let _drains = drain_all(sockets, &tally);
    settle().await;
    let after = server.rss();
    let meter = Meter::start(&server);
    tokio::time::sleep(hold).await;
    let holding = meter.read();
    report.at_least(
        "sockets held by one process",
        held as f64,
        "sockets",
        Some(19_000.0),
    );
    Held {
        unit: "socket",
        held,
        rss: (before, after),
        target: 13.5,
        opening,
        holding,
        hold,
    }
    .report(&mut report);
    report.note(format!("opened in {:.1} s", took.as_secs_f64()));
    let closed = tally.closes.load(Relaxed);
    report.check(
        closed == 0,
        format!("{closed} of {held} idle sockets were closed while held"),
    );
    Ok(report)
}
