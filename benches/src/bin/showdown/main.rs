//! The showdown: every scenario on asyncio-rs and on its peers (tokio,
//! async-executor, and with `--python` CPython's asyncio and uvloop) in one
//! run, runtimes taking turns round by round, printed as a table a newcomer
//! can read, and optionally as JSON lines and an SVG chart.
//!
//! ```text
//! cargo run --release -p asyncio-bench --bin showdown -- --help
//! ```
//!
//! The scenarios live in `scenarios.rs`; the CPython programs in
//! `benches/python/`; `docs/performance.md` explains the method and one run.

mod chart;
mod python;
mod report;
mod scenarios;

use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;

use report::{Machine, Measured, Row};
use scenarios::{FLOOR_LEGEND, Run, Runtime, Scenario};

/// Compares asyncio-rs with tokio, async-executor and (with --python) CPython's
/// asyncio on the workloads of the asyncio tutorial's examples (ex_6_1, ex_6_2,
/// ...), all in one run. Lower times are better; every row is also given as
/// "N x faster/slower than asyncio-rs". Progress goes to stderr, the report to
/// stdout.
#[derive(Debug, Parser)]
#[command(
    name = "showdown",
    version,
    after_help = "Examples:\n  \
        showdown                                   every scenario, 7 rounds (about 1.5 minutes on 2 cores)\n  \
        showdown --python --svg chart.svg          with CPython and uvloop, and a chart\n  \
        showdown --only ex_6_1_taskgroup_eager     one scenario\n  \
        showdown --only ex_6_2_gather/asyncio-rs   one runtime of it (e.g. under /usr/bin/time -v)\n  \
        showdown --quick --json out.jsonl          the CI check\n\n\
        docs/performance.md explains the scenarios, the method and one full run."
)]
struct Args {
    /// Timed rounds per (scenario, runtime), after one warm-up each
    /// [default: 7, or 3 with --quick].
    #[arg(long, value_name = "N")]
    rounds: Option<usize>,

    /// Keep only SCENARIO, or only one runtime of it (`ex_6_2_create_task_lazy/tokio-localset`).
    /// May be given several times. `--list` shows the names.
    #[arg(long, value_name = "SCENARIO[/RUNTIME]")]
    only: Vec<String>,

    /// Every scenario at a small size (n = 50,000) and 3 rounds: the whole run
    /// takes well under 30 s without --python (CPython adds a fresh interpreter per round, about 30-40 s more). For CI; its figures are rougher than a full run's.
    #[arg(long)]
    quick: bool,

    /// Write one JSON object per line and measured row to PATH: scenario,
    /// runtime, ns_per_op (median), bytes_per_op (where measured), min, max,
    /// rounds, ops.
    #[arg(long, value_name = "PATH")]
    json: Option<PathBuf>,

    /// Draw an SVG chart to PATH: per scenario, each runtime's median time
    /// relative to asyncio-rs's, on a log scale.
    #[arg(long, value_name = "PATH")]
    svg: Option<PathBuf>,

    /// Also run each scenario's CPython program (benches/python/) with the
    /// python3 on PATH, and again on uvloop when uvloop imports.
    #[arg(long)]
    python: bool,

    /// The size of a run: most scenarios perform n operations per run, some
    /// a fixed fraction of n (each scenario says how many) [default: 1,000,000,
    /// or 50,000 with --quick].
    #[arg(long, value_name = "N")]
    n: Option<usize>,

    /// List the scenarios and their runtimes, then exit.
    #[arg(long)]
    list: bool,

    /// Internal: measure one runtime's bytes per operation of a memory
    /// scenario in this fresh process and print the number.
    #[arg(long, hide = true, num_args = 3, value_names = ["SCENARIO", "RUNTIME", "N"])]
    memory_child: Vec<String>,

    /// Internal: time one run of a fresh-process scenario's runtime at size
    /// N in this fresh process (after a warm-up at N / 10) and print the
    /// nanoseconds.
    #[arg(long, hide = true, num_args = 3, value_names = ["SCENARIO", "RUNTIME", "N"])]
    timed_child: Vec<String>,
}

/// The size of a `--quick` run.
const QUICK_N: usize = 50_000;

