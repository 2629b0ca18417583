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

/// Figures that come in series (one line per fan-out rate, per big-room post), printed as a
/// table of their own; in JSON each line is an object keyed by column.
#[derive(Serialize, Debug)]
pub struct Table {
    pub name: String,
    /// Column names, each with its unit in brackets where it has one.
    pub columns: Vec<String>,
    pub lines: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl Table {
    pub fn new(name: &str, columns: &[&str]) -> Self {
        Self {
            name: name.into(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            lines: Vec::new(),
        }
    }

    /// Adds a line: one value per column, in order (`null` where a figure is unknown).
    pub fn line(&mut self, values: Vec<serde_json::Value>) {
        debug_assert_eq!(values.len(), self.columns.len());
        self.lines
            .push(self.columns.iter().cloned().zip(values).collect());
    }

    fn print(&self) {
        println!("\n{}", self.name);
        let cell = |v: &serde_json::Value| match v {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => format!("{f:.2}"),
                _ => n.to_string(),
            },
            serde_json::Value::Bool(b) => if *b { "yes" } else { "no" }.to_string(),
            serde_json::Value::Null => "?".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let cells: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| self.columns.iter().map(|c| cell(&l[c])).collect())
            .collect();
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                cells
                    .iter()
                    .map(|l| l[i].chars().count())
                    .chain([c.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let join = |values: Vec<&str>| {
            values
                .iter()
                .zip(&widths)
                .map(|(v, w)| format!("{v:>w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        println!(
            "{}",
            join(self.columns.iter().map(String::as_str).collect())
        );
        for l in &cells {
            println!("{}", join(l.iter().map(String::as_str).collect()));
        }
    }
}

/// CPU each side used over one phase of a scenario, and the phase's wall time.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    /// The server's CPU (user + system); unknown for a server given with `--target`.
    pub server: Option<Duration>,
    pub generator: Option<Duration>,
    pub wall: Duration,
}

impl Cpu {
    /// Server CPU µs per operation.
    pub fn server_us_per(&self, operations: u64) -> Option<f64> {
        per(self.server, operations)
    }

    /// Generator CPU µs per operation.
    pub fn generator_us_per(&self, operations: u64) -> Option<f64> {
        per(self.generator, operations)
    }

    /// How much of its one core the generator used, in percent: near 100 the generator, not
    /// the server, sets the pace.
    pub fn generator_busy_pct(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then(|| self.generator.map(|g| g.as_secs_f64() / wall * 100.0))?
    }

    /// Server CPU as a percentage of one core.
    pub fn server_busy_pct(&self) -> Option<f64> {
        let wall = self.wall.as_secs_f64();
        (wall > 0.0).then(|| self.server.map(|s| s.as_secs_f64() / wall * 100.0))?
    }
}

fn per(cpu: Option<Duration>, operations: u64) -> Option<f64> {
    (operations > 0).then(|| cpu.map(|c| c.as_secs_f64() * 1e6 / operations as f64))?
}

/// A generator above this share of its core is taken to be the limit of a run.
pub const GENERATOR_SATURATED_PCT: f64 = 90.0;

#[derive(Serialize, Debug)]
pub struct Report {
    pub scenario: String,
    pub machine: String,
    pub database: String,
    pub rows: Vec<Row>,
    pub tables: Vec<Table>,
    /// CPU seconds used by each side over the measured phases (summed).
    pub server_cpu_s: Option<f64>,
    pub generator_cpu_s: Option<f64>,
    pub notes: Vec<String>,
    /// Checks of correctness (not speed) that failed: any makes the run exit non-zero.
    pub failed_checks: Vec<String>,
}

impl Report {
    pub fn new(scenario: &str, database: &str) -> Self {
        Self {
            scenario: scenario.into(),
            machine: machine(),
            database: database.into(),
            rows: Vec::new(),
            tables: Vec::new(),
            server_cpu_s: None,
            generator_cpu_s: None,
            notes: Vec::new(),
            failed_checks: Vec::new(),
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

    /// A figure without a target.
    pub fn figure(&mut self, measure: &str, value: f64, unit: &str) {
        self.at_most(measure, value, unit, None);
    }

    pub fn note(&mut self, text: impl Into<String>) {
        let text = text.into();
        eprintln!("  {text}");
        self.notes.push(text);
    }

    /// A correctness check: when `ok` is false the scenario fails with `what`.
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            let what = what.into();
            eprintln!("  FAILED: {what}");
            self.failed_checks.push(what);
        }
    }

    /// Rows for the CPU both sides spent on `phase`: seconds, µs per `unit` (when `count` of
    /// them happened) and the generator's share of its core. Adds to the report's totals.
    pub fn cpu(&mut self, phase: &str, cpu: &Cpu, count: Option<(u64, &str)>) {
        if let Some(s) = cpu.server {
            *self.server_cpu_s.get_or_insert(0.0) += s.as_secs_f64();
            self.figure(&format!("{phase}: server CPU"), s.as_secs_f64(), "s");
        }
        if let Some(g) = cpu.generator {
            *self.generator_cpu_s.get_or_insert(0.0) += g.as_secs_f64();
            self.figure(&format!("{phase}: generator CPU"), g.as_secs_f64(), "s");
        }
        if let Some((n, unit)) = count {
            if let Some(us) = cpu.server_us_per(n) {
                self.figure(&format!("{phase}: server CPU per {unit}"), us, "µs");
            }
            if let Some(us) = cpu.generator_us_per(n) {
                self.figure(&format!("{phase}: generator CPU per {unit}"), us, "µs");
            }
        }
        if let Some(pct) = cpu.server_busy_pct() {
            self.figure(&format!("{phase}: server core busy"), pct, "%");
        }
        if let Some(pct) = cpu.generator_busy_pct() {
            self.figure(&format!("{phase}: generator core busy"), pct, "%");
        }
    }

    /// Adds the CPU of a phase reported in a table to the report's totals.
    pub fn add_cpu(&mut self, cpu: &Cpu) {
        if let Some(s) = cpu.server {
            *self.server_cpu_s.get_or_insert(0.0) += s.as_secs_f64();
        }
        if let Some(g) = cpu.generator {
            *self.generator_cpu_s.get_or_insert(0.0) += g.as_secs_f64();
        }
    }

    pub fn print(&self) {
        for t in &self.tables {
            t.print();
        }
        println!("\n{} ({}, {})", self.scenario, self.database, self.machine);
        println!(
            "{:<56} {:>14} {:<6} {:>12}",
            "measure", "value", "unit", "target"
        );
        for r in &self.rows {
            let mark = match r.met {
                Some(true) => "ok",
                Some(false) => "MISSED",
                None => "",
            };
            println!(
                "{:<56} {:>14.2} {:<6} {:>12} {}",
                r.measure, r.value, r.unit, r.target, mark
            );
        }
        if let Some(s) = self.server_cpu_s {
            println!("{:<56} {:>14.2} s", "server CPU, all measured phases", s);
        }
        if let Some(g) = self.generator_cpu_s {
            println!("{:<56} {:>14.2} s", "generator CPU, all measured phases", g);
        }
        for f in &self.failed_checks {
            println!("FAILED: {f}");
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
