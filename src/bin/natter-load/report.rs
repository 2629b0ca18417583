//! Results: a printed table and, on request, JSON.

use std::time::Duration;

use serde::Serialize;

/// One measured figure next to its target.
#[derive(Serialize, Clone, Debug)]
pub struct Row {
    pub measure: String,
    pub value: f64,
    pub unit: String,
    /// The target, as text (e.g. "≥ 5000"), empty when there is none.
    pub target: String,
    /// Whether the target was met (None when there is no target).
    pub met: Option<bool>,
}

#[derive(Serialize, Debug)]
pub struct Report {
    pub scenario: String,
    pub machine: String,
    pub database: String,
    pub rows: Vec<Row>,
    /// CPU seconds used by each side during the measured phase.
    pub server_cpu_s: Option<f64>,
    pub generator_cpu_s: Option<f64>,
    pub notes: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, database: &str) -> Self {
        Self {
            scenario: scenario.into(),
            machine: machine(),
            database: database.into(),
            rows: Vec::new(),
            server_cpu_s: None,
            generator_cpu_s: None,
            notes: Vec::new(),
        }
    }

    /// A figure that must be at least `min`.
    pub fn at_least(&mut self, measure: &str, value: f64, unit: &str, min: Option<f64>) {
        self.rows.push(Row {
            measure: measure.into(),
            value,
            unit: unit.into(),
            target: min.map(|m| format!("≥ {m}")).unwrap_or_default(),
            met: min.map(|m| value >= m),
        });
    }

    /// A figure that must be at most `max`.
    pub fn at_most(&mut self, measure: &str, value: f64, unit: &str, max: Option<f64>) {
        self.rows.push(Row {
            measure: measure.into(),
            value,
            unit: unit.into(),
            target: max.map(|m| format!("≤ {m}")).unwrap_or_default(),
            met: max.map(|m| value <= m),
        });
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  {text}");
        self.notes.push(text);
    }

    pub fn cpu(&mut self, server: Option<Duration>, generator: Option<Duration>) {
        self.server_cpu_s = server.map(|d| d.as_secs_f64());
        self.generator_cpu_s = generator.map(|d| d.as_secs_f64());
    }

    pub fn print(&self) {
        println!("\n{} ({}, {})", self.scenario, self.database, self.machine);
        println!(
            "{:<48} {:>14} {:<10} {:>12}",
            "measure", "value", "unit", "target"
        );
        for r in &self.rows {
            let mark = match r.met {
                Some(true) => "ok",
                Some(false) => "MISSED",
                None => "",
            };
            println!(
                "{:<48} {:>14.2} {:<10} {:>12} {}",
                r.measure, r.value, r.unit, r.target, mark
            );
        }
        if let Some(s) = self.server_cpu_s {
            println!("{:<48} {:>14.2} s", "server CPU", s);
        }
        if let Some(g) = self.generator_cpu_s {
            println!("{:<48} {:>14.2} s", "generator CPU", g);
        }
    }

    pub fn write_json(&self, path: &str) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).map_err(|e| e.to_string())?;
        std::fs::write(path, text).map_err(|e| format!("{path}: {e}"))
    }
}

/// "2 cores, 23 GiB, <cpu model>".
fn machine() -> String {
    // The machine's cores, not this process's: the generator pins itself to one.
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("")
        .trim();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map(|k| k / 1024 / 1024)
        .unwrap_or(0);
    format!("{cores} cores, {mem} GiB, {model}")
}

/// The p-th percentile (0..=1) of sorted values.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize] as f64
}