/// One (scenario, runtime) pair to run.
enum Work {
    Rust(Run),
    Python {
        program: &'static str,
        uvloop: bool,
        load: Option<fn(u16, usize)>,
    },
}

struct Entry {
    scenario: usize,
    runtime: Runtime,
    work: Work,
    result: Measured,
    /// The round-trip percentiles of each timed run (echo scenarios only).
    latencies: Vec<asyncio_bench::net::Percentiles>,
}

/// One (scenario, runtime)'s echo latencies: each timed run's percentiles.
struct Latencies {
    scenario: &'static str,
    runtime: Runtime,
    runs: Vec<asyncio_bench::net::Percentiles>,
}

fn main() {
    let args = Args::parse();
    if let [scenario, runtime, n] = args.memory_child.as_slice() {
        let n: usize = n.parse().unwrap_or_else(|_| fail("N is a number"));
        let per = scenarios::memory_scenario(scenario).and_then(|m| (m.measure)(runtime, n));
        match per {
            Some(per) => println!("{per}"),
            None => fail(&format!("no memory workload {scenario}/{runtime}")),
        }
        return;
    }
    if let [scenario, runtime, n] = args.timed_child.as_slice() {
        let n: usize = n.parse().unwrap_or_else(|_| fail("N is a number"));
        let run = scenarios::fresh_process_workload(scenario, runtime)
            .unwrap_or_else(|| fail(&format!("no fresh-process workload {scenario}/{runtime}")));
        run((n / 10).max(1));
        release_free_memory();
        let t = Instant::now();
        run(n);
        println!("{}", t.elapsed().as_nanos());
        return;
    }
    let quick = args.quick;
    let rounds = args.rounds.unwrap_or(if quick { 3 } else { 7 }).max(1);
    let n = args
        .n
        .unwrap_or(if quick { QUICK_N } else { 1_000_000 })
        .max(10);
    let mut scenarios = scenarios::scenarios();
    if args.list {
        list(&scenarios);
        return;
    }
    let filters = parse_filters(&args.only, &scenarios);
    if !args.python
        && filters
            .iter()
            .any(|(_, rt)| rt.is_some_and(|r| r.is_python()))
    {
        fail("the CPython runtimes run only with --python");
    }
    let keep = |scenario: &str, rt: Runtime| {
        filters.is_empty()
            || filters
                .iter()
                .any(|(s, r)| s == scenario && r.is_none_or(|r| r == rt))
    };

    let interpreter = if args.python {
        Some(python::detect())
    } else {
        None
    };
    let machine = Machine::detect();
    let mut entries = build_entries(&mut scenarios, &keep, interpreter.as_ref());
    let py_version = match &interpreter {
        Some(Ok(i)) => i.major_minor(),
        _ => String::new(),
    };

    let mut head = String::new();
    header(&mut head, &machine, interpreter.as_ref(), rounds, n);
    print!("{head}");
    let _ = std::io::stdout().flush();

    measure(&mut entries, &scenarios, rounds, n, &py_version);
    let latencies: Vec<Latencies> = entries
        .iter_mut()
        .filter(|e| !e.latencies.is_empty())
        .map(|e| Latencies {
            scenario: scenarios[e.scenario].id,
            runtime: e.runtime,
            runs: std::mem::take(&mut e.latencies),
        })
        .collect();
    let mut rows: Vec<Row> = entries
        .into_iter()
        .map(|e| Row {
            scenario: scenarios[e.scenario].id,
            runtime: e.runtime,
            result: e.result,
        })
        .collect();
    for m in scenarios::MEMORY_SCENARIOS {
        if keep_any(&filters, m.id) {
            let size = if m.id == scenarios::IDLE_CONNS {
                if quick { 500 } else { idle_conns_count() }
            } else if m.id == scenarios::IDLE_TLS_CONNS {
                // Each one a full handshake first: a smaller crowd.
                if quick {
                    200
                } else {
                    idle_conns_count().min(2000)
                }
            } else {
                n
            };
            rows.extend(memory_rows(m, size, &keep));
        }
    }

    let mut out = String::new();
    for s in &scenarios {
        let these: Vec<&Row> = rows.iter().filter(|r| r.scenario == s.id).collect();
        if !these.is_empty() {
            report::scenario_block(&mut out, s.id, s.example, s.what, s.unit, &these);
            if scenarios::ECHO_SCENARIOS.contains(&s.id) {
                latency_report(&mut out, s.id, &latencies);
            }
        }
    }
    for m in scenarios::MEMORY_SCENARIOS {
        let these: Vec<&Row> = rows.iter().filter(|r| r.scenario == m.id).collect();
        if !these.is_empty() {
            report::scenario_block(&mut out, m.id, m.example, m.what, m.unit, &these);
        }
    }
    summary(&mut out, &rows, &scenarios);
    latency_summary(&mut out, &latencies, &scenarios);
    println!("{out}");

    if let Some(path) = &args.json {
        let lines: String = rows
            .iter()
            .filter_map(report::json_line)
            .map(|l| l + "\n")
            .collect();
        if let Err(e) = std::fs::write(path, lines) {
            fail(&format!("cannot write {}: {e}", path.display()));
        }
        eprintln!("showdown: wrote {}", path.display());
    }
    if let Some(path) = &args.svg {
        let groups = chart_groups(&rows, &scenarios);
        let title =
            "asyncio-rs showdown: time per operation relative to asyncio-rs (lower is better)";
        let subtitle = format!(
            "{} · {} ({} cores) · {} · median of {rounds} rounds, n = {}",
            machine.date,
            machine.cpu,
            machine.cores,
            interpreter.as_ref().and_then(|i| i.as_ref().ok()).map_or(
                "without CPython".to_owned(),
                |i| format!("CPython {}", i.version)
            ),
            report::count(n)
        );
        if let Err(e) = chart::write_svg(path, title, &subtitle, &groups) {
            fail(&format!("cannot draw {}: {e}", path.display()));
        }
        eprintln!("showdown: drew {}", path.display());
    }
    if rows.iter().any(|r| matches!(r.result, Measured::Failed(_))) {
        std::process::exit(1);
    }
}

