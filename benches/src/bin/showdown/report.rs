//! What the showdown prints: the header (machine, method), one block per
//! scenario, the JSON lines, and the helpers that format times and ratios.

use std::fmt::Write as _;

use crate::scenarios::Runtime;

/// Beside a task scenario's floor row that asyncio-rs beats: why a runtime
/// can cost less than boxing a future.
pub(crate) const FLOOR_BEATEN: &str = "  (asyncio-rs below the floor: it reuses cached task \
     cells and skips the allocator the floor pays for each box)";

/// Beside a network scenario's floor row that asyncio-rs beats: the floor
/// makes the same system calls, so the two are level within the row's noise.
pub(crate) const NET_FLOOR_BEATEN: &str = "  (asyncio-rs below the floor: the same system calls, \
     level within this row's noise)";

/// The result of one (scenario, runtime) pair.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) runtime: Runtime,
    pub(crate) result: Measured,
}

/// What was measured for a row.
#[derive(Debug, Clone)]
pub(crate) enum Measured {
    /// Times per operation, one per round, in nanoseconds; `ops` per run.
    Times { per_op: Vec<f64>, ops: usize },
    /// Bytes per operation (the memory scenario), measured once.
    Bytes { per_op: f64, ops: usize },
    /// Not run, and why (a CPython feature the interpreter lacks).
    Unavailable(String),
    /// The run failed (a CPython program that crashed), and how.
    Failed(String),
}

impl Row {
    /// Median, min and max of the per-operation times, if measured.
    pub(crate) fn stats(&self) -> Option<(f64, f64, f64)> {
        match &self.result {
            Measured::Times { per_op, .. } if !per_op.is_empty() => {
                let mut xs = per_op.clone();
                xs.sort_by(f64::total_cmp);
                Some((xs[xs.len() / 2], xs[0], xs[xs.len() - 1]))
            }
            _ => None,
        }
    }

    /// The median time per operation, if measured.
    pub(crate) fn median(&self) -> Option<f64> {
        self.stats().map(|(m, _, _)| m)
    }
}

/// The machine and the run, for the header and the chart.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) os: String,
    pub(crate) rustc: &'static str,
    pub(crate) date: String,
}

impl Machine {
    /// Reads what it can from `/proc` and `/etc/os-release`.
    pub(crate) fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown CPU".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pretty = std::fs::read_to_string("/etc/os-release")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
            .unwrap_or_else(|| std::env::consts::OS.into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!(", kernel {}", s.trim()))
            .unwrap_or_default();
        Machine {
            cpu,
            cores,
            os: format!("{pretty}{kernel}"),
            rustc: env!("SHOWDOWN_RUSTC_VERSION"),
            date: utc_now(),
        }
    }
}

