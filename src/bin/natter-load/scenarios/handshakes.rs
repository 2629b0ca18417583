//! Handshakes: signed-in socket upgrades per second, opening `--sockets` sockets (19,000)
//! across `--rooms` rooms (100) with `--concurrency` handshakes (64) in flight, and the
//! server's CPU per upgrade.
//!
//! The ≥ 5,000/s target is read on SQLite only; a miss is a `MISSED` row. No check here
//! fails the run (a socket that cannot be opened ends it with an error).

use super::{grid, open_sockets, populate, settle};
use crate::{
    Options,
    report::Report,
    server::{Meter, Server},
};

pub(super) async fn handshakes(o: &Options) -> Result<Report, String> {
    let wanted = o.sockets.unwrap_or(19_000);
    let rooms = o.rooms.unwrap_or(100).min(wanted);
    let concurrency = o.concurrency.unwrap_or(64);
    let server = Server::start(o).await?;
    let mut report = Report::new("handshakes", &o.db);
    let world = populate(&server, wanted.div_ceil(rooms), rooms, true).await?;
    settle().await;
    let pairs = grid(&world, wanted);
    let meter = Meter::start(&server);
    let (sockets, took) = open_sockets(&server.base, &world, &pairs, concurrency).await?;
    let cpu = meter.read();
    let rate = sockets.len() as f64 / took.as_secs_f64();
    report.at_least(
        "signed-in socket upgrades per second",
        rate,
        "/s",
        (o.db == "sqlite").then_some(6_000.0),
    );
    report.cpu("upgrades", &cpu, Some((sockets.len() as u64, "upgrade")));
    report.note(format!(
        "{} upgrades in {:.2} s, {concurrency} in flight",
        sockets.len(),
        took.as_secs_f64(),
    ));
    Ok(report)
}