/// Exits with a message (for errors in the command line or the environment).
fn fail(msg: &str) -> ! {
    eprintln!("showdown: {msg}");
    std::process::exit(2);
}

/// `SCENARIO[/RUNTIME]` filters, checked against the known names.
fn parse_filters(only: &[String], scenarios: &[Scenario]) -> Vec<(String, Option<Runtime>)> {
    only.iter()
        .map(|f| {
            let (s, rt) = match f.split_once('/') {
                Some((s, r)) => (s, Some(r)),
                None => (f.as_str(), None),
            };
            let known =
                scenarios.iter().any(|x| x.id == s) || scenarios::memory_scenario(s).is_some();
            if !known {
                fail(&format!(
                    "no scenario {s:?}; `showdown --list` shows them (for example {})",
                    scenarios[0].id
                ));
            }
            let rt = rt.map(|r| {
                let names = runtimes_of(s, scenarios);
                names
                    .iter()
                    .copied()
                    .find(|x| x.name() == r)
                    .unwrap_or_else(|| {
                        let names: Vec<_> = names.iter().map(|x| x.name()).collect();
                        fail(&format!(
                            "{s} has no runtime {r:?}; its runtimes: {}",
                            names.join(", ")
                        ))
                    })
            });
            (s.to_owned(), rt)
        })
        .collect()
}

/// The runtimes a scenario can run on (CPython ones if it has a program).
fn runtimes_of(id: &str, scenarios: &[Scenario]) -> Vec<Runtime> {
    if let Some(m) = scenarios::memory_scenario(id) {
        return m.runtimes.to_vec();
    }
    let Some(s) = scenarios.iter().find(|s| s.id == id) else {
        return Vec::new();
    };
    let mut v: Vec<Runtime> = s.runs.iter().map(|(r, _)| *r).collect();
    if s.python.is_some() {
        v.extend([Runtime::Cpython, Runtime::CpythonUvloop]);
    }
    v
}

fn keep_any(filters: &[(String, Option<Runtime>)], scenario: &str) -> bool {
    filters.is_empty() || filters.iter().any(|(s, _)| s == scenario)
}