/// The current UTC date and time, `2026-11-27 09:30 UTC`.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// A time in nanoseconds with a unit that keeps 3-4 significant digits.
pub(crate) fn time(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// `n` with thousands separators: `1,000,000`.
pub(crate) fn count(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The plural of a unit ("task" -> "tasks").
pub(crate) fn plural(unit: &str) -> String {
    match unit {
        "child" => "children".into(),
        u => format!("{u}s"),
    }
}

/// A row's time against asyncio-rs's, in words.
pub(crate) fn versus(ratio: f64) -> String {
    if ratio >= 1.0 {
        format!("{ratio:.2}x slower than asyncio-rs")
    } else {
        format!("{:.2}x faster than asyncio-rs", 1.0 / ratio)
    }
}

/// The one-sentence method.
pub(crate) fn method(rounds: usize) -> String {
    format!(
        "every scenario runs on each runtime in this one process (loop start-up: a fresh \
         process per round; CPython: one fresh interpreter per round), the runtimes \
         taking turns round by round after one warm-up each; a row is the median time \
         per operation over {rounds} rounds (lower is better), the fastest and slowest \
         round, and the median's ratio to asyncio-rs's in the same run"
    )
}

/// Prints one scenario's block to `out`.
pub(crate) fn scenario_block(
    out: &mut String,
    id: &str,
    example: &str,
    what: &str,
    unit: &str,
    rows: &[&Row],
) {
    let ops = rows.iter().find_map(|r| match r.result {
        Measured::Times { ops, .. } | Measured::Bytes { ops, .. } => Some(ops),
        _ => None,
    });
    let example = if example.is_empty() {
        String::new()
    } else {
        format!(" ({example})")
    };
    let _ = writeln!(out, "\n{id}{example}");
    let per_run = ops.map_or(String::new(), |o| {
        format!("; {} {} per run", count(o), plural(unit))
    });
    let _ = writeln!(out, "  {what}{per_run}");
    let is_bytes = rows
        .iter()
        .any(|r| matches!(r.result, Measured::Bytes { .. }));
    let measure = if is_bytes { "memory" } else { "time" };
    let _ = writeln!(
        out,
        "  {:<22} {:>12}  {:<23}  compared with asyncio-rs",
        "runtime",
        format!("{measure}/{unit}"),
        "min – max"
    );
    let reference = rows
        .iter()
        .find(|r| r.runtime == Runtime::AsyncioRs)
        .and_then(|r| match &r.result {
            Measured::Bytes { per_op, .. } => Some(*per_op),
            _ => r.median(),
        });
    let best = rows
        .iter()
        .filter(|r| r.runtime != Runtime::Floor)
        .filter_map(|r| r.median().map(|m| (r.runtime, m)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(rt, _)| rt);
    for r in rows {
        let name = r.runtime.name();
        match &r.result {
            Measured::Times { .. } => {
                let (med, min, max) = r.stats().expect("measured rows have rounds");
                let cmp = if r.runtime == Runtime::AsyncioRs {
                    "reference".to_owned()
                } else {
                    reference.map_or(String::new(), |a| versus(med / a))
                };
                let beaten = r.runtime == Runtime::Floor && reference.is_some_and(|a| a < med);
                let mark = if Some(r.runtime) == best && rows.len() > 1 {
                    "  <- fastest"
                } else if beaten {
                    // A floor that a runtime beats needs its reason beside it.
                    if unit == "task" {
                        FLOOR_BEATEN
                    } else {
                        NET_FLOOR_BEATEN
                    }
                } else {
                    ""
                };
                let _ = writeln!(
                    out,
                    "  {name:<22} {:>12}  {:<23}  {cmp}{mark}",
                    time(med),
                    format!("{} – {}", time(min), time(max)),
                );
            }
            Measured::Bytes { per_op, .. } => {
                let cmp = if r.runtime == Runtime::AsyncioRs {
                    "reference".to_owned()
                } else {
                    reference.map_or(String::new(), |a| {
                        let ratio = per_op / a;
                        if ratio >= 1.0 {
                            format!("{ratio:.2}x more than asyncio-rs")
                        } else {
                            format!("{:.2}x less than asyncio-rs", 1.0 / ratio)
                        }
                    })
                };
                let _ = writeln!(
                    out,
                    "  {name:<22} {:>12}  {:<23}  {cmp}",
                    format!("{per_op:.0} B"),
                    "(one measurement)"
                );
            }
            Measured::Unavailable(why) => {
                let _ = writeln!(out, "  {name:<22} {:>12}  {why}", "—");
            }
            Measured::Failed(why) => {
                let _ = writeln!(out, "  {name:<22} {:>12}  FAILED: {why}", "—");
            }
        }
    }
}

/// One JSON object for a measured row (none for rows that did not run).
pub(crate) fn json_line(row: &Row) -> Option<String> {
    let (scenario, runtime) = (row.scenario, row.runtime.name());
    match &row.result {
        Measured::Times { per_op, ops } => {
            let (med, min, max) = row.stats()?;
            Some(format!(
                "{{\"scenario\":\"{scenario}\",\"runtime\":\"{runtime}\",\"ns_per_op\":{med:.2},\
                 \"min\":{min:.2},\"max\":{max:.2},\"rounds\":{},\"ops\":{ops}}}",
                per_op.len()
            ))
        }
        Measured::Bytes { per_op, ops } => Some(format!(
            "{{\"scenario\":\"{scenario}\",\"runtime\":\"{runtime}\",\"ns_per_op\":null,\
             \"bytes_per_op\":{per_op:.0},\"min\":null,\"max\":null,\"rounds\":1,\"ops\":{ops}}}"
        )),
        Measured::Unavailable(_) | Measured::Failed(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_read_as_words_in_both_directions() {
        assert_eq!(versus(2.0), "2.00x slower than asyncio-rs");
        assert_eq!(versus(0.25), "4.00x faster than asyncio-rs");
    }

    #[test]
    fn times_and_counts_are_readable() {
        assert_eq!(time(12.345), "12.3 ns");
        assert_eq!(time(12_345.0), "12.35 µs");
        assert_eq!(time(12_345_678.0), "12.35 ms");
        assert_eq!(count(1_000_000), "1,000,000");
        assert_eq!(count(999), "999");
    }

    #[test]
    fn json_lines_carry_median_min_max_rounds_and_ops() {
        let row = Row {
            scenario: "ex_6_2_gather",
            runtime: Runtime::TokioLocalSet,
            result: Measured::Times {
                per_op: vec![30.0, 10.0, 20.0],
                ops: 1000,
            },
        };
        assert_eq!(
            json_line(&row).unwrap(),
            "{\"scenario\":\"ex_6_2_gather\",\"runtime\":\"tokio-localset\",\"ns_per_op\":20.00,\
             \"min\":10.00,\"max\":30.00,\"rounds\":3,\"ops\":1000}"
        );
        let skipped = Row {
            result: Measured::Unavailable("no".into()),
            ..row
        };
        assert_eq!(json_line(&skipped), None);
    }
}
