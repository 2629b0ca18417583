//! Attachments (issue 16): how fast one person's 10 MiB file goes up, how much memory the
//! server holds while `--concurrency` (20) people upload 10 MiB each at once (uploads stream
//! to disk: it must stay far below 20 × 10 MiB), and what a 12-megapixel photo's thumbnail
//! adds to its post. Every upload must be answered 303 and every byte be in storage.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use super::populate;
use crate::{
    Options,
    client::{self, Person},
    report::Report,
    server::Server,
};

/// 10 MiB: the default `NATTER_MAX_UPLOAD`.
const FILE: usize = 10 << 20;

pub(super) async fn uploads(o: &Options) -> Result<Report, String> {
    let concurrency = o.concurrency.unwrap_or(20);
    let server = Server::start(o).await?;
    let mut report = Report::new("uploads", &o.db);
    let world = populate(&server, concurrency, 1, true).await?;
    let room = &world.rooms[0];
    let http = client::http();
    let data: Vec<u8> = (0..FILE).map(|_| rand::random::<u8>()).collect();
    let mut stored = 0u64;

    // One person, one file at a time.
    let mut times = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        upload(
            &http,
            &server.base,
            &world.people[0],
            room,
            "big.bin",
            &data,
        )
        .await?;
        times.push(started.elapsed());
        stored += FILE as u64;
    }
    times.sort();
    let median = times[times.len() / 2].as_secs_f64();
    report.at_least(
        "one 10 MiB upload, posted (median of 5)",
        FILE as f64 / (1 << 20) as f64 / median,
        "MiB/s",
        None,
    );

    // Everyone at once, while the server's memory is sampled.
    let idle = server.rss().unwrap_or(0);
    let mut uploads = JoinSet::new();
    let started = Instant::now();
    for person in &world.people[..concurrency] {
        let person = person.clone();
        let (http, base, room, data) = (
            http.clone(),
            server.base.clone(),
            room.clone(),
            data.clone(),
        );
        uploads.spawn(async move { upload(&http, &base, &person, &room, "many.bin", &data).await });
    }
    let mut peak = idle;
    let mut failed = Vec::new();
    while !uploads.is_empty() {
        tokio::select! {
            done = uploads.join_next() => match done {
                Some(Ok(Ok(()))) => stored += FILE as u64,
                Some(Ok(Err(e))) => failed.push(e),
                Some(Err(e)) => failed.push(e.to_string()),
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
        peak = peak.max(server.rss().unwrap_or(0));
    }
    let took = started.elapsed().as_secs_f64();
    report.check(
        failed.is_empty(),
        format!("every concurrent upload posted ({failed:?})"),
    );
    report.at_most(
        &format!("server memory above idle during {concurrency} concurrent 10 MiB uploads"),
        peak.saturating_sub(idle) as f64 / (1 << 20) as f64,
        "MiB",
        Some((concurrency * FILE / 4) as f64 / (1 << 20) as f64),
    );
    report.note(format!(
        "{concurrency} × 10 MiB in {took:.1} s ({:.0} MiB/s together); RSS {:.0} MiB idle, {:.0} MiB at peak",
        (concurrency * FILE) as f64 / (1 << 20) as f64 / took,
        idle as f64 / (1 << 20) as f64,
        peak as f64 / (1 << 20) as f64,
    ));

    // A 12-megapixel photo against a file of the same size: the difference is the thumbnail.
    let photo = twelve_megapixels();
    let same_size: Vec<u8> = data[..photo.len()].to_vec();
    let mut with_thumb = Vec::new();
    let mut without = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        upload(
            &http,
            &server.base,
            &world.people[1],
            room,
            "photo.jpg",
            &photo,
        )
        .await?;
        with_thumb.push(started.elapsed());
        let started = Instant::now();
        upload(
            &http,
            &server.base,
            &world.people[1],
            room,
            "photo.bin",
            &same_size,
        )
        .await?;
        without.push(started.elapsed());
        stored += 2 * photo.len() as u64;
    }
    with_thumb.sort();
    without.sort();
    let (a, b) = (with_thumb[1].as_secs_f64(), without[1].as_secs_f64());
    report.at_most(
        "12-megapixel JPEG post (thumbnail made), median of 3",
        a * 1000.0,
        "ms",
        None,
    );
    report.note(format!(
        "the same bytes as a plain file: {:.0} ms; the thumbnail adds about {:.0} ms ({:.1} MB JPEG)",
        b * 1000.0,
        (a - b) * 1000.0,
        photo.len() as f64 / 1e6,
    ));
    // Thumbnails add bytes of their own: at least everything sent is there.
    if o.target.is_none() {
        let kept = server.stored_bytes();
        report.check(
            kept >= stored,
            format!("storage holds every byte posted ({kept} ≥ {stored})"),
        );
    }
    Ok(report)
}

/// Posts `data` as a file named `name` in `room`, as the composer's form does.
async fn upload(
    http: &reqwest::Client,
    base: &str,
    person: &Person,
    room: &str,
    name: &str,
    data: &[u8],
) -> Result<(), String> {
    let boundary = format!("natter-load-{:032x}", rand::random::<u128>());
    let client_id = format!("{:016x}", rand::random::<u64>());
    let mut body = Vec::with_capacity(data.len() + 1024);
    for (field, value) in [
        ("csrf", person.csrf.as_str()),
        ("body", ""),
        ("client_id", &client_id),
    ] {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(data);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = http
        .post(format!("{base}/rooms/{room}/messages"))
        .header("cookie", &person.cookie)
        .header("origin", base)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        303 => Ok(()),
        other => Err(format!("upload answered {other}")),
    }
}

/// A 4000 × 3000 JPEG of noise and gradients (photo-like: it does not compress to nothing).
fn twelve_megapixels() -> Vec<u8> {
    let img = image::RgbImage::from_fn(4000, 3000, |x, y| {
        let noise = rand::random::<u8>() / 4;
        image::Rgb([
            (x / 16) as u8 ^ noise,
            (y / 12) as u8 ^ noise,
            ((x + y) / 28) as u8,
        ])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Jpeg)
        .expect("encoding a JPEG in memory");
    out.into_inner()
}