fn list(scenarios: &[Scenario]) {
    for s in scenarios {
        let names: Vec<&str> = runtimes_of(s.id, scenarios)
            .iter()
            .map(|r| r.name())
            .collect();
        println!("{:<32} {}", s.id, s.what);
        println!("{:<32} runtimes: {}", "", names.join(", "));
    }
    for m in scenarios::MEMORY_SCENARIOS {
        let names: Vec<&str> = m.runtimes.iter().map(|r| r.name()).collect();
        println!("{:<32} {}", m.id, m.what);
        println!("{:<32} runtimes: {}", "", names.join(", "));
    }
    let all: Vec<&str> = Runtime::ALL.iter().map(|r| r.name()).collect();
    // Indented, so that a scenario is exactly a line that starts with a letter.
    println!(
        "\n  every runtime name (for --only and in the JSON): {}",
        all.join(", ")
    );
}

/// The pairs to run, in table order: each scenario's Rust runtimes, then its
/// CPython ones (already `Unavailable` when the interpreter or uvloop is
/// missing). The closures move out of `scenarios`, which keeps the metadata.
fn build_entries(
    scenarios: &mut [Scenario],
    keep: &dyn Fn(&str, Runtime) -> bool,
    interpreter: Option<&Result<python::Interpreter, String>>,
) -> Vec<Entry> {
    let mut entries = Vec::new();
    for (si, s) in scenarios.iter_mut().enumerate() {
        for (runtime, run) in std::mem::take(&mut s.runs) {
            if keep(s.id, runtime) {
                entries.push(Entry {
                    scenario: si,
                    runtime,
                    work: Work::Rust(run),
                    result: Measured::Times {
                        per_op: Vec::new(),
                        ops: 0,
                    },
                    latencies: Vec::new(),
                });
            }
        }
        let (Some(program), Some(interp)) = (s.python, interpreter) else {
            continue;
        };
        for (runtime, uvloop) in [(Runtime::Cpython, false), (Runtime::CpythonUvloop, true)] {
            if !keep(s.id, runtime) {
                continue;
            }
            let result = match interp {
                Err(e) => Measured::Unavailable(format!("unavailable: {e}")),
                Ok(i) if uvloop && i.uvloop.is_none() => Measured::Unavailable(
                    "unavailable: uvloop does not import (python3 -m pip install uvloop)".into(),
                ),
                Ok(_) => Measured::Times {
                    per_op: Vec::new(),
                    ops: 0,
                },
            };
            entries.push(Entry {
                scenario: si,
                runtime,
                work: Work::Python {
                    program,
                    uvloop,
                    load: s.python_load,
                },
                result,
                latencies: Vec::new(),
            });
        }
    }
    entries
}

/// Gives the memory the allocator keeps free back to the system
/// (glibc's `malloc_trim`; other C libraries have no such call, and the
/// figures of record come from Linux).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim(3) only releases free memory of the allocator's
    // own; it takes a padding size and touches nothing of ours.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Nothing to do where there is no `malloc_trim`.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

/// Runs one entry once at size `n`: `Ok(Some((ns, ops)))` when timed,
/// `Ok(None)` after marking it unavailable or failed.
fn run_once(e: &mut Entry, s: &Scenario, n: usize, py_version: &str) -> Option<(f64, usize)> {
    let ops = s.ops;
    match &e.work {
        Work::Rust(_) if s.fresh_process => match timed_child(s.id, e.runtime, n) {
            Ok(ns) => Some((ns, ops(n))),
            Err(why) => {
                e.result = Measured::Failed(why);
                None
            }
        },
        Work::Rust(run) => {
            // A fresh heap for every run: what earlier runs freed goes back
            // to the system first, so no runtime finds memory warm.
            release_free_memory();
            let t = Instant::now();
            run(n);
            Some((t.elapsed().as_nanos() as f64, ops(n)))
        }
        Work::Python {
            program,
            uvloop,
            load,
        } => match load.map_or_else(
            || python::run(program, n, *uvloop),
            |load| python::serve(program, n, *uvloop, load, ops),
        ) {
            Ok(python::Outcome::Timed { ns, ops: theirs }) => {
                if theirs != ops(n) {
                    e.result = Measured::Failed(format!(
                        "{program} did {theirs} operations where the Rust side does {}",
                        ops(n)
                    ));
                    return None;
                }
                Some((ns, theirs))
            }
            Ok(python::Outcome::Unavailable(why)) => {
                e.result =
                    Measured::Unavailable(format!("unavailable on Python {py_version}: {why}"));
                None
            }
            Err(why) => {
                e.result = Measured::Failed(why);
                None
            }
        },
    }
}

/// Runs one fresh-process scenario's runtime at size `n` in a child (this
/// binary with the hidden `--timed-child`), which times the run itself: the
/// nanoseconds it reports.
fn timed_child(scenario: &str, runtime: Runtime, n: usize) -> Result<f64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find myself: {e}"))?;
    let out = std::process::Command::new(exe)
        .args(["--timed-child", scenario, runtime.name(), &n.to_string()])
        .output()
        .map_err(|e| format!("cannot start the child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "the child failed: {}",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<f64>()
        .map_err(|_| "the child printed no number".to_owned())
}

/// One warm-up per entry at n / 10, then `rounds` rounds in which every entry
/// runs once, in table order.
fn measure(
    entries: &mut [Entry],
    scenarios: &[Scenario],
    rounds: usize,
    n: usize,
    py_version: &str,
) {
    let live = |e: &Entry| matches!(e.result, Measured::Times { .. });
    let total = entries.iter().filter(|e| live(e)).count();
    let mut progress = Progress::new(total * (rounds + 1));
    for round in 0..=rounds {
        let size = if round == 0 { (n / 10).max(1) } else { n };
        for e in entries.iter_mut() {
            if !live(e) {
                continue;
            }
            let s = &scenarios[e.scenario];
            let what = if round == 0 {
                "warm-up".to_owned()
            } else {
                format!("round {round}/{rounds}")
            };
            progress.step(&format!("{what}: {} on {}", s.id, e.runtime.name()));
            let measured = run_once(e, s, size, py_version);
            // The echo workloads record each run's percentiles; they belong
            // to this (scenario, runtime), and the warm-up's are dropped.
            let lats = asyncio_bench::net::take_latencies();
            if round > 0 {
                e.latencies.extend(lats.into_iter().map(|(_, p)| p));
            }
            if let Some((ns, ops)) = measured
                && round > 0
                && let Measured::Times { per_op, ops: o } = &mut e.result
            {
                per_op.push(ns / ops as f64);
                *o = ops;
            }
        }
    }
    progress.done();
}

/// Progress on stderr: one line rewritten in place on a terminal, a line per
/// scenario and round otherwise (so a log shows that the run moves).
struct Progress {
    total: usize,
    done: usize,
    tty: bool,
    started: Instant,
    last_line: String,
}

impl Progress {
    fn new(total: usize) -> Self {
        Progress {
            total,
            done: 0,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            last_line: String::new(),
        }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        let secs = self.started.elapsed().as_secs();
        if self.tty {
            eprint!(
                "\r\x1b[2K[{}/{} runs, {secs} s] {what}",
                self.done, self.total
            );
            let _ = std::io::stderr().flush();
        } else {
            // One line per scenario and round: "round 2/7: ex_6_2_gather".
            let phase = what.split(" on ").next().unwrap_or("").to_owned();
            if phase != self.last_line {
                eprintln!(
                    "showdown: {phase} ({}/{} runs, {secs} s)",
                    self.done, self.total
                );
                self.last_line = phase;
            }
        }
    }

    fn done(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        if self.tty {
            eprint!("\r\x1b[2K");
        }
        eprintln!("showdown: {} runs in {secs:.1} s", self.total);
    }
}

fn header(
    out: &mut String,
    m: &Machine,
    py: Option<&Result<python::Interpreter, String>>,
    rounds: usize,
    n: usize,
) {
    use std::fmt::Write as _;
    let _ = writeln!(out, "asyncio-rs showdown, {}", m.date);
    let _ = writeln!(
        out,
        "machine: {} ({} cores available), {}, {}",
        m.cpu, m.cores, m.os, m.rustc
    );
    match py {
        None => {
            let _ = writeln!(out, "python:  not run (add --python for CPython's asyncio)");
        }
        Some(Ok(i)) => {
            let uv = i
                .uvloop
                .as_ref()
                .map_or("uvloop not installed".to_owned(), |v| format!("uvloop {v}"));
            let _ = writeln!(
                out,
                "python:  CPython {} (python3 on PATH), {uv}",
                i.version
            );
        }
        Some(Err(e)) => {
            let _ = writeln!(out, "python:  unavailable: {e}");
        }
    }
    let _ = writeln!(out, "size:    n = {} per run", report::count(n));
    let _ = writeln!(out, "method:  {}.", report::method(rounds));
    let _ = writeln!(out, "{FLOOR_LEGEND}.");
}

/// Who was fastest in each scenario (the floor is not a contender).
fn summary(out: &mut String, rows: &[Row], scenarios: &[Scenario]) {
    use std::fmt::Write as _;
    let mut wins: Vec<(Runtime, Vec<&str>)> = Vec::new();
    let mut contested = 0;
    for s in scenarios {
        let best = rows
            .iter()
            .filter(|r| r.scenario == s.id && r.runtime != Runtime::Floor)
            .filter_map(|r| r.median().map(|m| (r.runtime, m)))
            .collect::<Vec<_>>();
        if best.len() < 2 {
            continue;
        }
        contested += 1;
        let (rt, _) = best
            .into_iter()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("two or more rows");
        match wins.iter_mut().find(|(r, _)| *r == rt) {
            Some((_, ids)) => ids.push(s.id),
            None => wins.push((rt, vec![s.id])),
        }
    }
    if contested == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nfastest per scenario, by time per operation (of {contested} with two or more runtimes):"
    );
    wins.sort_by_key(|(_, ids)| std::cmp::Reverse(ids.len()));
    for (rt, ids) in wins {
        let _ = writeln!(
            out,
            "  {:<22} {:>2}: {}",
            rt.name(),
            ids.len(),
            ids.join(", ")
        );
    }
}

/// The chart's groups: per scenario with an asyncio-rs row, every timed
/// runtime's median over asyncio-rs's.
fn chart_groups(rows: &[Row], scenarios: &[Scenario]) -> Vec<chart::Group> {
    scenarios
        .iter()
        .filter_map(|s| {
            let these: Vec<&Row> = rows.iter().filter(|r| r.scenario == s.id).collect();
            let ours = these
                .iter()
                .find(|r| r.runtime == Runtime::AsyncioRs)
                .and_then(|r| r.median())?;
            let bars: Vec<(Runtime, f64)> = these
                .iter()
                .filter_map(|r| r.median().map(|m| (r.runtime, m / ours)))
                .collect();
            let label = if s.example.is_empty() {
                s.id.to_owned()
            } else {
                format!("{} ({})", s.id, s.example)
            };
            (bars.len() > 1).then_some((label, bars))
        })
        .collect()
}

/// A memory scenario's rows: each runtime measured once in a fresh process
/// (this binary again, with the hidden `--memory-child`).
fn memory_rows(
    m: &scenarios::MemoryScenario,
    size: usize,
    keep: &dyn Fn(&str, Runtime) -> bool,
) -> Vec<Row> {
    let exe = std::env::current_exe().unwrap_or_else(|e| fail(&format!("cannot find myself: {e}")));
    eprintln!(
        "showdown: {}, {size} {}s per runtime, each in a fresh process",
        m.id, m.unit
    );
    m.runtimes
        .iter()
        .filter(|rt| keep(m.id, **rt))
        .map(|rt| {
            let out = std::process::Command::new(&exe)
                .args(["--memory-child", m.id, rt.name(), &size.to_string()])
                .output();
            let result = match out {
                Ok(o) if o.status.success() => {
                    match String::from_utf8_lossy(&o.stdout).trim().parse::<f64>() {
                        Ok(per) => Measured::Bytes {
                            per_op: per,
                            ops: size,
                        },
                        Err(_) => Measured::Failed("the child printed no number".into()),
                    }
                }
                Ok(o) => Measured::Failed(format!(
                    "the child failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                        .lines()
                        .last()
                        .unwrap_or("")
                )),
                Err(e) => Measured::Failed(format!("cannot start the child: {e}")),
            };
            Row {
                scenario: m.id,
                runtime: *rt,
                result,
            }
        })
        .collect()
}

/// The median over `runs` of each run's p50 and p99.
fn median_percentiles(runs: &[asyncio_bench::net::Percentiles]) -> (f64, f64) {
    let mid = |mut xs: Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        xs[xs.len() / 2]
    };
    (
        mid(runs.iter().map(|p| p.p50_ns as f64).collect()),
        mid(runs.iter().map(|p| p.p99_ns as f64).collect()),
    )
}

/// p50/p99 of one echo scenario's round trips, per runtime that ran it: the
/// median over rounds of each run's percentile (the warm-up run excluded).
fn latency_report(out: &mut String, scenario: &str, latencies: &[Latencies]) {
    use std::fmt::Write as _;
    let these: Vec<&Latencies> = latencies
        .iter()
        .filter(|l| l.scenario == scenario)
        .collect();
    if these.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "  round-trip latency of one message (median over rounds of each run's percentile):"
    );
    for l in these {
        let (p50, p99) = median_percentiles(&l.runs);
        let _ = writeln!(
            out,
            "  {:<22} p50 {:>10}   p99 {:>10}",
            l.runtime.name(),
            report::time(p50),
            report::time(p99)
        );
    }
}

/// Beside the throughput summary: in each echo scenario, which runtime (the
/// floor aside) had the lowest p99 round trip, and asyncio-rs's p99 against it (throughput alone hides
/// a runtime that is fast on average and slow at the tail).
fn latency_summary(out: &mut String, latencies: &[Latencies], scenarios: &[Scenario]) {
    use std::fmt::Write as _;
    let mut lines = Vec::new();
    for s in scenarios {
        let these: Vec<(Runtime, f64)> = latencies
            .iter()
            // The floor is a yardstick, not a contender (as in the throughput summary).
            .filter(|l| l.scenario == s.id && l.runtime != Runtime::Floor)
            .map(|l| (l.runtime, median_percentiles(&l.runs).1))
            .collect();
        if these.len() < 2 {
            continue;
        }
        let (best, best_p99) = these
            .iter()
            .copied()
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .expect("two or more runtimes");
        let ours = these.iter().find(|(r, _)| *r == Runtime::AsyncioRs);
        let versus = match ours {
            Some(_) if best == Runtime::AsyncioRs => "asyncio-rs lowest".to_owned(),
            Some((_, p99)) => format!(
                "asyncio-rs {} ({:.2}x the lowest)",
                report::time(*p99),
                p99 / best_p99
            ),
            None => String::new(),
        };
        lines.push(format!(
            "  {:<36} {} {}; {versus}",
            s.id,
            best.name(),
            report::time(best_p99)
        ));
    }
    if lines.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "
lowest p99 round-trip latency per echo scenario:"
    );
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
}

/// Idle connections held for the memory report: 10,000, or fewer if the
/// process may not open twice as many descriptors (both ends are here).
fn idle_conns_count() -> usize {
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|x| x.starts_with("Max open files"))
                .and_then(|x| {
                    x.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    10_000.min(limit.saturating_sub(256) / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_accepts_a_scenario_and_an_optional_runtime() {
        let scenarios = scenarios::scenarios();
        let f = parse_filters(
            &[
                "ex_6_2_gather".into(),
                "ex_6_3_current_task/tokio-current-thread".into(),
            ],
            &scenarios,
        );
        assert_eq!(f[0], ("ex_6_2_gather".to_owned(), None));
        assert_eq!(
            f[1],
            (
                "ex_6_3_current_task".to_owned(),
                Some(Runtime::TokioCurrentThread)
            )
        );
    }

    #[test]
    fn the_command_line_documents_every_flag() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in [
            "--rounds", "--only", "--quick", "--json", "--svg", "--python", "--list",
        ] {
            assert!(help.contains(flag), "--help does not mention {flag}");
        }
        assert!(!help.contains("--memory-child"));
        assert!(!help.contains("--timed-child"));
    }
}
